//! Hostile file names through `podflow run`: the real binary, real ffmpeg and Whisper, the
//! fake OpenAI-compatible server. Names that ffmpeg would read as an option (`-i.mp3`) or a
//! protocol (`concat:a|b.mp3`, with decoys named `a` and `b.mp3` beside it), a newline, the
//! template marker `{{transcript}}` and a 255-byte name of non-ASCII characters, all given
//! as relative paths: each episode ends done with the audio it names; a file that is not
//! audio ends with one error line, its name escaped.

use std::{path::Path, process::Command};

use podflow_fakes::{FakeLlm, FakeLlmConfig};
use serde_json::Value;

/// What the titles prompt answers when the title it is sent holds the marker as text.
const LITERAL_TITLE: &str = "Marker Text Arrived Literally";

fn names() -> Vec<String> {
    vec![
        "-i.mp3".into(),
        "concat:a|b.mp3".into(),
        "episode\nwith a newline.mp3".into(),
        "{{transcript}}.mp3".into(),
        format!("{}x.mp3", "é".repeat(125)),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_end_done_or_with_one_error_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample.m4a");
    podflow_fakes::media::sample_episode(&sample);
    let audio = std::fs::read(&sample).expect("sample");
    for name in names() {
        assert!(name.len() <= 255, "{name}");
        std::fs::write(dir.path().join(&name), &audio).expect("write");
    }
    // What `concat:a|b.mp3` would read as a protocol: not audio at all.
    for decoy in ["a", "b.mp3"] {
        std::fs::write(dir.path().join(decoy), b"a decoy, not audio").expect("write");
    }
    let not_audio = "notes\nfor the show.m4a";
    std::fs::write(dir.path().join(not_audio), b"show notes, not audio").expect("write");

    let llm = FakeLlm::start(FakeLlmConfig {
        scripted: vec![
            // First match wins: any prompt sent the title as text gets this answer.
            ("{{transcript}}.mp3".into(), format!("1. {LITERAL_TITLE}")),
            (
                "Split this episode".into(),
                r#"{"chapters": [{"startTime": 0, "title": "Welcome"}, {"startTime": 14, "title": "What hurts"}]}"#.into(),
            ),
            (
                "Suggest up to 5 clips".into(),
                r#"{"clips": [{"start": 2, "end": 14, "hook": "Reliable pipelines"}]}"#.into(),
            ),
        ],
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake LLM");
    let data = dir.path().join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.current_dir(dir.path())
        .env("PODFLOW_DATA_DIR", &data)
        .env("PODFLOW_LLM_URL", &llm.url)
        .env("PODFLOW_LLM_MODEL", "fake-model")
        .env_remove("PODFLOW_TEXT_ENGINE")
        .args(["run", "--json", "--"])
        .args(names())
        .arg(not_audio);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("podflow runs"))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    // The file that is not audio: exit 1 (bad input) and exactly one error line, which
    // names it with the newline escaped.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("notes\\nfor the show.m4a") && errors[0].contains("podflow accepts"),
        "{stderr}"
    );

    // Every hostile name: one episode, done, made from the audio it names.
    let reports: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let sha256 = podflow_core::content::sha256_hex(&audio);
    assert_eq!(reports.len(), names().len(), "{stdout}");
    for name in names() {
        let id = podflow_core::content::episode_id(&name, &sha256);
        let report = reports
            .iter()
            .find(|r| r["episode_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no report for {name:?} ({id}): {stdout} / {stderr}"));
        assert_eq!(report["status"], "done", "{name:?}: {report}");
        assert!(podflow_events::names::check_episode_id(&id).is_ok(), "{id}");
        let episode = data.join("episodes").join(&id);
        let transcript: Value = serde_json::from_str(
            &std::fs::read_to_string(episode.join("transcript.json")).expect("transcript"),
        )
        .expect("json");
        // The sample is 40 s; a decoy read instead would be no audio at all.
        let seconds = transcript["duration_seconds"].as_f64().expect("duration");
        assert!(seconds > 30.0, "{name:?}: {seconds} s");
        assert!(Path::new(&episode.join("audio.mp3")).is_file(), "{name:?}");
        let notes = std::fs::read_to_string(episode.join("show-notes.md")).expect("notes");
        if name.starts_with("{{transcript}}") {
            // The model was sent the title as text: the marker was not expanded.
            assert!(notes.contains(&format!("# {LITERAL_TITLE}\n")), "{notes}");
        } else {
            assert!(!notes.contains(LITERAL_TITLE), "{name:?}: {notes}");
        }
    }
    // The decoys were never taken for audio or changed.
    for decoy in ["a", "b.mp3"] {
        assert_eq!(
            std::fs::read(dir.path().join(decoy)).expect("decoy"),
            b"a decoy, not audio"
        );
    }
}
