//! Soak on loopback, bounded in time: 50 episodes in one `podflow run` against a fake LLM
//! with latency and throttling, with an `ffmpeg` that hangs on the MP3 of four of them.
//! The run ends by itself, the four fail their transcode within the tool deadline and the
//! rest are delivered, the queues drain with nothing left in flight, and the process's
//! memory and open files do not grow as episodes pass through it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use podflow_embedded::Db;
use podflow_fakes::{FakeLlm, FakeLlmConfig};
use serde_json::Value;

const GOOD: usize = 46;
const BAD: usize = 4;
/// A guard against a hang, not a performance figure.
const GIVE_UP_AFTER: Duration = Duration::from_secs(900);

fn ffmpeg(args: &[&str]) {
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg");
    assert!(ok.success(), "ffmpeg {args:?}");
}

/// An `ffmpeg` first on PATH that hangs when making the MP3 of an episode named `bad-*`.
fn shim(dir: &Path) -> PathBuf {
    let real = Command::new("sh")
        .args(["-c", "command -v ffmpeg"])
        .output()
        .expect("sh");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_owned();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let script = bin.join("ffmpeg");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in *title=bad-*) exec sleep 6004 ;; esac\nexec {real} \"$@\"\n"
        ),
    )
    .expect("script");
    assert!(
        Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .expect("chmod")
            .success()
    );
    bin
}

/// (resident memory in KiB, open file descriptors) of a live process.
fn usage(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_episodes_with_throttling_and_a_hanging_ffmpeg_drain_and_stay_flat() {
    let llm = FakeLlm::start(FakeLlmConfig {
        answer_delay: Duration::from_millis(20),
        throttle_rate: 0.2,
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake LLM");
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample.m4a");
    podflow_fakes::media::sample_episode(&sample);
    let mut files = Vec::new();
    for i in 0..GOOD {
        let copy = dir.path().join(format!("good-{i:02}.m4a"));
        std::fs::copy(&sample, &copy).expect("copy");
        files.push(copy);
    }
    // Other audio (so no cached MP3 can stand in), short to keep transcription quick.
    for i in 0..BAD {
        let bad = dir.path().join(format!("bad-{i}.m4a"));
        let volume = format!("volume={:.1}", 0.9 - 0.1 * i as f64);
        let (input, output) = (sample.to_string_lossy(), bad.to_string_lossy());
        ffmpeg(&["-i", &input, "-t", "5", "-af", &volume, &output]);
        files.push(bad);
    }
    let limits = dir.path().join("limits.toml");
    std::fs::write(
        &limits,
        "[default]\nrequests_per_minute = 60000\ntokens_per_minute = 1000000000\n",
    )
    .expect("limits");
    let data = dir.path().join("data");
    let path = format!(
        "{}:{}",
        shim(dir.path()).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut run = Command::new(env!("CARGO_BIN_EXE_podflow"))
        .args(["run", "--json"])
        .args(&files)
        .env("PATH", path)
        .env("PODFLOW_DATA_DIR", &data)
        .env("PODFLOW_LLM_URL", &llm.url)
        .env("PODFLOW_LLM_MODEL", "fake-model")
        .env("PODFLOW_MODEL_LIMITS", &limits)
        .env("PODFLOW_TOOL_TIMEOUT", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podflow starts");
    let pid = run.id();
    let stdout = run.stdout.take().expect("stdout");
    let stderr = run.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err_reader =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    let mut samples: Vec<(u64, usize)> = Vec::new();
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > GIVE_UP_AFTER {
            let _ = run.kill();
            panic!("the soak did not end within {GIVE_UP_AFTER:?}");
        }
        if let Some(u) = usage(pid) {
            samples.push(u);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = reader.join().expect("stdout");
    let err = err_reader.join().expect("stderr");
    // Some episodes failed (their MP3): exit 1, and every episode reported.
    assert_eq!(status.code(), Some(1), "{err}");
    let reports: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per episode"))
        .collect();
    assert_eq!(reports.len(), GOOD + BAD);
    for report in &reports {
        let id = report["episode_id"].as_str().unwrap_or("");
        if id.starts_with("bad-") {
            let reason = report["failed_steps"][0]["reason"].as_str().unwrap_or("");
            assert!(reason.contains("did not finish within"), "{id}: {report}");
            assert!(report["outputs"]["transcript"].is_string(), "{report}");
        } else {
            assert_eq!(report["status"], "done", "{report}");
        }
    }
    // Drained: nothing visible, delayed or in flight in any queue but the dead letters.
    let db = Db::open(&data).expect("db");
    for depth in db.depths().expect("depths") {
        if depth.queue.ends_with("-dlq") {
            continue;
        }
        assert_eq!(
            (depth.visible, depth.in_flight, depth.delayed),
            (0, 0, 0),
            "{}",
            depth.queue
        );
    }
    // Flat: the last quarter of the run holds no more memory or files than the busiest
    // point of its first half (model loaded, episodes arriving), give or take.
    assert!(samples.len() >= 8, "too few samples: {samples:?}");
    let half = samples.len() / 2;
    let (early, late) = (&samples[..half], &samples[samples.len() * 3 / 4..]);
    let peak = |s: &[(u64, usize)]| {
        s.iter()
            .fold((0, 0), |(r, f), (a, b)| (r.max(*a), f.max(*b)))
    };
    let (early_rss, early_fds) = peak(early);
    let (late_rss, late_fds) = peak(late);
    eprintln!(
        "soak: {} samples over {:?}; peak RSS {early_rss} → {late_rss} KiB, fds {early_fds} → {late_fds}",
        samples.len(),
        started.elapsed()
    );
    assert!(
        late_rss <= early_rss + early_rss / 4,
        "memory grew: {early_rss} KiB → {late_rss} KiB"
    );
    assert!(
        late_fds <= early_fds + 8,
        "open files grew: {early_fds} → {late_fds}"
    );
}
