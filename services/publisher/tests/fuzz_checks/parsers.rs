//! The invariants of the publisher's readers of LLM answers, shared by the proptest targets
//! (`cargo test`) and the cargo-fuzz target (`fuzz/`): nothing panics; what is accepted obeys
//! the documents' rules (chapters start at 0 and increase inside the episode, clips lie
//! inside the audio and last 3–120 s, titles are trimmed and non-empty); every refusal and
//! every dropped item has a reason; nothing produced is far larger than the answer.

use proptest::prelude::*;
use publisher::documents::{CLIP_LENGTH, parse_chapters, plan_clips, titles};

/// Any text as every answer, for an episode of `duration` seconds.
pub fn any_answer(text: &str, duration: f64) -> Result<(), TestCaseError> {
    check_chapters(text, duration)?;
    check_clips(text, duration)?;
    check_titles(text)
}

/// What the answer may make, at most: its own size a few times over (a reason quotes a
/// title and a time), plus a fixed allowance per item for the sentence around it.
pub fn budget(answer: &str, items: usize) -> usize {
    4 * answer.len() + 200 * items + 1024
}

pub fn check_chapters(answer: &str, duration: f64) -> Result<(), TestCaseError> {
    match parse_chapters(answer, duration) {
        Ok((chapters, dropped)) => {
            prop_assert!(!chapters.is_empty());
            prop_assert_eq!(chapters[0].start_time, 0.0);
            for pair in chapters.windows(2) {
                prop_assert!(pair[1].start_time > pair[0].start_time);
            }
            for c in &chapters {
                prop_assert!(c.start_time.is_finite() && c.start_time >= 0.0);
                if duration.is_finite() {
                    prop_assert!(c.start_time < duration.max(0.0) + 0.001);
                }
                prop_assert!(!c.title.is_empty() && c.title.trim() == c.title);
            }
            for reason in &dropped {
                prop_assert!(!reason.trim().is_empty());
            }
            let made: usize = chapters.iter().map(|c| c.title.len()).sum::<usize>()
                + dropped.iter().map(String::len).sum::<usize>();
            prop_assert!(
                made <= budget(answer, chapters.len() + dropped.len()),
                "{made} bytes"
            );
        }
        Err(e) => {
            let reason = e.to_string();
            prop_assert!(!reason.trim().is_empty());
            prop_assert!(
                reason.len() <= budget(answer, answer.matches('{').count()),
                "{} bytes",
                reason.len()
            );
        }
    }
    Ok(())
}

pub fn check_clips(answer: &str, duration: f64) -> Result<(), TestCaseError> {
    match plan_clips(answer, duration) {
        Ok((clips, skipped)) => {
            for (i, c) in clips.iter().enumerate() {
                prop_assert_eq!(c.n, i + 1);
                prop_assert!(c.start.is_finite() && c.end.is_finite());
                prop_assert!(c.start >= 0.0);
                if duration.is_finite() {
                    prop_assert!(c.end <= duration);
                }
                let length = c.end - c.start;
                prop_assert!(
                    (CLIP_LENGTH.0..=CLIP_LENGTH.1).contains(&length),
                    "{length}"
                );
                prop_assert!(!c.hook.is_empty() && c.hook.trim() == c.hook);
            }
            for s in &skipped {
                prop_assert!(!s.reason.trim().is_empty() && s.suggestion >= 1);
            }
            let made: usize = clips.iter().map(|c| c.hook.len()).sum::<usize>()
                + skipped.iter().map(|s| s.reason.len()).sum::<usize>();
            prop_assert!(
                made <= budget(answer, clips.len() + skipped.len()),
                "{made} bytes"
            );
        }
        Err(e) => {
            let reason = e.to_string();
            prop_assert!(!reason.trim().is_empty());
            prop_assert!(reason.len() <= budget(answer, 1));
        }
    }
    Ok(())
}

pub fn check_titles(answer: &str) -> Result<(), TestCaseError> {
    let found = titles(answer);
    prop_assert!(found.len() <= answer.lines().count());
    for t in &found {
        prop_assert!(!t.is_empty() && t.trim() == t, "{t:?}");
    }
    prop_assert!(found.iter().map(String::len).sum::<usize>() <= answer.len());
    Ok(())
}
