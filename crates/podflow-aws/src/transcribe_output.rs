//! Amazon Transcribe's output JSON → podflow's [`Transcript`], so prompts, subtitles and
//! clips see the same thing whichever engine transcribed.
//!
//! The file has `results.items` (words — `pronunciation` with times and, with speaker
//! labels on, `speaker_label` — and `punctuation` without times), optionally
//! `results.audio_segments` (Transcribe's own sentence-like segments, with item ids), and
//! `results.speaker_labels.segments` (older outputs carry the speaker only there). Times
//! are strings of seconds. The language is `results.language_code` (`de-DE`); a job that
//! identified it also lists `results.language_identification` (codes with their scores,
//! as strings).

use serde::Deserialize;

use podflow_core::transcript::{TimedWord, Transcript, TranscriptSegment};

/// Why a Transcribe output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeOutputError {
    #[error("not an Amazon Transcribe output file: {0}")]
    NotTranscribeJson(#[from] serde_json::Error),
    #[error("Transcribe job {job} is {status}, not COMPLETED: there is no transcript to read")]
    NotCompleted { job: String, status: String },
    #[error("item {index} has a bad time `{value}`")]
    BadTime { index: usize, value: String },
}

#[derive(Deserialize)]
struct Output {
    #[serde(rename = "jobName", default)]
    job_name: String,
    #[serde(default)]
    status: Option<String>,
    results: Results,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    language_code: Option<String>,
    #[serde(default)]
    language_identification: Vec<IdentifiedLanguage>,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default)]
    audio_segments: Vec<AudioSegment>,
    #[serde(default)]
    speaker_labels: Option<SpeakerLabels>,
}

#[derive(Deserialize)]
struct IdentifiedLanguage {
    code: String,
    /// A string of a number in Transcribe's outputs; a number is taken too.
    #[serde(default)]
    score: Option<serde_json::Value>,
}

impl IdentifiedLanguage {
    fn score(&self) -> f64 {
        let score = match &self.score {
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        score.filter(|s: &f64| s.is_finite()).unwrap_or(0.0)
    }
}

/// The transcript's language as an ISO code (`de-DE` → `de`): the output's language code,
/// else the job's (`job_language`, from the job's description), else the best-scored
/// identified language, else English (what every job podflow started was in before the
/// language could be chosen).
fn iso_language(results: &Results, job_language: Option<&str>) -> String {
    let identified = results
        .language_identification
        .iter()
        .max_by(|a, b| a.score().total_cmp(&b.score()))
        .map(|l| l.code.as_str());
    let code = [results.language_code.as_deref(), job_language, identified]
        .into_iter()
        .flatten()
        .find(|c| !c.trim().is_empty())
        .unwrap_or("en");
    code.split(['-', '_'])
        .next()
        .unwrap_or(code)
        .trim()
        .to_ascii_lowercase()
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    id: Option<usize>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
    #[serde(default)]
    speaker_label: Option<String>,
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    content: String,
}

#[derive(Deserialize)]
struct AudioSegment {
    start_time: String,
    end_time: String,
    #[serde(default)]
    speaker_label: Option<String>,
    items: Vec<usize>,
}

#[derive(Deserialize)]
struct SpeakerLabels {
    #[serde(default)]
    segments: Vec<SpeakerSegment>,
}

#[derive(Deserialize)]
struct SpeakerSegment {
    #[serde(default)]
    items: Vec<SpeakerItem>,
}

#[derive(Deserialize)]
struct SpeakerItem {
    start_time: String,
    speaker_label: String,
}

/// A word with its punctuation attached, and its speaker.
struct Word {
    item_id: usize,
    timed: TimedWord,
    speaker: Option<String>,
    ends_sentence: bool,
}

fn seconds(index: usize, value: &str) -> Result<f64, TranscribeOutputError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| TranscribeOutputError::BadTime {
            index,
            value: value.to_owned(),
        })
}

/// Segments longer than this are split at the next sentence end even without a speaker
/// change (Transcribe's audio segments are usually shorter; this covers files without them).
const MAX_SEGMENT_WORDS: usize = 40;

/// Reads Transcribe's output. `engine` and `model` are recorded as `amazon-transcribe`.
pub fn parse(json: &str) -> Result<Transcript, TranscribeOutputError> {
    parse_for_job(json, None)
}

