//! The subtitle parsers' invariants, shared by the proptest targets (`cargo test`) and the
//! cargo-fuzz target (`fuzz/`): nothing panics; an error names a line inside the file and
//! says what is wrong; parsed cues hold no more text than the file and have finite,
//! non-negative times.

use podflow_core::subtitles::{SubtitleParseError, parse_srt, parse_vtt};
use proptest::prelude::*;

/// Any text, read as SRT, as WebVTT, and as WebVTT behind a valid header.
pub fn any_text(text: &str) -> Result<(), TestCaseError> {
    check(text, parse_srt(text))?;
    check(text, parse_vtt(text))?;
    let vtt = format!("WEBVTT\n\n{text}");
    check(&vtt, parse_vtt(&vtt))
}

pub fn check(
    text: &str,
    parsed: Result<Vec<podflow_core::subtitles::Cue>, SubtitleParseError>,
) -> Result<(), TestCaseError> {
    match parsed {
        Ok(cues) => {
            let lines: usize = cues.iter().map(|c| c.lines.len()).sum();
            prop_assert!(lines <= text.lines().count());
            let bytes: usize = cues
                .iter()
                .flat_map(|c| c.lines.iter().chain(c.speaker.iter()))
                .map(String::len)
                .sum();
            prop_assert!(
                bytes <= text.len(),
                "{bytes} bytes of cues from {}",
                text.len()
            );
            for c in &cues {
                prop_assert!(c.start.is_finite() && c.end.is_finite());
                prop_assert!(c.start >= 0.0 && c.end >= 0.0);
            }
        }
        Err(SubtitleParseError::Malformed { line, message }) => {
            prop_assert!(!message.trim().is_empty());
            prop_assert!(line >= 1 && line <= text.lines().count() + 2, "line {line}");
        }
    }
    Ok(())
}
