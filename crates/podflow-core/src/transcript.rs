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
    /// `[HH:MM:SS] Speaker: text` per turn, with a further mark at every sentence (and every
    /// 30 s inside a long one) — for chapters and clips.
    Timestamped,
}

impl Transcript {
    /// All the text, space-joined.
    pub fn full_text(&self) -> String {
        let parts: Vec<&str> = self.segments.iter().map(|s| s.text.trim()).collect();
        parts.join(" ")
    }

    /// Consecutive segments of the same speaker merged into turns of up to about
    /// [`TURN_CHARS`] characters.
    fn turns(&self) -> Vec<Turn<'_>> {
        let mut turns: Vec<Turn<'_>> = Vec::new();
        for seg in &self.segments {
            let text = seg.text.trim();
            if text.is_empty() {
                continue;
            }
            let speaker = seg.speaker.as_deref();
            match turns.last_mut() {
                Some(last) if last.speaker == speaker && last.chars < TURN_CHARS => {
                    last.chars += text.len() + 1;
                    last.pieces.push((seg.start, text));
                }
                _ => turns.push(Turn {
                    speaker,
                    chars: text.len(),
                    pieces: vec![(seg.start, text)],
                }),
            }
        }
        turns
    }

    /// Renders the transcript for a prompt.
    pub fn render(&self, view: TranscriptView) -> String {
        let label = |s: Option<&str>| s.map_or_else(|| "Speaker".to_owned(), speaker_name);
        let paragraphs: Vec<String> = self
            .turns()
            .into_iter()
            .map(|turn| match view {
                TranscriptView::Plain => turn.text(),
                TranscriptView::Speakers => format!("{}: {}", label(turn.speaker), turn.text()),
                TranscriptView::Timestamped => turn.timed(&label(turn.speaker)),
            })
            .collect();
        paragraphs.join("\n\n")
    }
}

/// A turn closes after this many characters even when the speaker goes on (or no speaker
/// is known), so that a solo show is not one paragraph.
const TURN_CHARS: usize = 1200;

/// In the timestamped view, a time mark starts every sentence, and a sentence running
/// longer than this gets another at its next segment: a model choosing chapters and clips
/// can only cite the times it is shown.
const MARK_EVERY_SECONDS: f64 = 30.0;

/// One speaker's consecutive segments: their starts and trimmed texts.
struct Turn<'a> {
    speaker: Option<&'a str>,
    chars: usize,
    pieces: Vec<(f64, &'a str)>,
}

impl Turn<'_> {
    fn text(&self) -> String {
        let texts: Vec<&str> = self.pieces.iter().map(|(_, text)| *text).collect();
        texts.join(" ")
    }

    /// `[HH:MM:SS] Label: text`, with a further `[HH:MM:SS]` before each segment that
    /// starts a sentence or comes [`MARK_EVERY_SECONDS`] after the last mark.
    fn timed(&self, label: &str) -> String {
        let mut out = String::new();
        let mut last_mark = f64::NEG_INFINITY;
        let mut sentence_ended = true;
        for (i, &(start, text)) in self.pieces.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            if sentence_ended || start - last_mark >= MARK_EVERY_SECONDS {
                out.push_str(&format!("[{}] ", clock(start)));
                if i == 0 {
                    out.push_str(&format!("{label}: "));
                }
                last_mark = start;
            }
            out.push_str(text);
            sentence_ended = text.ends_with(['.', '?', '!', '…']);
        }
        out
    }
}

impl Transcript {
    /// Gives the engine's speaker labels the people's names: `names[0]` to the voice heard
    /// first, `names[1]` to the next new voice, and so on. Voices past the list keep their
    /// labels. Returns the names used, in that order.
    pub fn name_speakers(&mut self, names: &[String]) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        for seg in &self.segments {
            if let Some(label) = &seg.speaker
                && !order.contains(label)
            {
                order.push(label.clone());
            }
        }
        let named: Vec<(String, String)> = order.into_iter().zip(names.iter().cloned()).collect();
        for seg in &mut self.segments {
            if let Some(label) = &seg.speaker
                && let Some((_, name)) = named.iter().find(|(l, _)| l == label)
            {
                seg.speaker = Some(name.clone());
            }
        }
        named.into_iter().map(|(_, name)| name).collect()
    }

    /// The Podcasting 2.0 JSON transcript (`application/json`, version 1.0.0): one segment
    /// per transcript segment, with the speaker's name where one is known.
    pub fn to_podcast_json(&self) -> String {
        let segments: Vec<serde_json::Value> = self
            .segments
            .iter()
            .filter(|s| !s.text.trim().is_empty())
            .map(|s| {
                let mut segment = serde_json::json!({
                    "startTime": s.start,
                    "endTime": s.end,
                    "body": s.text.trim(),
                });
                if let Some(label) = &s.speaker {
                    segment["speaker"] = speaker_name(label).into();
                }
                segment
            })
            .collect();
        let doc = serde_json::json!({ "version": "1.0.0", "segments": segments });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }
}

