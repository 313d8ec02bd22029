//! The real model on generated speech, with each engine built in: loading (and for
//! whisper.cpp conversion), words, timestamps, WER.
use std::process::Command;

use podflow_core::{SpeechToText, subtitles, wer::word_error_rate};
use transcriber::engine::{EngineKind, LocalEngine};

fn built_engines() -> Vec<EngineKind> {
    let mut kinds = vec![EngineKind::WhisperCpp];
    if cfg!(feature = "ctranslate2") {
        kinds.push(EngineKind::Ctranslate2);
    }
    kinds
}

const SCRIPT: &str = "Welcome back to the show. Today we are talking about building reliable pipelines for podcasts. \
Every step should run on its own and retry when something goes wrong.";

#[tokio::test]
async fn transcribes_generated_speech_with_low_word_error_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(SCRIPT)
        .status()
        .expect("espeak-ng is installed (see .ci/run)");
    assert!(status.success());
    for kind in built_engines() {
        let models = dir.path().join(format!("models-{kind:?}"));
        let engine = LocalEngine::new(kind, None, models.clone()).expect("engine is built in");
        check_engine(&engine, &wav).await;
        if kind == EngineKind::WhisperCpp {
            // The converted model is cached: one file, reused by later engines.
            let cached: Vec<_> = std::fs::read_dir(&models).expect("cache").collect();
            assert_eq!(cached.len(), 1);
        }
    }
}

async fn check_engine(engine: &LocalEngine, wav: &std::path::Path) {
    let transcript = engine.transcribe(wav).await.expect("transcribes");
    let name = engine.engine();
    assert_eq!(engine.model(), "tiny.en");
    let wer = word_error_rate(SCRIPT, &transcript.full_text());
    // tiny.en on espeak-ng speech measured 5-7% WER on long scripts; a short clip has little
    // room for error, so 15% leaves space for a word or two without hiding a broken model
    // (a wrong mel filterbank or tensor mapping gives garbage, far above this).
    assert!(wer < 0.15, "{name}: WER {wer:.3}: {}", transcript.full_text());
    // Timestamps: inside the audio, increasing, and words carry times.
    let mut last = 0.0;
    for seg in &transcript.segments {
        assert!(seg.start >= last - 0.01 && seg.end >= seg.start, "{name}: {seg:?}");
        assert!(seg.end <= transcript.duration_seconds + 0.5);
        assert!(!seg.words.is_empty(), "{name}: {seg:?}");
        for w in &seg.words {
            assert!(
                w.start >= seg.start - 0.5 && w.end <= seg.end + 0.5 && w.end >= w.start,
                "{name}: word outside its segment: {w:?} in {seg:?}"
            );
        }
        last = seg.start;
    }
    let cues = subtitles::build_cues(&transcript);
    assert!(subtitles::rule_violations(&cues, false).is_empty());
}
