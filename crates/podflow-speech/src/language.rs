//! The language setting against the model at hand: what each engine decodes in, the
//! errors for a language the model cannot transcribe, and Whisper's language codes.

use podflow_core::language::{self, Language};

/// What an engine does about the language, settled when its model loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Transcribe in this language (ISO 639-1): the one asked for, or English for an
    /// English-only model.
    Fixed(String),
    /// Identify the language from the audio (a multilingual model and `auto`).
    Detect,
}

/// A language the model cannot transcribe in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanguageError {
    #[error(
        "language `{language}` ({name}) needs a multilingual Whisper model, and {model} is English-only: point PODFLOW_WHISPER_MODEL (--whisper-model) at a multilingual one (a model without `.en` in its name: base, small…), or use --language auto or en"
    )]
    EnglishOnly {
        model: String,
        language: String,
        name: String,
    },
    #[error(
        "Whisper model {model} has no language `{language}` ({name}): use --language auto or one of Whisper's languages"
    )]
    NotInModel {
        model: String,
        language: String,
        name: String,
    },
}

/// Settles `language` for `model`; `knows` says whether the model has a Whisper language
/// code (see [`whisper_code`]).
pub fn decide(
    language: &Language,
    model: &str,
    multilingual: bool,
    knows: impl Fn(&str) -> bool,
) -> Result<Decision, LanguageError> {
    let named = |code: &str| language::display_name(code);
    match (language, multilingual) {
        // An English-only model has nothing to detect and no language token to force.
        (Language::Auto, false) => Ok(Decision::Fixed("en".into())),
        (Language::Code(code), false) if code == "en" => Ok(Decision::Fixed("en".into())),
        (Language::Code(code), false) => Err(LanguageError::EnglishOnly {
            model: model.to_owned(),
            language: code.clone(),
            name: named(code),
        }),
        (Language::Auto, true) => Ok(Decision::Detect),
        (Language::Code(code), true) if knows(whisper_code(code)) => {
            Ok(Decision::Fixed(code.clone()))
        }
        (Language::Code(code), true) => Err(LanguageError::NotInModel {
            model: model.to_owned(),
            language: code.clone(),
            name: named(code),
        }),
    }
}

/// Whisper's code for an ISO 639-1 language: the same two letters, except Javanese, which
/// Whisper's tokenizer (and so every model and whisper.cpp) spells `jw`.
pub fn whisper_code(iso: &str) -> &str {
    match iso {
        "jv" => "jw",
        other => other,
    }
}

/// The ISO code a transcript records for a language Whisper named (`jw` → `jv`; its few
/// longer codes, `haw` and `yue`, stay as they are).
pub fn iso_code(whisper: &str) -> String {
    match whisper {
        "jw" => "jv".into(),
        other => other.to_owned(),
    }
}

/// Part of a transcript cache key: a multilingual model's transcript depends on the
/// language setting; an English-only model's does not (`auto` is English there), so its
/// keys stay as they were before languages could be chosen.
pub fn fingerprint_suffix(language: &Language, multilingual: bool) -> String {
    if multilingual {
        format!("-lang-{language}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> Language {
        Language::Code(c.into())
    }

    #[test]
    fn an_english_only_model_takes_auto_and_english_and_refuses_the_rest() {
        let never = |_: &str| false;
        assert_eq!(
            decide(&Language::Auto, "tiny.en", false, never),
            Ok(Decision::Fixed("en".into()))
        );
        assert_eq!(
            decide(&code("en"), "tiny.en", false, never),
            Ok(Decision::Fixed("en".into()))
        );
        let err = decide(&code("de"), "tiny.en", false, never).expect_err("German");
        let text = err.to_string();
        assert!(
            text.contains("`de` (German)")
                && text.contains("tiny.en is English-only")
                && text.contains("PODFLOW_WHISPER_MODEL"),
            "{text}"
        );
    }

    #[test]
    fn a_multilingual_model_detects_for_auto_and_forces_a_language_it_knows() {
        let knows = |c: &str| ["de", "en", "jw"].contains(&c);
        assert_eq!(
            decide(&Language::Auto, "base", true, knows),
            Ok(Decision::Detect)
        );
        assert_eq!(
            decide(&code("de"), "base", true, knows),
            Ok(Decision::Fixed("de".into()))
        );
        // Javanese is asked for as `jv` and found as Whisper's `jw`.
        assert_eq!(
            decide(&code("jv"), "base", true, knows),
            Ok(Decision::Fixed("jv".into()))
        );
        let err = decide(&code("kl"), "base", true, knows).expect_err("Kalaallisut");
        assert!(
            err.to_string()
                .contains("base has no language `kl` (Kalaallisut)"),
            "{err}"
        );
    }

    #[test]
    fn only_multilingual_keys_change_with_the_language() {
        assert_eq!(fingerprint_suffix(&Language::Auto, false), "");
        assert_eq!(fingerprint_suffix(&code("en"), false), "");
        assert_eq!(fingerprint_suffix(&Language::Auto, true), "-lang-auto");
        assert_eq!(fingerprint_suffix(&code("de"), true), "-lang-de");
        assert_eq!(iso_code("jw"), "jv");
        assert_eq!(whisper_code("jv"), "jw");
        assert_eq!(iso_code("de"), "de");
    }
}
