//! The speech engine on whatever CPU runs the tests: every compute type podflow may pick
//! works here, the pick is the first of them, an engine that cannot load hands over to the
//! other one (and the step says so), and `podflow doctor` reports all of it. Each path is
//! forced with `PODFLOW_WHISPER_COMPUTE_TYPE`, so none depends on the CPU's instruction sets.
#![cfg(feature = "ctranslate2")]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

mod support;

use podflow_core::transcript::Transcript;
use podflow_fakes::{FakeLlm, FakeLlmConfig, wer::word_error_rate};
use podflow_speech::compute::AUTO_ORDER;
use serde_json::Value;

const SPOKEN: &str = "Welcome to the show. Today we talk about reliable pipelines for podcasts, \
    and why nothing expensive should ever be done twice.";

/// A short generated clip shared by the tests.
fn speech() -> &'static Path {
    static SPEECH: OnceLock<PathBuf> = OnceLock::new();
    SPEECH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("podflow-engines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let wav = dir.join("speech.wav");
        let status = Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "150", "-w"])
            .arg(&wav)
            .arg(SPOKEN)
            .status()
            .expect("espeak-ng runs (scripts/setup.sh installs it)");
        assert!(status.success());
        wav
    })
}

fn podflow(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.env("PODFLOW_DATA_DIR", data)
        .env_remove("PODFLOW_WHISPER_ENGINE")
        .env_remove("RUST_LOG");
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("podflow runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `podflow --verbose transcribe --format json` with `compute` forced (or auto).
fn transcribe(data: &Path, compute: Option<&str>) -> Output {
    let mut cmd = podflow(data);
    match compute {
        Some(c) => cmd.env("PODFLOW_WHISPER_COMPUTE_TYPE", c),
        None => cmd.env_remove("PODFLOW_WHISPER_COMPUTE_TYPE"),
    };
    cmd.args(["--verbose", "transcribe", "--format", "json"])
        .arg(speech());
    run(cmd)
}

/// The compute type the verbose log says the model loaded in.
fn loaded_compute_type(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "CTranslate2 loaded the model")
        .and_then(|v| v["fields"]["compute_type"].as_str().map(str::to_owned))
}

#[test]
fn each_compute_type_podflow_may_pick_transcribes_and_auto_picks_the_first_that_works() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut working = Vec::new();
    for kind in AUTO_ORDER {
        let out = transcribe(data.path(), Some(kind.name()));
        let log = stderr(&out);
        if out.status.code() != Some(0) {
            panic!("{kind}: {log}");
        }
        let transcript: Transcript = serde_json::from_slice(&out.stdout).expect("json");
        // A type this CPU lacks hands over to whisper.cpp (tested below); one it has runs
        // CTranslate2 in exactly that type.
        if transcript.engine == "ctranslate2" {
            assert_eq!(
                loaded_compute_type(&log).as_deref(),
                Some(kind.name()),
                "{log}"
            );
            working.push(kind.name());
        }
        let wer = word_error_rate(SPOKEN, &transcript.full_text());
        assert!(
            wer < 0.2,
            "{kind}: WER {wer:.3}: {}",
            transcript.full_text()
        );
    }
    // float32 runs wherever CTranslate2 does.
    assert!(working.contains(&"float32"), "{working:?}");
    let out = transcribe(data.path(), None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        loaded_compute_type(&stderr(&out)).as_deref(),
        working.first().copied(),
        "auto picks the first type in {AUTO_ORDER:?} that loads here"
    );
}

/// The kernels other x86-64 CPUs run, forced on this one. CTranslate2's library picks its
/// own kernels per instruction set and its matrix library by vendor (Intel MKL on Intel,
/// oneDNN elsewhere); these variables make it take the paths of a CPU without AVX, of one
/// with AVX but not AVX2, of an Intel and of an AMD CPU, whichever CPU runs the tests.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_kernels_of_other_x86_cpus_transcribe_here_too() {
    let data = tempfile::tempdir().expect("tempdir");
    let paths: [(&str, &[(&str, &str)]); 4] = [
        (
            "no AVX",
            &[
                ("CT2_FORCE_CPU_ISA", "GENERIC"),
                ("ONEDNN_MAX_CPU_ISA", "SSE41"),
            ],
        ),
        (
            "AVX without AVX2",
            &[("CT2_FORCE_CPU_ISA", "AVX"), ("ONEDNN_MAX_CPU_ISA", "AVX")],
        ),
        ("Intel (MKL)", &[("CT2_USE_MKL", "1")]),
        ("AMD (oneDNN)", &[("CT2_USE_MKL", "0")]),
    ];
    for (cpu, vars) in paths {
        let mut cmd = podflow(data.path());
        cmd.env_remove("PODFLOW_WHISPER_COMPUTE_TYPE")
            .envs(vars.iter().copied())
            .args(["--verbose", "transcribe", "--format", "json"])
            .arg(speech());
        let out = run(cmd);
        let log = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{cpu}: {log}");
        let transcript: Transcript = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(transcript.engine, "ctranslate2", "{cpu}: {log}");
        let compute = loaded_compute_type(&log);
        assert!(
            compute
                .as_deref()
                .is_some_and(|c| AUTO_ORDER.iter().any(|k| k.name() == c)),
            "{cpu}: {compute:?}"
        );
        let wer = word_error_rate(SPOKEN, &transcript.full_text());
        assert!(
            wer < 0.2,
            "{cpu} ({compute:?}): WER {wer:.3}: {}",
            transcript.full_text()
        );
    }
}

