//! Which engine writes an episode's texts (summary, chapters, show notes, clips, titles…):
//! an LLM through the prompt catalog, podflow's built-in extractive engine, or both.

use std::{fmt, str::FromStr};

/// `PODFLOW_TEXT_ENGINE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEngine {
    /// LLM prompts, and the extractive engine for each output whose prompt failed (the
    /// prompt stays in the dead-letter queue for a replay).
    #[default]
    Auto,
    /// The extractive engine alone: no prompt is sent to an LLM.
    Extractive,
    /// LLM prompts alone: an output whose prompt failed is left out.
    Llm,
}

impl TextEngine {
    /// Whether the prompt catalog is sent to an LLM.
    pub fn sends_prompts(self) -> bool {
        self != Self::Extractive
    }

    /// The environment's choice (`PODFLOW_TEXT_ENGINE`), `Auto` when unset.
    pub fn from_env() -> Result<Self, TextEngineError> {
        match std::env::var("PODFLOW_TEXT_ENGINE") {
            Ok(value) if !value.trim().is_empty() => value.parse(),
            _ => Ok(Self::Auto),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "text engine `{0}` is not known: use auto, extractive or llm (PODFLOW_TEXT_ENGINE / --text-engine)"
)]
pub struct TextEngineError(String);

impl FromStr for TextEngine {
    type Err = TextEngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "extractive" => Ok(Self::Extractive),
            "llm" => Ok(Self::Llm),
            _ => Err(TextEngineError(s.to_owned())),
        }
    }
}

impl fmt::Display for TextEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Extractive => "extractive",
            Self::Llm => "llm",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_an_unknown_one_says_what_to_use() {
        for engine in [TextEngine::Auto, TextEngine::Extractive, TextEngine::Llm] {
            assert_eq!(engine.to_string().parse::<TextEngine>(), Ok(engine));
        }
        assert_eq!(" LLM ".parse::<TextEngine>(), Ok(TextEngine::Llm));
        let e = "gpt".parse::<TextEngine>().expect_err("unknown");
        assert!(e.to_string().contains("use auto, extractive or llm"), "{e}");
        assert!(!TextEngine::Extractive.sends_prompts());
        assert!(TextEngine::Auto.sends_prompts());
    }
}
