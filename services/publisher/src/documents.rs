//! The show's files, made from prompt outputs: pure functions, no I/O.
//!
//! LLM answers are read leniently (a JSON answer may come in a code fence or after a
//! sentence) and checked strictly (times must lie inside the episode): a bad chapter or
//! clip is dropped with a reason, never allowed to break the rest.

use podflow_core::{
    subtitles::{self, Cue},
    transcript::{Transcript, clock},
};
use serde::{Deserialize, Serialize};

/// Why an answer could not be used at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    #[error("the {prompt} answer holds no JSON object ({detail})")]
    NotJson {
        prompt: &'static str,
        detail: String,
    },
    #[error("the {prompt} answer has no usable {what}: {reasons}")]
    NothingUsable {
        prompt: &'static str,
        what: &'static str,
        reasons: String,
    },
}

/// The first JSON object in an answer, tolerating code fences and prose around it.
fn json_object<T: for<'de> Deserialize<'de>>(
    prompt: &'static str,
    answer: &str,
) -> Result<T, DocumentError> {
    let not_json = |detail: String| DocumentError::NotJson { prompt, detail };
    let start = answer
        .find('{')
        .ok_or_else(|| not_json("no `{` found".into()))?;
    let end = answer
        .rfind('}')
        .filter(|&e| e > start)
        .ok_or_else(|| not_json("no closing `}`".into()))?;
    serde_json::from_str(&answer[start..=end]).map_err(|e| not_json(e.to_string()))
}

/// One chapter in the Podcasting 2.0 chapters format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter {
    #[serde(rename = "startTime")]
    pub start_time: f64,
    pub title: String,
}

/// `chapters.json`: the Podcasting 2.0 JSON chapters format, version 1.2.0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChaptersDocument {
    pub version: &'static str,
    pub title: String,
    pub chapters: Vec<Chapter>,
    /// `llm`, or `extractive` when the built-in engine found the chapters (a field
    /// podcast apps ignore).
    pub engine: &'static str,
}

#[derive(Deserialize)]
struct ChaptersAnswer {
    chapters: Vec<RawChapter>,
}

#[derive(Deserialize)]
struct RawChapter {
    #[serde(rename = "startTime", alias = "start_time", alias = "start")]
    start_time: serde_json::Value,
    title: String,
}

/// Seconds from a number or an `HH:MM:SS` / `MM:SS` string.
fn seconds(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => {
            let s = s.trim().trim_start_matches('[').trim_end_matches(']');
            if let Ok(x) = s.parse::<f64>() {
                return Some(x);
            }
            let parts: Vec<f64> = s
                .split(':')
                .map(|p| p.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .ok()?;
            (2..=3)
                .contains(&parts.len())
                .then(|| parts.iter().fold(0.0, |acc, p| acc * 60.0 + p))
        }
        _ => None,
    }
}

/// Chapters from the chapters prompt's answer: inside the episode, increasing, titled.
/// The first chapter is moved to 0 so the whole episode is covered.
pub fn parse_chapters(
    answer: &str,
    duration: f64,
) -> Result<(Vec<Chapter>, Vec<String>), DocumentError> {
    let raw: ChaptersAnswer = json_object("chapters", answer)?;
    let mut chapters: Vec<Chapter> = Vec::new();
    let mut dropped = Vec::new();
    for (i, c) in raw.chapters.into_iter().enumerate() {
        let title = c.title.trim().to_owned();
        let n = i + 1;
        match seconds(&c.start_time) {
            _ if title.is_empty() => dropped.push(format!("chapter {n} has no title")),
            None => dropped.push(format!("chapter {n} ({title}) has no start time")),
            Some(t) if !t.is_finite() || t < 0.0 || t >= duration => dropped.push(format!(
                "chapter {n} ({title}) starts at {t}s, outside the episode (0–{duration:.0}s)"
            )),
            Some(t) if chapters.last().is_some_and(|p| t <= p.start_time) => dropped.push(format!(
                "chapter {n} ({title}) at {t}s does not come after the one before"
            )),
            Some(t) => chapters.push(Chapter {
                start_time: millisecond(t),
                title,
            }),
        }
    }
    match chapters.first_mut() {
        None => Err(DocumentError::NothingUsable {
            prompt: "chapters",
            what: "chapter",
            reasons: if dropped.is_empty() {
                "the list is empty".into()
            } else {
                dropped.join("; ")
            },
        }),
        Some(first) => {
            first.start_time = 0.0;
            Ok((chapters, dropped))
        }
    }
}