/// `spk_0` → `Speaker 1`; other labels as they are.
pub fn speaker_name(label: &str) -> String {
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
    fn names_go_to_voices_in_the_order_they_are_first_heard() {
        let mut t = sample();
        t.segments = vec![
            seg(0.0, Some("spk_1"), "Welcome."),
            seg(2.0, Some("spk_0"), "Thanks."),
            seg(4.0, Some("spk_2"), "Hi all."),
            seg(6.0, Some("spk_1"), "So."),
        ];
        let used = t.name_speakers(&["Ana".into(), "Ben".into()]);
        assert_eq!(used, ["Ana", "Ben"]);
        let speakers: Vec<Option<&str>> = t.segments.iter().map(|s| s.speaker.as_deref()).collect();
        assert_eq!(
            speakers,
            [Some("Ana"), Some("Ben"), Some("spk_2"), Some("Ana")]
        );
        let doc: serde_json::Value = serde_json::from_str(&t.to_podcast_json()).expect("json");
        assert_eq!(doc["version"], "1.0.0");
        assert_eq!(doc["segments"][0]["speaker"], "Ana");
        assert_eq!(doc["segments"][2]["speaker"], "Speaker 3");
        assert_eq!(doc["segments"][1]["startTime"], 2.0);
        assert_eq!(doc["segments"][3]["body"], "So.");
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
            "[00:00:00] Speaker 1: Welcome back. [00:00:02] Today: Rust.\n\n[00:01:05] Speaker 2: Thanks for having me."
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

    /// A solo show: one speaker (or none known) for ten minutes, a segment every 6 s.
    fn monologue(speaker: Option<&str>, sentence_every: usize) -> Transcript {
        let segments = (0..100)
            .map(|i| {
                let end = if (i + 1) % sentence_every == 0 {
                    "."
                } else {
                    ","
                };
                seg(
                    i as f64 * 6.0,
                    speaker,
                    &format!("part {i} of the talk{end}"),
                )
            })
            .collect();
        Transcript {
            language: "en".into(),
            duration_seconds: 600.0,
            engine: "test".into(),
            model: "none".into(),
            segments,
        }
    }

    /// The times of the `[HH:MM:SS]` marks of a timestamped view, in seconds.
    fn marks(view: &str) -> Vec<u64> {
        view.match_indices('[')
            .filter_map(|(at, _)| {
                let mark = view.get(at + 1..at + 9)?;
                let mut parts = mark.split(':').map(|p| p.parse::<u64>().ok());
                Some(parts.next()?? * 3600 + parts.next()?? * 60 + parts.next()??)
            })
            .collect()
    }

    #[test]
    fn a_monologue_is_marked_at_every_sentence() {
        for speaker in [Some("spk_0"), None] {
            let view = monologue(speaker, 1).render(TranscriptView::Timestamped);
            let marks = marks(&view);
            assert_eq!(marks.len(), 100, "{view}");
            assert!(marks.windows(2).all(|w| w[1] == w[0] + 6), "{marks:?}");
            // Only a turn's first mark carries the speaker.
            assert_eq!(view.matches("Speaker").count(), view.split("\n\n").count());
        }
    }

    #[test]
    fn a_sentence_that_runs_on_gets_a_mark_every_half_minute() {
        // A sentence ends every 20 segments (2 minutes).
        let view = monologue(Some("spk_0"), 20).render(TranscriptView::Timestamped);
        let times = marks(&view);
        assert!(
            times.windows(2).all(|w| w[1] - w[0] <= 30),
            "no stretch over 30 s without a mark: {times:?}"
        );
        assert!(times.len() < 40, "not every segment: {times:?}");
        // The other views carry no marks.
        let plain = monologue(Some("spk_0"), 20).render(TranscriptView::Plain);
        assert!(marks(&plain).is_empty());
    }

    #[test]
    fn clock_formats_hours() {
        assert_eq!(clock(3725.9), "01:02:05");
        assert_eq!(clock(-3.0), "00:00:00");
    }
}
