//! Subtitles (SRT and WebVTT) built from a transcript under the usual captioning rules:
//! at most [`MAX_LINES`] lines of at most [`MAX_LINE_CHARS`] characters, cues of
//! [`MIN_CUE_SECONDS`]–[`MAX_CUE_SECONDS`], no overlaps, split at sentence ends, pauses and
//! speaker changes. Also a strict parser for both formats, used to validate output.

use thiserror::Error;

use crate::transcript::{TimedWord, Transcript};

pub const MAX_LINE_CHARS: usize = 42;
pub const MAX_LINES: usize = 2;
pub const MIN_CUE_SECONDS: f64 = 1.0;
pub const MAX_CUE_SECONDS: f64 = 7.0;
/// A silence at least this long between words starts a new cue.
const PAUSE_SECONDS: f64 = 0.8;

/// One subtitle cue.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    /// One or two lines.
    pub lines: Vec<String>,
}

/// Words with times for every segment: the engine's own where it gave them, otherwise
/// spread over the segment in proportion to their length.
fn timed_words(transcript: &Transcript) -> Vec<(TimedWord, bool /* starts a turn */)> {
    let mut out = Vec::new();
    let mut last_speaker: Option<&str> = None;
    for seg in &transcript.segments {
        let speaker_changed = seg.speaker.as_deref() != last_speaker;
        last_speaker = seg.speaker.as_deref();
        let words: Vec<TimedWord> = if seg.words.is_empty() {
            let tokens: Vec<&str> = seg.text.split_whitespace().collect();
            let total: usize = tokens.iter().map(|t| t.chars().count() + 1).sum();
            let span = (seg.end - seg.start).max(0.0);
            let mut at = seg.start;
            tokens
                .iter()
                .map(|t| {
                    let share = span * (t.chars().count() + 1) as f64 / total.max(1) as f64;
                    let w = TimedWord {
                        start: at,
                        end: at + share,
                        text: (*t).to_owned(),
                    };
                    at += share;
                    w
                })
                .collect()
        } else {
            seg.words
                .iter()
                .filter(|w| !w.text.trim().is_empty())
                .map(|w| TimedWord {
                    start: w.start,
                    end: w.end.max(w.start),
                    text: w.text.trim().to_owned(),
                })
                .collect()
        };
        for (i, w) in words.into_iter().enumerate() {
            out.push((w, i == 0 && speaker_changed));
        }
    }
    out
}

/// Splits text into at most `MAX_LINES` balanced lines of at most `MAX_LINE_CHARS`, or
/// `None` when it does not fit.
pub fn wrap(text: &str) -> Option<Vec<String>> {
    let len = text.chars().count();
    if len <= MAX_LINE_CHARS {
        return Some(vec![text.to_owned()]);
    }
    // Choose the break (a space) that makes the longer line shortest.
    let mut best: Option<(usize, usize)> = None; // (longest line, byte index)
    for (idx, ch) in text.char_indices() {
        if ch != ' ' {
            continue;
        }
        let first = text[..idx].chars().count();
        let second = len - first - 1;
        if first <= MAX_LINE_CHARS && second <= MAX_LINE_CHARS {
            let longest = first.max(second);
            if best.is_none_or(|(b, _)| longest < b) {
                best = Some((longest, idx));
            }
        }
    }
    best.map(|(_, idx)| vec![text[..idx].to_owned(), text[idx + 1..].to_owned()])
}

/// Splits a word longer than a line (a URL, say) into line-sized pieces.
fn chunk_long_word(word: TimedWord) -> Vec<TimedWord> {
    let chars: Vec<char> = word.text.chars().collect();
    if chars.len() <= MAX_LINE_CHARS {
        return vec![word];
    }
    let pieces: Vec<String> = chars
        .chunks(MAX_LINE_CHARS)
        .map(|c| c.iter().collect())
        .collect();
    let step = (word.end - word.start) / pieces.len() as f64;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, text)| TimedWord {
            start: word.start + step * i as f64,
            end: word.start + step * (i + 1) as f64,
            text,
        })
        .collect()
}

fn ends_sentence(word: &str) -> bool {
    word.ends_with(['.', '?', '!']) || word.ends_with(".\"") || word.ends_with("?\"")
}

/// Builds cues from a transcript.
pub fn build_cues(transcript: &Transcript) -> Vec<Cue> {
    let mut cues: Vec<(f64, f64, String)> = Vec::new();
    let mut current: Option<(f64, f64, String)> = None;
    let mut prev_word_ended_sentence = false;

    let words = timed_words(transcript).into_iter().flat_map(|(w, turn)| {
        chunk_long_word(w)
            .into_iter()
            .enumerate()
            .map(move |(i, w)| (w, turn && i == 0))
    });
    for (word, starts_turn) in words {
        if let Some((start, end, text)) = current.as_mut() {
            let candidate = format!("{text} {}", word.text);
            let pause = word.start - *end;
            let too_long = wrap(&candidate).is_none() || word.end - *start > MAX_CUE_SECONDS;
            let natural_break = starts_turn
                || pause >= PAUSE_SECONDS
                || (prev_word_ended_sentence && *end - *start >= MIN_CUE_SECONDS);
            if too_long || natural_break {
                if let Some(done) = current.take() {
                    cues.push(done);
                }
            } else {
                *text = candidate;
                *end = word.end;
            }
        }
        if current.is_none() {
            current = Some((word.start, word.end, word.text.clone()));
        }
        prev_word_ended_sentence = ends_sentence(&word.text);
    }
    cues.extend(current);
    finish_timing(cues)
}

