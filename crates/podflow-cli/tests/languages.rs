//! `--language` from the command line to the engine and back in the transcript: refused
//! when it is not a language, refused by the English-only bundled model when it is not
//! English, and German identified with the multilingual model (`scripts/setup.sh --tests`).
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use podflow_core::transcript::Transcript;

fn german(dir: &Path) -> PathBuf {
    let wav = dir.join("folge.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "de", "-s", "150", "-w"])
        .arg(&wav)
        .arg("Guten Tag und herzlich willkommen. Heute sprechen wir über das Wetter in Berlin.")
        .status()
        .expect("espeak-ng runs (scripts/setup.sh installs it)");
    assert!(status.success());
    wav
}

fn transcribe(data: &Path, wav: &Path, args: &[&str], model: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.env("PODFLOW_DATA_DIR", data)
        .env_remove("PODFLOW_LANGUAGE")
        .env_remove("PODFLOW_WHISPER_ENGINE")
        .env_remove("RUST_LOG")
        .arg("transcribe")
        .arg(wav)
        .args(args);
    match model {
        Some(model) => cmd.env("PODFLOW_WHISPER_MODEL", model),
        None => cmd.env_remove("PODFLOW_WHISPER_MODEL"),
    };
    cmd.output().expect("podflow runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_language_flag_reaches_the_engine_and_the_transcript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = german(dir.path());
    let data = dir.path().join("data");

    // Not a language: refused by the flag's parser, with what to write instead.
    let out = transcribe(&data, &wav, &["--language", "de-DE"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a region is not needed: `de`"),
        "{}",
        stderr(&out)
    );

    // German with the bundled English-only model: one line naming the model and the fix.
    let out = transcribe(&data, &wav, &["--language", "de"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("tiny.en is English-only") && text.contains("PODFLOW_WHISPER_MODEL"),
        "{text}"
    );
    assert_eq!(text.trim().lines().count(), 1, "{text}");

    // The multilingual model, `auto` by default: the transcript says German.
    let model = podflow_speech::locate::multilingual_model().unwrap_or_else(|e| panic!("{e}"));
    let out = transcribe(&data, &wav, &["--format", "json"], Some(&model));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let transcript: Transcript = serde_json::from_slice(&out.stdout).expect("transcript json");
    assert_eq!(transcript.language, "de");
    assert_eq!(transcript.model, "base");
    // Most of the German words (a short clip and a small model lose one or two).
    let text = transcript.full_text().to_lowercase();
    let words = [
        "guten",
        "willkommen",
        "heute",
        "sprechen",
        "wetter",
        "berlin",
    ];
    let heard = words.iter().filter(|w| text.contains(*w)).count();
    assert!(heard * 2 >= words.len(), "{heard} of {words:?} in: {text}");
}
