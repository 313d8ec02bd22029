//! `podflow run` with an `ffmpeg` or `ffprobe` that misbehaves: one that hangs, one that
//! ignores SIGTERM, one that floods stderr before any output. Each step ends within its
//! deadline (`PODFLOW_TOOL_TIMEOUT`) with a reason that says so, the run exits, and no
//! process the tools started is left behind.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The real program's path.
fn real(program: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A stand-in `program` first on PATH: runs `misbehaviour` (shell) when its arguments match
/// `when` (a `case` pattern), the real program otherwise.
fn shim(dir: &Path, program: &str, when: &str, misbehaviour: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let script = bin.join(program);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in {when}) {misbehaviour} ;; esac\nexec {} \"$@\"\n",
            real(program)
        ),
    )
    .expect("script");
    let made = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    assert!(made.success());
    bin
}

/// Live processes whose command line is exactly `argv` (zombies don't count).
fn live(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .unwrap_or_default()
            .contains(") Z ");
        if cmdline == wanted && !zombie {
            found.push(pid);
        }
    }
    found
}

fn run_with(dir: &Path, bin: &Path) -> (Output, Duration) {
    let sample = dir.join("sample-episode.m4a");
    podflow_fakes::media::sample_episode(&sample);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_podflow"))
        .args(["run", "--json"])
        .arg(&sample)
        .env("PATH", path)
        .env("PODFLOW_TOOL_TIMEOUT", "2")
        .env("PODFLOW_DATA_DIR", dir.join("data"))
        .env("PODFLOW_LLM_URL", "http://127.0.0.1:9/v1")
        .output()
        .expect("podflow runs");
    (out, started.elapsed())
}

fn report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {text} / {}", String::from_utf8_lossy(&out.stderr)))
}

fn failed_step<'a>(report: &'a Value, step: &str) -> &'a str {
    report["failed_steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == step))
        .and_then(|s| s["reason"].as_str())
        .unwrap_or_else(|| panic!("{step} did not fail: {report}"))
}

/// ffmpeg hangs making the MP3 and decoding for transcription: both steps end at their
/// deadlines (the MP3's scales with the episode's 40 s), the run exits 1, nothing is left.
fn hanging_steps_end_at_their_deadlines(misbehaviour: &str, argv: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = shim(dir.path(), "ffmpeg", "*-audio.mp3*|*f32le*", misbehaviour);
    let (out, took) = run_with(dir.path(), &bin);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report(&out);
    assert_eq!(report["status"], "failed");
    for step in ["transcode", "transcribe"] {
        let reason = failed_step(&report, step);
        assert!(
            reason.contains("did not finish within") && reason.contains("PODFLOW_TOOL_TIMEOUT"),
            "{step}: {reason}"
        );
    }
    assert!(
        took < Duration::from_secs(120),
        "the run took {took:?} with 2-s tool deadlines"
    );
    let left = live(argv);
    assert!(left.is_empty(), "{argv:?} left running: {left:?}");
}

#[test]
fn an_ffmpeg_that_hangs_ends_its_steps_and_the_run() {
    hanging_steps_end_at_their_deadlines("exec sleep 6001", &["sleep", "6001"]);
}

#[test]
fn an_ffmpeg_that_ignores_sigterm_is_still_stopped_with_its_children() {
    hanging_steps_end_at_their_deadlines("trap '' TERM; sleep 6002; exit 1", &["sleep", "6002"]);
}

#[test]
fn an_ffmpeg_that_floods_stderr_first_still_delivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 1 MiB on stderr before any output (a pipe holds 64 KiB), then the real work.
    let bin = shim(
        dir.path(),
        "ffmpeg",
        "*-audio.mp3*|*f32le*",
        "head -c 1048576 /dev/zero | tr '\\0' x >&2",
    );
    let (out, _) = run_with(dir.path(), &bin);
    // No LLM here: prompts fail (exit 3), every media output is delivered.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report(&out);
    assert!(
        report["failed_steps"].as_array().is_none_or(Vec::is_empty),
        "{report}"
    );
    for output in ["audio", "transcript", "subtitles_vtt"] {
        assert!(report["outputs"][output].is_string(), "{output}: {report}");
    }
}

#[test]
fn an_ffprobe_that_hangs_fails_the_upload_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = shim(dir.path(), "ffprobe", "*", "exec sleep 6003");
    let (out, took) = run_with(dir.path(), &bin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ffprobe did not finish within 2 s"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let left = live(&["sleep", "6003"]);
    assert!(left.is_empty(), "ffprobe's sleep left running: {left:?}");
}