/// Applies the duration rules: stretch short cues towards 1 s without touching the next
/// cue, cap at 7 s, and make times strictly non-overlapping.
fn finish_timing(raw: Vec<(f64, f64, String)>) -> Vec<Cue> {
    let mut cues: Vec<Cue> = Vec::with_capacity(raw.len());
    for (i, (start, end, text)) in raw.iter().enumerate() {
        let start = start.max(cues.last().map_or(0.0, |c: &Cue| c.end));
        let next_start = raw.get(i + 1).map_or(f64::INFINITY, |n| n.0);
        let mut end = end.max(start + MIN_CUE_SECONDS).min(next_start);
        end = end.min(start + MAX_CUE_SECONDS);
        if end <= start {
            end = start + 0.001;
        }
        let lines = wrap(text).unwrap_or_else(|| vec![text.clone()]);
        cues.push(Cue {
            start: round_ms(start),
            end: round_ms(end),
            lines,
        });
    }
    cues
}

fn round_ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

fn stamp(t: f64, sep: char) -> String {
    let ms = (t.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000
    )
}

pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, cue) in cues.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            stamp(cue.start, ','),
            stamp(cue.end, ','),
            cue.lines.join("\n")
        ));
    }
    out
}

pub fn to_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for cue in cues {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(cue.start, '.'),
            stamp(cue.end, '.'),
            cue.lines.join("\n")
        ));
    }
    out
}

#[derive(Debug, Error, PartialEq)]
pub enum SubtitleParseError {
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
}

fn parse_stamp(s: &str, sep: char, line: usize) -> Result<f64, SubtitleParseError> {
    let bad = || SubtitleParseError::Malformed {
        line,
        message: format!("bad timestamp `{s}`"),
    };
    let (hms, ms) = s.split_once(sep).ok_or_else(bad)?;
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() != 3 || ms.len() != 3 {
        return Err(bad());
    }
    let num = |p: &str| p.parse::<u64>().map_err(|_| bad());
    let (h, m, sec, milli) = (num(parts[0])?, num(parts[1])?, num(parts[2])?, num(ms)?);
    if m >= 60 || sec >= 60 {
        return Err(bad());
    }
    Ok(((h * 3600 + m * 60 + sec) * 1000 + milli) as f64 / 1000.0)
}

fn parse_blocks(
    text: &str,
    sep: char,
    numbered: bool,
    first_line: usize,
) -> Result<Vec<Cue>, SubtitleParseError> {
    let mut cues = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let line_no = first_line + i;
        if numbered {
            let expected = cues.len() + 1;
            if lines[i].trim().parse::<usize>().ok() != Some(expected) {
                return Err(SubtitleParseError::Malformed {
                    line: line_no,
                    message: format!("expected cue number {expected}"),
                });
            }
            i += 1;
        }
        let timing = lines.get(i).copied().unwrap_or("");
        let (a, b) = timing
            .split_once(" --> ")
            .ok_or(SubtitleParseError::Malformed {
                line: first_line + i,
                message: "expected `start --> end`".into(),
            })?;
        let start = parse_stamp(a.trim(), sep, first_line + i)?;
        let end = parse_stamp(
            b.split_whitespace().next().unwrap_or(""),
            sep,
            first_line + i,
        )?;
        i += 1;
        let mut cue_lines = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            cue_lines.push(lines[i].to_owned());
            i += 1;
        }
        if cue_lines.is_empty() {
            return Err(SubtitleParseError::Malformed {
                line: first_line + i,
                message: "cue has no text".into(),
            });
        }
        cues.push(Cue {
            start,
            end,
            lines: cue_lines,
        });
    }
    Ok(cues)
}

pub fn parse_srt(text: &str) -> Result<Vec<Cue>, SubtitleParseError> {
    parse_blocks(text, ',', true, 1)
}

pub fn parse_vtt(text: &str) -> Result<Vec<Cue>, SubtitleParseError> {
    let rest = text
        .strip_prefix("WEBVTT")
        .ok_or(SubtitleParseError::Malformed {
            line: 1,
            message: "missing WEBVTT header".into(),
        })?;
    parse_blocks(rest, '.', false, 1)
}