/// A clip suggestion that passed the checks, numbered from 1 in the order suggested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    pub n: usize,
    pub start: f64,
    pub end: f64,
    pub hook: String,
}

/// A clip suggestion that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedClip {
    /// Its place in the suggestions, from 1.
    pub suggestion: usize,
    pub reason: String,
}

/// Shortest and longest clip worth cutting, in seconds.
pub const CLIP_LENGTH: (f64, f64) = (3.0, 120.0);

#[derive(Deserialize)]
struct ClipsAnswer {
    clips: Vec<RawClip>,
}

#[derive(Deserialize)]
struct RawClip {
    #[serde(alias = "startTime")]
    start: serde_json::Value,
    #[serde(alias = "endTime")]
    end: serde_json::Value,
    #[serde(default)]
    hook: String,
}

/// Clip suggestions checked against the audio's duration.
pub fn plan_clips(
    answer: &str,
    duration: f64,
) -> Result<(Vec<Clip>, Vec<SkippedClip>), DocumentError> {
    let raw: ClipsAnswer = json_object("clips", answer)?;
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for (i, c) in raw.clips.into_iter().enumerate() {
        let suggestion = i + 1;
        let mut skip = |reason: String| skipped.push(SkippedClip { suggestion, reason });
        let (Some(start), Some(end)) = (seconds(&c.start), seconds(&c.end)) else {
            skip("start or end is not a time".into());
            continue;
        };
        // Answers round to whole seconds: allow the end to overshoot by a second.
        let end = if end > duration && end <= duration + 1.0 {
            duration
        } else {
            end
        };
        let length = end - start;
        if !(start.is_finite() && end.is_finite()) || start < 0.0 || end > duration {
            skip(format!(
                "{start}s–{end}s is outside the audio (0–{duration:.1}s)"
            ));
        } else if length < CLIP_LENGTH.0 || length > CLIP_LENGTH.1 {
            skip(format!(
                "{start}s–{end}s lasts {length:.1}s; clips last {}–{} s",
                CLIP_LENGTH.0, CLIP_LENGTH.1
            ));
        } else if c.hook.trim().is_empty() {
            skip("no hook line".into());
        } else {
            clips.push(Clip {
                n: clips.len() + 1,
                start,
                end,
                hook: c.hook.trim().to_owned(),
            });
        }
    }
    Ok((clips, skipped))
}

/// The SRT subtitles of `[start, end)` (the podcast layout), timed from the clip's start.
pub fn clip_cues(transcript: &Transcript, start: f64, end: f64) -> Vec<Cue> {
    subtitles::build_cues_for(transcript, &subtitles::CueLayout::PODCAST_SRT)
        .into_iter()
        .filter(|c| c.end > start && c.start < end)
        .map(|c| Cue {
            start: (c.start - start).max(0.0),
            end: c.end.min(end) - start,
            ..c
        })
        .collect()
}

/// The titles from the titles prompt: its Markdown or numbered list, best first.
pub fn titles(answer: &str) -> Vec<String> {
    answer
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let rest = l
                .strip_prefix("- ")
                .or_else(|| l.strip_prefix("* "))
                .or_else(|| {
                    let digits = l.find(|c: char| !c.is_ascii_digit())?;
                    (digits > 0)
                        .then(|| l[digits..].strip_prefix(". "))
                        .flatten()
                })?;
            let t = rest.trim().trim_matches('"').trim_matches('*').trim();
            (!t.is_empty()).then(|| t.to_owned())
        })
        .collect()
}

/// The first `n` sentences of a text (for a two-line summary), at most `max_chars`.
pub fn lead(text: &str, sentences: usize, max_chars: usize) -> String {
    let flat: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut end = flat.len();
    let mut seen = 0;
    for (i, ch) in flat.char_indices() {
        if matches!(ch, '.' | '!' | '?') && flat[i + 1..].starts_with(' ') {
            seen += 1;
            if seen == sentences {
                end = i + 1;
                break;
            }
        }
    }
    truncate(&flat[..end], max_chars)
}

/// At most `max_chars` characters, cut at a word with an ellipsis.
pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    let cut = cut.rfind(' ').map_or(cut.as_str(), |i| &cut[..i]);
    format!("{}…", cut.trim_end())
}

