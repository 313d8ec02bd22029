//! Crash anywhere, run again, and the episode completes exactly once: for every crash point
//! (`podflow_core::crash::POINTS`), `podflow run` is aborted there, then run again; the
//! second run must exit 0 with everything done, having transcribed and transcoded the
//! audio once and published each summary revision once, and having posted every Slack
//! message (one per revision, one "MP3 ready").
//!
//! Slack messages are posted at least once, not exactly once: a crash after Slack accepted
//! a message and before podflow recorded it posts that message again (a webhook has no
//! idempotency key, and losing the message would be worse than repeating it). The
//! notifier runs beside the other workers, so a crash at any point can land in that window;
//! the test allows one repeat, never a missing message.

use std::{
    collections::BTreeMap,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use podflow_core::{EpisodeStore, crash::POINTS};
use podflow_embedded::Db;
use podflow_fakes::{FakeLlm, FakeLlmConfig, slack::FakeSlack};

fn sample(dir: &Path) -> PathBuf {
    let out = dir.join("sample-episode.m4a");
    podflow_fakes::media::sample_episode(&out);
    out
}

async fn run(data: &Path, sample: &Path, llm: &str, slack: &str, crash_at: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.arg("run")
        .arg("--json")
        .arg(sample)
        .env("PODFLOW_DATA_DIR", data)
        .env("PODFLOW_LLM_URL", llm)
        .env("PODFLOW_LLM_MODEL", "fake-model")
        .env("PODFLOW_SLACK_WEBHOOK_URL", slack)
        .env_remove("PODFLOW_CRASH_AT");
    if let Some(point) = crash_at {
        cmd.env("PODFLOW_CRASH_AT", point);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("podflow runs"))
        .await
        .expect("join")
}

/// How many accepted Slack messages mention `needle`.
fn posted(slack: &FakeSlack, needle: &str) -> usize {
    slack
        .accepted()
        .iter()
        .filter(|m| m.to_string().contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_episode_completes_once_after_a_crash_at_any_point() {
    let llm = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake LLM");
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = sample(dir.path());
    for point in POINTS {
        let slack = FakeSlack::start(Vec::new()).await.expect("fake Slack");
        let data = dir.path().join(point.replace('.', "_"));

        let crashed = run(&data, &sample, &llm.url, &slack.url, Some(point)).await;
        assert_eq!(
            crashed.status.signal(),
            Some(6),
            "{point}: the run should abort there (was the point reached?): {}",
            String::from_utf8_lossy(&crashed.stderr)
        );

        let again = run(&data, &sample, &llm.url, &slack.url, None).await;
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert_eq!(again.status.code(), Some(0), "{point}: {stderr}");
        let stdout = String::from_utf8_lossy(&again.stdout);
        let report: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{point}: {e}: {stdout}"));
        assert_eq!(report["status"], "done", "{point}: {report}");
        let episode = report["episode_id"]
            .as_str()
            .expect("episode id")
            .to_owned();

        let db = Db::open(&data).expect("open");
        assert_eq!(
            db.work_count("transcribe", &episode).await.expect("count"),
            1,
            "{point}: transcribed once"
        );
        assert_eq!(
            db.work_count("transcode", &episode).await.expect("count"),
            1,
            "{point}: transcoded once"
        );
        let mut revisions: BTreeMap<u64, usize> = BTreeMap::new();
        for event in db.events_for(&episode).expect("events") {
            if event.detail_type == "EpisodeSummarized" {
                let revision = event.detail["revision"].as_u64().expect("revision");
                *revisions.entry(revision).or_default() += 1;
            }
        }
        assert!(!revisions.is_empty(), "{point}: summarized");
        for (revision, published) in &revisions {
            assert_eq!(*published, 1, "{point}: revision {revision} published once");
            let messages = posted(&slack, &format!("revision {revision}"));
            assert!(
                (1..=2).contains(&messages),
                "{point}: revision {revision} posted {messages} times"
            );
        }
        let mp3 = posted(&slack, "MP3 ready");
        assert!((1..=2).contains(&mp3), "{point}: MP3 announced {mp3} times");
    }
}