/// Reads the output of a job whose description named `job_language` (`de-DE`): the
/// transcript's language when the output names none.
pub fn parse_for_job(
    json: &str,
    job_language: Option<&str>,
) -> Result<Transcript, TranscribeOutputError> {
    let out: Output = serde_json::from_str(json)?;
    if let Some(status) = out.status.as_deref().filter(|s| *s != "COMPLETED") {
        return Err(TranscribeOutputError::NotCompleted {
            job: out.job_name,
            status: status.to_owned(),
        });
    }
    let r = out.results;
    // Older outputs name speakers only in speaker_labels; match them by start time.
    let speaker_at: std::collections::HashMap<&str, &str> = r
        .speaker_labels
        .iter()
        .flat_map(|l| &l.segments)
        .flat_map(|s| &s.items)
        .map(|i| (i.start_time.as_str(), i.speaker_label.as_str()))
        .collect();
    let mut words: Vec<Word> = Vec::new();
    for (index, item) in r.items.iter().enumerate() {
        let content = item.alternatives.first().map_or("", |a| a.content.as_str());
        if item.kind == "punctuation" {
            if let Some(w) = words.last_mut() {
                w.timed.text.push_str(content);
                w.ends_sentence |= matches!(content, "." | "?" | "!");
            }
            continue;
        }
        let (Some(start), Some(end)) = (&item.start_time, &item.end_time) else {
            continue;
        };
        let speaker = item
            .speaker_label
            .clone()
            .or_else(|| speaker_at.get(start.as_str()).map(|s| (*s).to_owned()));
        words.push(Word {
            item_id: item.id.unwrap_or(index),
            timed: TimedWord {
                start: seconds(index, start)?,
                end: seconds(index, end)?,
                text: content.to_owned(),
            },
            speaker,
            ends_sentence: false,
        });
    }

    let mut segments = Vec::new();
    if !r.audio_segments.is_empty() {
        for (i, seg) in r.audio_segments.iter().enumerate() {
            let mine: Vec<&Word> = words
                .iter()
                .filter(|w| seg.items.contains(&w.item_id))
                .collect();
            if mine.is_empty() {
                continue;
            }
            segments.push(segment_of(
                &mine,
                Some((seconds(i, &seg.start_time)?, seconds(i, &seg.end_time)?)),
                seg.speaker_label.clone(),
            ));
        }
    } else {
        let mut current: Vec<&Word> = Vec::new();
        for w in &words {
            let speaker_changed = current.last().is_some_and(|p| p.speaker != w.speaker);
            if speaker_changed {
                let speaker = current.first().and_then(|f| f.speaker.clone());
                segments.push(segment_of(&current, None, speaker));
                current.clear();
            }
            current.push(w);
            if w.ends_sentence && current.len() >= MAX_SEGMENT_WORDS {
                let speaker = current.first().and_then(|f| f.speaker.clone());
                segments.push(segment_of(&current, None, speaker));
                current.clear();
            }
        }
        if !current.is_empty() {
            let speaker = current.first().and_then(|f| f.speaker.clone());
            segments.push(segment_of(&current, None, speaker));
        }
    }
    let duration_seconds = segments.iter().map(|s| s.end).fold(0.0, f64::max);
    Ok(Transcript {
        language: iso_language(&r, job_language),
        duration_seconds,
        engine: "amazon-transcribe".into(),
        model: "standard".into(),
        segments,
    })
}

fn segment_of(
    words: &[&Word],
    span: Option<(f64, f64)>,
    speaker: Option<String>,
) -> TranscriptSegment {
    let first = words.first().map_or(0.0, |w| w.timed.start);
    let last = words.last().map_or(0.0, |w| w.timed.end);
    // Transcribe's segment span may start before the first word (leading silence): the
    // words decide, so subtitles do not show text before it is spoken.
    let (start, end) = span.map_or((first, last), |(s, e)| {
        (s.max(first).min(last), e.max(last))
    });
    TranscriptSegment {
        start,
        end,
        speaker,
        text: words
            .iter()
            .map(|w| w.timed.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        words: words.iter().map(|w| w.timed.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_attaches_to_the_word_before_and_splits_long_runs() {
        let json = r#"{"jobName": "j", "status": "COMPLETED", "results": {"items": [
            {"type": "pronunciation", "start_time": "0.1", "end_time": "0.5", "alternatives": [{"content": "Hello"}]},
            {"type": "punctuation", "alternatives": [{"content": ","}]},
            {"type": "pronunciation", "start_time": "0.6", "end_time": "1.0", "alternatives": [{"content": "world"}]},
            {"type": "punctuation", "alternatives": [{"content": "."}]}
        ]}}"#;
        let t = parse(json).expect("parses");
        assert_eq!(t.segments.len(), 1);
        assert_eq!(t.segments[0].text, "Hello, world.");
        assert_eq!(t.segments[0].speaker, None);
        assert_eq!((t.segments[0].start, t.segments[0].end), (0.1, 1.0));
        assert_eq!(t.engine, "amazon-transcribe");
    }

    #[test]
    fn the_language_is_the_jobs_code_or_the_best_identified_one() {
        let with = |results: &str| {
            parse(&format!(r#"{{"results": {{{results} "items": []}}}}"#))
                .expect("parses")
                .language
        };
        assert_eq!(with(r#""language_code": "de-DE","#), "de");
        // Identified: the code is there too; the scores are strings.
        assert_eq!(
            with(
                r#""language_code": "es-US", "language_identification": [
                    {"score": "0.0123", "code": "pt-BR"}, {"score": "0.9861", "code": "es-US"}],"#
            ),
            "es"
        );
        // Without the code, the best-scored language.
        assert_eq!(
            with(
                r#""language_identification": [
                    {"score": "0.2386", "code": "en-US"}, {"score": "0.7102", "code": "fr-CA"}],"#
            ),
            "fr"
        );
        assert_eq!(with(""), "en");
        // An output without a code: the job's description says.
        let bare = r#"{"results": {"items": []}}"#;
        assert_eq!(
            parse_for_job(bare, Some("pt-BR")).expect("parses").language,
            "pt"
        );
        let own = r#"{"results": {"language_code": "de-DE", "items": []}}"#;
        assert_eq!(
            parse_for_job(own, Some("en-US")).expect("parses").language,
            "de"
        );
    }

    #[test]
    fn failed_jobs_and_bad_times_are_clear_errors() {
        let failed = r#"{"jobName": "ep-1", "status": "FAILED", "results": {"items": []}}"#;
        assert!(
            parse(failed)
                .expect_err("failed")
                .to_string()
                .contains("ep-1 is FAILED")
        );
        let bad = r#"{"results": {"items": [{"type": "pronunciation", "start_time": "soon", "end_time": "1", "alternatives": [{"content": "x"}]}]}}"#;
        assert!(
            parse(bad)
                .expect_err("bad")
                .to_string()
                .contains("bad time `soon`")
        );
        assert!(parse("[]").is_err());
    }
}
