//! `cargo bench -p podflow-cli --bench transcribe`: podflow's transcriber against
//! faster-whisper (int8, beam 5) on the same model and the same files, in one run.
//! Prints the CPU (model and the instruction sets that matter), then per engine its compute
//! type, wall time, real-time factor, peak memory, WER and (for podflow, on the episode with
//! known turns) speaker accuracy, and the speed ratio. The CTranslate2 engine is measured in
//! default builds; whisper.cpp always.
//!
//! Needs faster-whisper: `scripts/setup.sh --bench` installs it into a venv of its own with
//! the same `ctranslate2` wheel podflow links (not part of the test setup: it is only the
//! anchor).
//! PODFLOW_BENCH_MINUTES sets the long episodes' length (default 10); PODFLOW_BENCH_RUNS how
//! many times each engine runs on each input, in turn (default 3): the fastest run is
//! reported, as a shared machine only ever slows a run down. PODFLOW_BENCH_ENGINES picks
//! podflow's engines (default: all built). Each engine's transcript of each input is left in
//! the scratch directory (`<input file>.<engine>.json` / `.txt`) for a look at what it got wrong.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use podflow_core::transcript::Transcript;
use podflow_fakes::{
    diarization::{SpeakerScore, TrueTurn, speaker_accuracy},
    wer::{normalize, word_error_rate},
};

struct Input {
    name: String,
    path: PathBuf,
    reference: String,
    seconds: f64,
    /// Who spoke when, where known.
    turns: Vec<TrueTurn>,
}

struct Measured {
    wall: f64,
    peak_mb: f64,
    wer: f64,
    speakers: Option<SpeakerScore>,
}

/// podflow's engines (`PODFLOW_WHISPER_ENGINE`), each timed against the same
/// faster-whisper run; `PODFLOW_BENCH_ENGINES` (comma-separated names) keeps only some,
/// e.g. to spare whisper.cpp's slow runs on a 2-hour episode.
fn podflow_engines() -> Vec<&'static str> {
    let mut engines = Vec::new();
    if cfg!(feature = "ctranslate2") {
        engines.push("ctranslate2");
    }
    engines.push("whisper.cpp");
    if let Ok(wanted) = std::env::var("PODFLOW_BENCH_ENGINES") {
        let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
        engines.retain(|name| wanted.contains(name));
    }
    engines
}

/// The compute type `engine` runs in on this machine, as `podflow doctor` reports it
/// (whisper.cpp's converted weights are f16).
fn compute_type(data: &Path, engine: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_podflow"))
        .env("PODFLOW_DATA_DIR", data)
        .env("PODFLOW_WHISPER_ENGINE", engine)
        .args(["doctor", "--json"])
        .output()
        .expect("podflow doctor runs");
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let detail = checks
        .iter()
        .find(|c| c["name"] == "engine")
        .and_then(|c| c["detail"].as_str())
        .unwrap_or("?");
    match detail.split_once("compute type ") {
        Some((_, kind)) => kind.to_owned(),
        None if detail.starts_with("whisper.cpp") => "f16".to_owned(),
        None => detail.to_owned(),
    }
}