/// Rule violations in a list of cues (empty when they follow the captioning rules).
/// `strict_min` also checks the 1-second minimum, which a cue squeezed between two others
/// cannot always meet.
pub fn rule_violations(cues: &[Cue], strict_min: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, cue) in cues.iter().enumerate() {
        let n = i + 1;
        let dur = cue.end - cue.start;
        if cue.lines.is_empty() || cue.lines.len() > MAX_LINES {
            problems.push(format!("cue {n}: {} lines", cue.lines.len()));
        }
        for line in &cue.lines {
            if line.chars().count() > MAX_LINE_CHARS {
                problems.push(format!("cue {n}: line over {MAX_LINE_CHARS} chars: {line}"));
            }
        }
        if dur <= 0.0 || dur > MAX_CUE_SECONDS + 1e-6 {
            problems.push(format!("cue {n}: lasts {dur:.3}s"));
        }
        if strict_min && dur < MIN_CUE_SECONDS - 1e-6 {
            problems.push(format!("cue {n}: shorter than {MIN_CUE_SECONDS}s"));
        }
        if let Some(prev) = i.checked_sub(1).and_then(|p| cues.get(p))
            && cue.start < prev.end - 1e-6
        {
            problems.push(format!("cue {n}: overlaps cue {i}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::TranscriptSegment;
    use proptest::prelude::*;

    fn transcript(segments: Vec<TranscriptSegment>) -> Transcript {
        Transcript {
            language: "en".into(),
            duration_seconds: segments.last().map_or(0.0, |s| s.end),
            engine: "t".into(),
            model: "t".into(),
            segments,
        }
    }

    fn seg(start: f64, end: f64, speaker: &str, text: &str) -> TranscriptSegment {
        TranscriptSegment {
            start,
            end,
            speaker: Some(speaker.into()),
            text: text.into(),
            words: vec![],
        }
    }

    #[test]
    fn long_segment_is_split_into_rule_abiding_cues_and_round_trips() {
        let t = transcript(vec![
            seg(
                0.0,
                12.0,
                "spk_0",
                "This is a rather long sentence that keeps going well past what fits in two lines of subtitles. And here is another one.",
            ),
            seg(12.5, 14.0, "spk_1", "Short reply."),
        ]);
        let cues = build_cues(&t);
        assert!(cues.len() >= 3, "{cues:?}");
        assert_eq!(rule_violations(&cues, false), Vec::<String>::new());
        // Speaker change starts a cue.
        assert_eq!(
            cues.last().map(|c| c.lines.join(" ")),
            Some("Short reply.".to_owned())
        );
        let srt = to_srt(&cues);
        assert_eq!(parse_srt(&srt).expect("srt parses"), cues);
        let vtt = to_vtt(&cues);
        assert_eq!(parse_vtt(&vtt).expect("vtt parses"), cues);
    }

    #[test]
    fn short_words_get_at_least_a_second_when_there_is_room() {
        let t = transcript(vec![
            seg(1.0, 1.3, "spk_0", "Hi."),
            seg(5.0, 6.0, "spk_0", "Later."),
        ]);
        let cues = build_cues(&t);
        assert_eq!(cues.len(), 2);
        assert!((cues[0].end - cues[0].start - 1.0).abs() < 1e-9);
        assert_eq!(rule_violations(&cues, true), Vec::<String>::new());
    }

    #[test]
    fn parser_rejects_malformed_files() {
        assert!(parse_srt("1\n00:00:01,000 -> 00:00:02,000\nx\n").is_err());
        assert!(parse_srt("2\n00:00:01,000 --> 00:00:02,000\nx\n").is_err());
        assert!(parse_vtt("00:00:01.000 --> 00:00:02.000\nx\n").is_err());
        assert!(parse_srt("1\n00:00:61,000 --> 00:00:62,000\nx\n").is_err());
    }

    #[test]
    fn wrap_balances_and_refuses_what_cannot_fit() {
        let lines =
            wrap("the quick brown fox jumps over the lazy dog and keeps running on").expect("fits");
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.chars().count() <= MAX_LINE_CHARS));
        assert!(wrap(&"word ".repeat(30)).is_none());
    }

    proptest! {
        #[test]
        fn cues_always_follow_the_rules(
            words in proptest::collection::vec(("[a-z]{1,12}[.?!]?", 0.05f64..1.5, 0.0f64..1.2, 0u8..3), 1..120)
        ) {
            let mut at = 0.0;
            let mut segments = Vec::new();
            for (text, dur, gap, speaker) in words {
                at += gap;
                segments.push(TranscriptSegment {
                    start: at,
                    end: at + dur,
                    speaker: Some(format!("spk_{speaker}")),
                    text,
                    words: vec![],
                });
                at += dur;
            }
            let t = transcript(segments);
            let cues = build_cues(&t);
            prop_assert!(rule_violations(&cues, false).is_empty(), "{:?}", rule_violations(&cues, false));
            let srt = to_srt(&cues);
            prop_assert_eq!(parse_srt(&srt).expect("parses"), cues);
        }
    }
}
