//! `cargo bench -p podflow-cli --bench chapters`: the extractive engine's chapters on speech.
//! The four-topic text (`services/publisher/src/extractive/testdata/four-topics.txt`) is read
//! by two espeak-ng voices taking turns (`bench/make-long-episode.sh`, which records when each
//! sentence was said), transcribed by `podflow transcribe`, and chaptered from that
//! transcript. Each topic's first sentence marks a true shift. Prints boundary precision and
//! recall within ±15 s, Pk and WindowDiff, beside evenly spaced chapters as the baseline.
//! PODFLOW_BENCH_MINUTES caps the episode's length (default 9, about the whole text).

use std::{path::Path, process::Command};

use podflow_core::transcript::Transcript;
use publisher::extractive::sample;

const TEXT: &str =
    include_str!("../../../services/publisher/src/extractive/testdata/four-topics.txt");
const TOLERANCE: f64 = 15.0;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scratch = std::env::temp_dir().join("podflow-chapters-bench");
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let minutes: u32 = std::env::var("PODFLOW_BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(9);

    let passages = sample::passages(TEXT);
    let script = scratch.join("four-topics.script.txt");
    let lines: Vec<&str> = passages.iter().flatten().copied().collect();
    std::fs::write(&script, lines.join("\n") + "\n").expect("script");
    // The sentence that opens each topic (the script wraps round when it runs out).
    let mut opens = Vec::new();
    let mut at = 0;
    for p in &passages {
        opens.push(at);
        at += p.len();
    }

    let audio = scratch.join(format!("four-topics-{minutes}min.m4a"));
    if !audio.is_file() {
        let made = Command::new(root.join("bench/make-long-episode.sh"))
            .arg(minutes.to_string())
            .arg(&audio)
            .args(["en-us", "en-us+Annie", "160"])
            .arg(&script)
            .status()
            .expect("bench/make-long-episode.sh (needs espeak-ng and ffmpeg)");
        assert!(made.success(), "make-long-episode.sh failed");
    }
    let turns: Vec<f64> = std::fs::read_to_string(format!("{}.turns", audio.display()))
        .expect("turns")
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let truth: Vec<f64> = (1..turns.len())
        .filter(|i| opens.contains(&(i % lines.len())))
        .map(|i| turns[i])
        .collect();

    let out = Command::new(env!("CARGO_BIN_EXE_podflow"))
        .env("PODFLOW_DATA_DIR", scratch.join("data"))
        .arg("transcribe")
        .arg(&audio)
        .args(["--format", "json"])
        .output()
        .expect("podflow transcribe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let transcript: Transcript = serde_json::from_slice(&out.stdout).expect("transcript JSON");
    let duration = transcript.duration_seconds;
    let (found, even) = sample::chapter_shifts(&transcript);

    println!(
        "CPU: {}; {:.1} min of espeak-ng speech, transcribed by {} ({})\n",
        podflow_speech::cpu::CpuSummary::detect().line(),
        duration / 60.0,
        transcript.engine,
        transcript.model
    );
    println!(
        "| chapters | at (s) | precision ±{TOLERANCE:.0} s | recall ±{TOLERANCE:.0} s | Pk | WindowDiff |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| topic shifts (truth) | {} | | | | |",
        sample::seconds_list(&truth)
    );
    for (name, starts) in [("extractive", &found), ("evenly spaced (baseline)", &even)] {
        let s = sample::segmentation_scores(&truth, starts, duration, TOLERANCE);
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.3} | {:.3} |",
            sample::seconds_list(starts),
            s.precision,
            s.recall,
            s.pk,
            s.window_diff
        );
    }
}