/// Environment variables that choose which kernels the CTranslate2 library runs (both
/// podflow and faster-whisper run it): `CT2_FORCE_CPU_ISA=AVX ONEDNN_MAX_CPU_ISA=AVX`
/// measures an AVX2 machine as one without AVX2, `CT2_USE_MKL=1` an AMD machine on the
/// Intel MKL kernels an Intel CPU gets.
const KERNEL_SETTINGS: [&str; 4] = [
    "CT2_FORCE_CPU_ISA",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "CT2_USE_MKL",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a command under /usr/bin/time: its stdout, wall seconds and peak RSS in MB.
fn timed(cmd: &Command, scratch: &Path) -> (String, f64, f64) {
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

/// `podflow transcribe` with `engine`, printing transcript.json.
fn podflow(data: &Path, file: &Path, engine: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.env("PODFLOW_DATA_DIR", data)
        .env("PODFLOW_WHISPER_ENGINE", engine)
        .arg("transcribe")
        .arg(file)
        .args(["--format", "json"]);
    cmd
}

/// faster-whisper on the same model directory podflow loads, from the venv
/// `scripts/setup.sh --bench` makes.
fn faster_whisper(file: &Path) -> Command {
    let python = podflow_core::cache::cache_dir().join("bench-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh --bench",
        python.display()
    );
    let model = podflow_speech::locate::model().expect("the Whisper model (scripts/setup.sh)");
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("bench/faster_whisper_transcribe.py"))
        .arg(file)
        .arg(model);
    cmd
}

fn inputs(scratch: &Path) -> Vec<Input> {
    let minutes: u32 = std::env::var("PODFLOW_BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let mut inputs = Vec::new();
    // Three episodes: one synthetic episode's WER moves by half a point or more with
    // changes far below a word's difference (faster-whisper's own, with its kernels capped
    // at AVX or its features perturbed by 2e-5), so the bench pools them. Two cycle through
    // the podcast script; the third reads prose that never repeats.
    let licences = licence_script(scratch);
    let mut episodes = vec![
        (
            "en-us, en-us+Annie".to_owned(),
            vec!["en-us", "en-us+Annie", "160"],
            None,
        ),
        (
            "en-gb+Andy, en-us+Alicia".to_owned(),
            vec!["en-gb+Andy", "en-us+Alicia", "150"],
            None,
        ),
    ];
    match &licences {
        Some(script) => episodes.push((
            "en-us+Michael, en-us+steph, licence texts".to_owned(),
            vec!["en-us+Michael", "en-us+steph", "155"],
            Some(script),
        )),
        None => {
            eprintln!("/usr/share/common-licenses is missing: the licence-text episode is skipped")
        }
    }
    for (name, voices, script) in episodes {
        let long = scratch.join(format!("long-{minutes}min-{}.m4a", voices[0]));
        if !long.exists() {
            let ok = Command::new(repo().join("bench/make-long-episode.sh"))
                .arg(minutes.to_string())
                .arg(&long)
                .args(voices)
                .args(script)
                .status()
                .expect("make-long-episode.sh")
                .success();
            assert!(ok);
        }
        let reference = std::fs::read_to_string(format!("{}.txt", long.display())).expect("script");
        let turns = std::fs::read_to_string(format!("{}.turns", long.display()))
            .expect("turns (bench/make-long-episode.sh writes them; delete an older episode)")
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                    f.next()?.to_owned(),
                ))
            })
            .collect();
        inputs.push(Input {
            name: format!("espeak-ng {name}, {minutes} min"),
            seconds: podflow_media::duration_seconds(&long).expect("the episode's length"),
            path: long,
            reference,
            turns,
        });
    }
    // Real speech: LibriVox recordings and their reference text (pocketsphinx-testdata),
    // joined into one file so model loading is paid once, as for an episode.
    let dir = Path::new("/usr/share/pocketsphinx/test/data/librivox");
    if let Ok(listing) = std::fs::read_to_string(dir.join("transcription")) {
        let joined = scratch.join("librivox.wav");
        let mut refs = Vec::new();
        let mut parts = Vec::new();
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
            parts.push(dir.join(format!("{id}.wav")));
        }
        podflow_fakes::media::concat(&parts, &joined);
        inputs.push(Input {
            name: "LibriVox (real speech), 5 clips".into(),
            seconds: podflow_media::duration_seconds(&joined).expect("the clips' length"),
            path: joined,
            reference: refs.join(" "),
            turns: Vec::new(),
        });
    } else {
        eprintln!(
            "pocketsphinx-testdata is not installed: LibriVox row skipped (scripts/setup.sh installs it)"
        );
    }
    inputs
}

/// Sentences of the licence texts every Debian system carries (`base-files`), in order and
/// each once, one per line in `scratch/licence-script.txt`: prose that never repeats. The
/// podcast script cycles through 26 sentences, so there the prompt (the text before a
/// window) is full of plausible next sentences, which invites a model to copy it instead of
/// listening; a real episode rarely does that.
fn licence_script(scratch: &Path) -> Option<PathBuf> {
    let mut sentences: Vec<String> = Vec::new();
    for name in ["GPL-3", "Apache-2.0", "MPL-2.0"] {
        let Ok(text) = std::fs::read_to_string(Path::new("/usr/share/common-licenses").join(name))
        else {
            continue;
        };
        let terms = text
            .split("END OF TERMS AND CONDITIONS")
            .next()
            .unwrap_or_default();
        let flat = terms.split_whitespace().collect::<Vec<_>>().join(" ");
        for sentence in flat.split_inclusive(['.', '?', '!']) {
            let sentence = sentence.trim();
            let words = sentence.split_whitespace().count();
            // Plain words only: numbers, brackets and quotes are read and written in too
            // many ways to score.
            let plain = sentence
                .chars()
                .all(|c| c.is_ascii_alphabetic() || " ,;:'-.?!".contains(c));
            if plain && (6..=35).contains(&words) && !sentences.iter().any(|s| s == sentence) {
                sentences.push(sentence.to_owned());
            }
        }
    }
    if sentences.is_empty() {
        return None;
    }
    let path = scratch.join("licence-script.txt");
    std::fs::write(&path, sentences.join("\n")).expect("write the licence script");
    Some(path)
}

