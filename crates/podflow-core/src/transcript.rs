//! podflow's normalized transcript (`transcript.json`), produced identically by every
//! engine, and the text views prompts are rendered with.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole transcript. Times are seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transcript {
    pub language: String,
    pub duration_seconds: f64,
    pub engine: String,
    pub model: String,
    pub segments: Vec<TranscriptSegment>,
}

/// A stretch of speech by one speaker, usually a sentence or two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptSegment {
    pub start: f64,
    pub end: f64,
    /// A speaker label (`spk_0`...) when the engine could tell speakers apart; absent
    /// rather than guessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    pub text: String,
    /// Word timings where the engine gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<TimedWord>,
}

/// One word with its time span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimedWord {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// Which view of the transcript a prompt is rendered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptView {
    /// Running text, one paragraph per speaker turn.
    #[default]
    Plain,
    /// `Speaker: text` per turn.
    Speakers,
    /// `[HH:MM:SS] Speaker: text` per turn — for chapters and clips.
    Timestamped,
}

impl Transcript {
    /// All the text, space-joined.
    pub fn full_text(&self) -> String {
        let parts: Vec<&str> = self.segments.iter().map(|s| s.text.trim()).collect();
        parts.join(" ")
    }

    /// Consecutive segments of the same speaker merged into turns: (start, speaker, text).
    fn turns(&self) -> Vec<(f64, Option<&str>, String)> {
        let mut turns: Vec<(f64, Option<&str>, String)> = Vec::new();
        for seg in &self.segments {
            let text = seg.text.trim();
            if text.is_empty() {
                continue;
            }
            match turns.last_mut() {
                Some(last) if last.1 == seg.speaker.as_deref() && last.2.len() < 1200 => {
                    last.2.push(' ');
                    last.2.push_str(text);
                }
                _ => turns.push((seg.start, seg.speaker.as_deref(), text.to_owned())),
            }
        }
        turns
    }

    /// Renders the transcript for a prompt.
    pub fn render(&self, view: TranscriptView) -> String {
        let turns = self.turns();
        let label = |s: Option<&str>| s.map_or_else(|| "Speaker".to_owned(), speaker_name);
        let lines: Vec<String> = turns
            .into_iter()
            .map(|(start, speaker, text)| match view {
                TranscriptView::Plain => text,
                TranscriptView::Speakers => format!("{}: {text}", label(speaker)),
                TranscriptView::Timestamped => {
                    format!("[{}] {}: {text}", clock(start), label(speaker))
                }
            })
            .collect();
        lines.join("\n\n")
    }
}

/// `spk_0` → `Speaker 1`; other labels as they are.
fn speaker_name(label: &str) -> String {
    match label
        .strip_prefix("spk_")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some(n) => format!("Speaker {}", n + 1),
        None => label.to_owned(),
    }
}

/// `HH:MM:SS` for a time in seconds.
pub fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0).floor() as u64;
    format!(
        "{:02}:{:02}:{:02}",
        total / 3600,
        (total / 60) % 60,
        total % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: f64, speaker: Option<&str>, text: &str) -> TranscriptSegment {
        TranscriptSegment {
            start,
            end: start + 1.0,
            speaker: speaker.map(str::to_owned),
            text: text.to_owned(),
            words: vec![],
        }
    }

    fn sample() -> Transcript {
        Transcript {
            language: "en".into(),
            duration_seconds: 70.0,
            engine: "test".into(),
            model: "none".into(),
            segments: vec![
                seg(0.0, Some("spk_0"), " Welcome back."),
                seg(2.0, Some("spk_0"), "Today: Rust."),
                seg(65.5, Some("spk_1"), "Thanks for having me."),
            ],
        }
    }

    #[test]
    fn views_merge_turns_and_label_speakers() {
        let t = sample();
        assert_eq!(
            t.render(TranscriptView::Speakers),
            "Speaker 1: Welcome back. Today: Rust.\n\nSpeaker 2: Thanks for having me."
        );
        assert_eq!(
            t.render(TranscriptView::Timestamped),
            "[00:00:00] Speaker 1: Welcome back. Today: Rust.\n\n[00:01:05] Speaker 2: Thanks for having me."
        );
        assert_eq!(
            t.render(TranscriptView::Plain),
            "Welcome back. Today: Rust.\n\nThanks for having me."
        );
    }

    #[test]
    fn unlabelled_segments_render_as_one_speaker() {
        let mut t = sample();
        for s in &mut t.segments {
            s.speaker = None;
        }
        assert!(
            t.render(TranscriptView::Speakers)
                .starts_with("Speaker: Welcome back. Today: Rust. Thanks")
        );
    }

    #[test]
    fn clock_formats_hours() {
        assert_eq!(clock(3725.9), "01:02:05");
        assert_eq!(clock(-3.0), "00:00:00");
    }
}