/// What the show notes are made of; absent parts are left out.
#[derive(Debug, Default)]
pub struct ShowNotesParts<'a> {
    pub title: &'a str,
    pub summary: Option<&'a str>,
    pub chapters: &'a [Chapter],
    pub notes: Option<&'a str>,
    pub keywords: Option<&'a str>,
    /// (label, relative link) of the episode's files.
    pub links: &'a [(String, String)],
}

/// A time rounded to the millisecond; one too large to scale (no episode is that long, but
/// an answer may say so) stays as it is rather than becoming infinite.
fn millisecond(t: f64) -> f64 {
    let rounded = (t * 1000.0).round() / 1000.0;
    if rounded.is_finite() { rounded } else { t }
}

/// `show-notes.md`: title, summary, chapters with timestamps, the show notes, links.
pub fn show_notes(parts: &ShowNotesParts<'_>) -> String {
    let mut md = format!("# {}\n", parts.title);
    if let Some(summary) = parts.summary {
        md.push_str(&format!("\n{}\n", summary.trim()));
    }
    if !parts.chapters.is_empty() {
        md.push_str("\n## Chapters\n");
        for c in parts.chapters {
            md.push_str(&format!("- {} {}\n", clock(c.start_time), c.title));
        }
    }
    if let Some(notes) = parts.notes {
        md.push_str(&format!("\n## Notes\n{}\n", notes.trim()));
    }
    if let Some(keywords) = parts.keywords {
        md.push_str(&format!("\n## Keywords\n{}\n", keywords.trim()));
    }
    if !parts.links.is_empty() {
        md.push_str("\n## Links\n");
        for (label, link) in parts.links {
            md.push_str(&format!("- [{label}]({link})\n"));
        }
    }
    md
}