/// Where each run's transcript of `input` is kept, in the order the runs are listed: the
/// podflow engines', then faster-whisper's.
fn kept_names(input: &Input, engines: &[&str]) -> Vec<String> {
    let file = input
        .path
        .file_name()
        .map_or("input".into(), |f| f.to_string_lossy().into_owned());
    engines
        .iter()
        .map(|engine| format!("{file}.{engine}.json"))
        .chain(std::iter::once(format!("{file}.faster-whisper.txt")))
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let scratch = std::env::temp_dir().join("podflow-bench-transcribe");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let data = scratch.join("data");
    let inputs = inputs(&scratch);
    let engines = podflow_engines();
    let repeats: usize = std::env::var("PODFLOW_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    // Warm up: whisper.cpp's weights are converted once, Python fills the page cache.
    let warm = &inputs[inputs.len() - 1].path;
    for engine in &engines {
        let _ = timed(&podflow(&data, warm, engine), &scratch);
    }
    let _ = timed(&faster_whisper(warm), &scratch);
    let labels: Vec<String> = engines
        .iter()
        .map(|engine| format!("podflow {engine} {}", compute_type(&data, engine)))
        .collect();

    println!("CPU: {}", podflow_speech::cpu::CpuSummary::detect().line());
    let settings: Vec<String> = KERNEL_SETTINGS
        .iter()
        .filter_map(|name| Some(format!("{name}={}", std::env::var(name).ok()?)))
        .collect();
    if !settings.is_empty() {
        println!("CTranslate2 kernels chosen by: {}", settings.join(" "));
    }
    println!(
        "\n| input | audio | engine, compute type | wall | × real time | peak memory | WER | speaker accuracy (one speaker would score) |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    // Per engine (in run order): reference words, and word errors (WER × words).
    let mut pooled = vec![(0f64, 0f64); engines.len() + 1];
    for input in &inputs {
        let mut rows = Vec::new();
        let mut runs: Vec<(String, Command, bool)> = engines
            .iter()
            .zip(&labels)
            .map(|(engine, label)| (label.clone(), podflow(&data, &input.path, engine), true))
            .collect();
        runs.push((
            "faster-whisper 1.2.1 int8".into(),
            faster_whisper(&input.path),
            false,
        ));
        // Interleaved rounds, so a slow spell of the machine hits every engine alike.
        let mut best: Vec<Option<(String, f64, f64)>> = vec![None; runs.len()];
        for _ in 0..repeats {
            for ((_, cmd, _), slot) in runs.iter().zip(&mut best) {
                let (out, wall, peak_mb) = timed(cmd, &scratch);
                if slot.as_ref().is_none_or(|b| wall < b.1) {
                    *slot = Some((out, wall, peak_mb));
                }
            }
        }
        for (((engine, _, is_podflow), measured), keep_as) in
            runs.into_iter().zip(best).zip(kept_names(input, &engines))
        {
            let Some((out, wall, peak_mb)) = measured else {
                continue;
            };
            std::fs::write(scratch.join(keep_as), &out).expect("keep the transcript");
            let (text, speakers) = if is_podflow {
                let transcript: Transcript =
                    serde_json::from_str(&out).expect("podflow prints transcript.json");
                let text: Vec<&str> = transcript
                    .segments
                    .iter()
                    .map(|s| s.text.as_str())
                    .collect();
                let speakers = (!input.turns.is_empty())
                    .then(|| speaker_accuracy(&transcript.segments, &input.turns));
                (text.join(" "), speakers)
            } else {
                (out, None)
            };
            let m = Measured {
                wall,
                peak_mb,
                wer: word_error_rate(&input.reference, &text),
                speakers,
            };
            let speakers = m.speakers.map_or("–".to_owned(), |s| {
                format!("{:.1}% ({:.1}%)", s.accuracy * 100.0, s.one_speaker * 100.0)
            });
            println!(
                "| {} | {:.0} s | {engine} | {:.1} s | {:.1}× | {:.0} MB | {:.2}% | {speakers} |",
                input.name,
                input.seconds,
                m.wall,
                input.seconds / m.wall,
                m.peak_mb,
                m.wer * 100.0
            );
            let words = normalize(&input.reference).len() as f64;
            let slot = &mut pooled[rows.len()];
            slot.0 += words;
            slot.1 += m.wer * words;
            rows.push(m);
        }
        let anchor = &rows[rows.len() - 1];
        for (label, run) in labels.iter().zip(&rows) {
            ratios.push((
                input.name.clone(),
                label.clone(),
                anchor.wall / run.wall,
                run.wer - anchor.wer,
            ));
        }
    }
    println!(
        "\n| input | podflow engine | speed vs faster-whisper (>1: podflow faster) | WER difference (points) |"
    );
    println!("|---|---|---:|---:|");
    for (name, engine, ratio, wer_diff) in ratios {
        println!(
            "| {name} | {engine} | {ratio:.2}× | {:+.2} |",
            wer_diff * 100.0
        );
    }
    let rate = |(words, errors): (f64, f64)| errors / words.max(1.0);
    let anchor = rate(pooled[engines.len()]);
    println!(
        "\nAll inputs pooled: faster-whisper {:.2}% WER",
        anchor * 100.0
    );
    for (label, counts) in labels.iter().zip(&pooled) {
        let wer = rate(*counts);
        println!(
            "- {label}: {:.2}% WER ({:+.2} points)",
            wer * 100.0,
            (wer - anchor) * 100.0
        );
    }
}
