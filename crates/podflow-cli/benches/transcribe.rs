//! `cargo bench -p podflow-cli --bench transcribe`: podflow's transcriber against
//! faster-whisper (int8, beam 5) on the same model and the same files, in one run.
//! Prints wall time, real-time factor, peak memory and WER for both, and the speed ratio.
//!
//! Needs `pip install faster-whisper` (not part of the test setup: it is only the anchor).
//! PODFLOW_BENCH_MINUTES sets the long episode's length (default 10).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use podflow_core::wer::word_error_rate;

struct Input {
    name: String,
    path: PathBuf,
    reference: String,
    seconds: f64,
}

struct Measured {
    wall: f64,
    peak_mb: f64,
    wer: f64,
}

/// podflow's weight types, each timed against the same faster-whisper run.
const PODFLOW_WEIGHTS: [&str; 2] = ["f16", "q8_0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

/// Runs a command under /usr/bin/time: its stdout, wall seconds and peak RSS in MB.
fn timed(cmd: Command, scratch: &Path) -> (String, f64, f64) {
    let report = scratch.join("time.txt");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args)
        .envs(envs)
        .output()
        .expect("/usr/bin/time runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).expect("time report");
    let mut parts = text.split_whitespace();
    let wall = parts
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(f64::NAN);
    let kb: f64 = parts
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or(f64::NAN);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        wall,
        kb / 1024.0,
    )
}

/// podflow with its weight matrices stored as `weights` (`f16` or `q8_0`).
fn podflow(data: &Path, file: &Path, weights: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.env("PODFLOW_DATA_DIR", data)
        .env("PODFLOW_WHISPER_WEIGHTS", weights)
        .arg("transcribe")
        .arg(file)
        .args(["--format", "txt"]);
    cmd
}

fn faster_whisper(file: &Path) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("bench/faster_whisper_transcribe.py"))
        .arg(file);
    cmd
}

fn inputs(scratch: &Path) -> Vec<Input> {
    let minutes: u32 = std::env::var("PODFLOW_BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let mut inputs = Vec::new();
    let long = scratch.join(format!("long-{minutes}min.m4a"));
    if !long.exists() {
        let ok = Command::new(repo().join("bench/make-long-episode.sh"))
            .arg(minutes.to_string())
            .arg(&long)
            .status()
            .expect("make-long-episode.sh")
            .success();
        assert!(ok);
    }
    let reference = std::fs::read_to_string(format!("{}.txt", long.display())).expect("script");
    inputs.push(Input {
        name: format!("espeak-ng two voices, {minutes} min"),
        seconds: duration(&long),
        path: long,
        reference,
    });
    // Real speech: LibriVox recordings and their reference text (pocketsphinx-testdata),
    // joined into one file so model loading is paid once, as for an episode.
    let dir = Path::new("/usr/share/pocketsphinx/test/data/librivox");
    if let Ok(listing) = std::fs::read_to_string(dir.join("transcription")) {
        let joined = scratch.join("librivox.wav");
        let mut refs = Vec::new();
        let mut list = String::new();
        for line in listing.lines() {
            let Some((text, id)) = line.rsplit_once(" (") else {
                continue;
            };
            let id = id.trim_end_matches(')');
            refs.push(
                text.replace("<s>", "")
                    .replace("</s>", "")
                    .trim()
                    .to_owned(),
            );
            list.push_str(&format!(
                "file '{}'\n",
                dir.join(format!("{id}.wav")).display()
            ));
        }
        std::fs::write(scratch.join("librivox.list"), list).expect("list");
        let ok = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
            ])
            .arg(scratch.join("librivox.list"))
            .arg(&joined)
            .status()
            .expect("ffmpeg")
            .success();
        assert!(ok);
        inputs.push(Input {
            name: "LibriVox (real speech), 5 clips".into(),
            seconds: duration(&joined),
            path: joined,
            reference: refs.join(" "),
        });
    } else {
        eprintln!(
            "pocketsphinx-testdata is not installed: LibriVox row skipped (scripts/setup.sh installs it)"
        );
    }
    inputs
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let scratch = std::env::temp_dir().join("podflow-bench-transcribe");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let data = scratch.join("data");
    let inputs = inputs(&scratch);
    // Warm up: podflow converts the model once per weight type, Python fills the page cache.
    let warm = &inputs[inputs.len() - 1].path;
    for weights in PODFLOW_WEIGHTS {
        let _ = timed(podflow(&data, warm, weights), &scratch);
    }
    let _ = timed(faster_whisper(warm), &scratch);

    println!("\n| input | audio | engine | wall | × real time | peak memory | WER |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for input in &inputs {
        let mut rows = Vec::new();
        let mut runs: Vec<(String, Command)> = PODFLOW_WEIGHTS
            .iter()
            .map(|w| {
                (
                    format!("podflow (whisper.cpp, {w})"),
                    podflow(&data, &input.path, w),
                )
            })
            .collect();
        runs.push(("faster-whisper int8".into(), faster_whisper(&input.path)));
        for (engine, cmd) in runs {
            let (text, wall, peak_mb) = timed(cmd, &scratch);
            let m = Measured {
                wall,
                peak_mb,
                wer: word_error_rate(&input.reference, &text),
            };
            println!(
                "| {} | {:.0} s | {engine} | {:.1} s | {:.1}× | {:.0} MB | {:.2}% |",
                input.name,
                input.seconds,
                m.wall,
                input.seconds / m.wall,
                m.peak_mb,
                m.wer * 100.0
            );
            rows.push(m);
        }
        let anchor = &rows[rows.len() - 1];
        for (w, run) in PODFLOW_WEIGHTS.iter().zip(&rows) {
            ratios.push((
                input.name.clone(),
                *w,
                anchor.wall / run.wall,
                run.wer - anchor.wer,
            ));
        }
    }
    println!(
        "\n| input | podflow weights | speed vs faster-whisper (>1: podflow faster) | WER difference (points) |"
    );
    println!("|---|---|---:|---:|");
    for (name, weights, ratio, wer_diff) in ratios {
        println!(
            "| {name} | {weights} | {ratio:.2}× | {:+.2} |",
            wer_diff * 100.0
        );
    }
}