/// `blog-post.md`: the article, under the episode's title unless it brings its own.
pub fn blog_post(title: &str, article: &str) -> String {
    let article = article.trim();
    if article.starts_with("# ") {
        format!("{article}\n")
    } else {
        format!("# {title}\n\n{article}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podflow_core::transcript::TranscriptSegment;
    use proptest::prelude::*;

    /// Found by the chapters fuzz target: the largest f64 start overflowed when rounded.
    #[test]
    fn a_start_too_large_to_round_stays_finite() {
        let answer = r#"{"chapters":[{"startTime":0,"title":"a"},{"startTime":1.7976931348623157e308,"title":"b"}]}"#;
        let (chapters, _) = parse_chapters(answer, f64::INFINITY).expect("chapters");
        assert!(
            chapters.iter().all(|c| c.start_time.is_finite()),
            "{chapters:?}"
        );
        assert_eq!(chapters.len(), 2);
    }

    #[test]
    fn chapters_come_from_fenced_json_and_bad_ones_are_dropped_with_reasons() {
        let answer = "Here you go:\n```json\n{\"chapters\": [\
            {\"startTime\": 3, \"title\": \"Intro\"},\
            {\"startTime\": \"00:01:05\", \"title\": \"Tooling\"},\
            {\"startTime\": 50, \"title\": \"Backwards\"},\
            {\"startTime\": 9000, \"title\": \"Past the end\"},\
            {\"startTime\": 120, \"title\": \"  \"},\
            {\"startTime\": 200.5, \"title\": \"Wrap-up\"}]}\n```";
        let (chapters, dropped) = parse_chapters(answer, 300.0).expect("chapters");
        let got: Vec<(f64, &str)> = chapters
            .iter()
            .map(|c| (c.start_time, c.title.as_str()))
            .collect();
        assert_eq!(got, [(0.0, "Intro"), (65.0, "Tooling"), (200.5, "Wrap-up")]);
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        assert!(dropped.iter().any(|d| d.contains("Past the end")));
    }

    #[test]
    fn an_answer_without_json_or_usable_chapters_is_an_error_naming_the_prompt() {
        let e = parse_chapters("I cannot do that.", 60.0).expect_err("no json");
        assert!(e.to_string().contains("chapters answer holds no JSON"));
        let e = parse_chapters(
            "{\"chapters\": [{\"startTime\": 99, \"title\": \"x\"}]}",
            60.0,
        )
        .expect_err("nothing inside");
        assert!(e.to_string().contains("outside the episode"), "{e}");
    }

    #[test]
    fn clips_outside_the_audio_or_of_odd_length_are_skipped_with_reasons() {
        let answer = r#"{"clips": [
            {"start": 10, "end": 40, "hook": "Why retries hurt"},
            {"start": 50, "end": 400, "hook": "Too long and past the end"},
            {"start": 30, "end": 31, "hook": "Too short"},
            {"start": "00:01:00", "end": "00:01:30", "hook": "Clock times work"},
            {"start": 70, "end": 100.6, "hook": "Rounded past the end"},
            {"start": 5, "end": 20, "hook": ""},
            {"start": "soon", "end": 9, "hook": "x"}
        ]}"#;
        let (clips, skipped) = plan_clips(answer, 100.0).expect("clips");
        let got: Vec<(usize, f64, f64)> = clips.iter().map(|c| (c.n, c.start, c.end)).collect();
        assert_eq!(got, [(1, 10.0, 40.0), (2, 60.0, 90.0), (3, 70.0, 100.0)]);
        let reasons: Vec<usize> = skipped.iter().map(|s| s.suggestion).collect();
        assert_eq!(reasons, [2, 3, 6, 7]);
        assert!(skipped[0].reason.contains("outside the audio"));
        assert!(skipped[1].reason.contains("lasts 1.0s"));
    }

    #[test]
    fn clip_subtitles_are_timed_from_the_clip_start() {
        let seg = |start: f64, end: f64, text: &str| TranscriptSegment {
            start,
            end,
            speaker: None,
            text: text.into(),
            words: Vec::new(),
        };
        let transcript = Transcript {
            language: "en".into(),
            duration_seconds: 30.0,
            engine: "test".into(),
            model: "test".into(),
            segments: vec![
                seg(0.0, 4.0, "Welcome back."),
                seg(10.0, 14.0, "Retries hurt."),
                seg(20.0, 24.0, "Goodbye."),
            ],
        };
        let cues = clip_cues(&transcript, 9.0, 16.0);
        assert_eq!(cues.len(), 1);
        assert_eq!((cues[0].start, cues[0].end), (1.0, 5.0));
        assert_eq!(cues[0].lines, ["Retries hurt."]);
    }

    #[test]
    fn titles_come_from_markdown_or_numbered_lists() {
        let answer = "Here are some:\n1. Reliable Pipelines\n2. \"Retries Hurt\"\n- **Never Twice**\n\nThanks";
        assert_eq!(
            titles(answer),
            ["Reliable Pipelines", "Retries Hurt", "Never Twice"]
        );
    }

    #[test]
    fn show_notes_hold_title_summary_chapters_and_links() {
        let chapters = [
            Chapter {
                start_time: 0.0,
                title: "Intro".into(),
            },
            Chapter {
                start_time: 3725.0,
                title: "Wrap-up".into(),
            },
        ];
        let links = [("Audio (MP3)".to_owned(), "audio.mp3".to_owned())];
        let md = show_notes(&ShowNotesParts {
            title: "Reliable Pipelines",
            summary: Some("We talk retries."),
            chapters: &chapters,
            notes: None,
            keywords: None,
            links: &links,
        });
        assert!(md.starts_with("# Reliable Pipelines\n"));
        assert!(md.contains("- 00:00:00 Intro\n- 01:02:05 Wrap-up\n"));
        assert!(md.contains("- [Audio (MP3)](audio.mp3)"));
        assert!(!md.contains("## Notes"));
    }

    #[test]
    fn lead_keeps_two_sentences() {
        let text = "# Summary\nFirst one. Second one! Third one.\nMore.";
        assert_eq!(lead(text, 2, 500), "First one. Second one!");
        assert_eq!(lead(text, 2, 12), "First one.…");
    }

    proptest! {
        #[test]
        fn truncate_never_exceeds_the_limit(text in "\\PC{0,400}", max in 2usize..200) {
            prop_assert!(truncate(&text, max).chars().count() <= max);
        }

        #[test]
        fn accepted_clips_always_lie_inside_the_audio(
            raw in proptest::collection::vec((-50.0f64..500.0, -50.0f64..500.0), 0..12),
            duration in 1.0f64..400.0,
        ) {
            let clips: Vec<_> = raw.iter()
                .map(|(s, e)| serde_json::json!({"start": s, "end": e, "hook": "h"}))
                .collect();
            let answer = serde_json::json!({"clips": clips}).to_string();
            let (ok, skipped) = plan_clips(&answer, duration).expect("json");
            prop_assert_eq!(ok.len() + skipped.len(), raw.len());
            for c in ok {
                prop_assert!(c.start >= 0.0 && c.end <= duration && c.end - c.start >= CLIP_LENGTH.0);
            }
        }
    }
}