#[test]
fn a_compute_type_the_cpu_cannot_run_hands_over_to_whisper_cpp_with_a_note() {
    let data = tempfile::tempdir().expect("tempdir");
    // CTranslate2 has no float16 matrix kernels on any CPU.
    let out = transcribe(data.path(), Some("float16"));
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let transcript: Transcript = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(transcript.engine, "whisper.cpp");
    let wer = word_error_rate(SPOKEN, &transcript.full_text());
    assert!(wer < 0.2, "WER {wer:.3}: {}", transcript.full_text());
    let note = log
        .lines()
        .find(|l| l.starts_with("note: "))
        .unwrap_or_else(|| panic!("no note line: {log}"));
    assert!(note.contains("float16"), "{note}");
    assert!(note.contains("PODFLOW_WHISPER_COMPUTE_TYPE"), "{note}");
    assert!(note.contains("transcribed with whisper.cpp"), "{note}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_engine_cannot_load_still_delivers_and_the_step_note_says_why() {
    let llm = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake LLM")
        .url;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = podflow(data.path());
    cmd.env("PODFLOW_LLM_URL", &llm)
        .env("PODFLOW_LLM_MODEL", "fake-model")
        .env("PODFLOW_WHISPER_COMPUTE_TYPE", "bfloat16")
        .args(["run", "--json"])
        .arg(speech());
    let out = tokio::task::spawn_blocking(move || run(cmd))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(
        out.stdout
            .split(|&b| b == b'\n')
            .next()
            .expect("a line per episode"),
    )
    .expect("json report");
    let episode_id = report["episode_id"].as_str().expect("episode id");
    let note = support::step_note(data.path(), episode_id, "transcribe").await;
    assert!(note.contains("bfloat16"), "{note}");
    assert!(note.contains("transcribed with whisper.cpp"), "{note}");
    let transcript: Transcript = serde_json::from_slice(
        &std::fs::read(
            data.path()
                .join("episodes")
                .join(episode_id)
                .join("transcript.json"),
        )
        .expect("transcript.json"),
    )
    .expect("transcript");
    assert_eq!(transcript.engine, "whisper.cpp");
}

fn doctor(data: &Path, path_env: Option<&Path>) -> (Option<i32>, Vec<Value>) {
    let mut cmd = podflow(data);
    cmd.env_remove("PODFLOW_WHISPER_COMPUTE_TYPE")
        // Nothing listens here: the LLM check must warn, not fail.
        .env("PODFLOW_LLM_URL", "http://127.0.0.1:9/v1")
        .args(["doctor", "--json"]);
    if let Some(dir) = path_env {
        cmd.env("PATH", dir);
    }
    let out = run(cmd);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), checks)
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

#[test]
fn doctor_names_the_engine_and_compute_type_and_fails_without_ffmpeg() {
    let data = tempfile::tempdir().expect("tempdir");
    let (code, checks) = doctor(data.path(), None);
    assert_eq!(code, Some(0), "{checks:?}");
    let engine = check(&checks, "engine");
    assert_eq!(engine["status"], "ok");
    let detail = engine["detail"].as_str().expect("detail");
    assert!(
        AUTO_ORDER
            .iter()
            .any(|k| detail == format!("ctranslate2, compute type {k}")),
        "{detail}"
    );
    assert!(
        check(&checks, "model")["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("tiny.en at ") && d.ends_with(" MB)"))
    );
    assert!(
        check(&checks, "cpu")["detail"]
            .as_str()
            .is_some_and(|d| d.contains(std::env::consts::ARCH))
    );
    assert_eq!(check(&checks, "llm")["status"], "warn");
    assert!(
        check(&checks, "ffmpeg")["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("ffmpeg version"))
    );

    // Without ffmpeg on the PATH: exit 1, and the check says how to install it.
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, checks) = doctor(data.path(), Some(empty.path()));
    assert_eq!(code, Some(1), "{checks:?}");
    let ffmpeg = check(&checks, "ffmpeg");
    assert_eq!(ffmpeg["status"], "fail");
    assert!(
        ffmpeg["fix"]
            .as_str()
            .is_some_and(|f| f.contains("apt-get install ffmpeg"))
    );
}

#[test]
fn a_mistyped_compute_type_is_a_setup_error_naming_the_accepted_values() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = transcribe(data.path(), Some("int4"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("PODFLOW_WHISPER_COMPUTE_TYPE=int4") && said.contains("int8_float32"),
        "{said}"
    );
    assert!(
        out.stdout.is_empty(),
        "no transcript from the slower engine"
    );
}
