//! Subtitles (SRT and WebVTT) built from a transcript under the usual captioning rules:
//! at most [`MAX_LINES`] lines of at most [`MAX_LINE_CHARS`] characters (32 for SRT, with
//! the speaker's name opening a turn, as [`CueLayout::PODCAST_SRT`] says), cues of
//! [`MIN_CUE_SECONDS`]–[`MAX_CUE_SECONDS`], no overlaps, split at sentence ends, pauses and
//! speaker changes. Also a strict parser for both formats, used to validate output. WebVTT
//! cue text is escaped (`&amp;`, `&lt;`, `&gt;`) and names its speaker as a voice span
//! (`<v Speaker 1>`); its parser rejects what the format forbids in cue text: a bare `&`,
//! a `<` that opens no tag, `-->`.

use thiserror::Error;

use crate::transcript::{TimedWord, Transcript, speaker_name};

pub const MAX_LINE_CHARS: usize = 42;
pub const MAX_LINES: usize = 2;

/// How a kind of subtitle file lays its cues out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CueLayout {
    /// The longest line, in characters ([`MAX_LINES`] lines at most).
    pub line_chars: usize,
    /// Whether a speaker's first cue of a turn starts with their name and a colon (for
    /// formats with no other place for it).
    pub name_in_text: bool,
}

impl CueLayout {
    /// WebVTT: lines of [`MAX_LINE_CHARS`] (within the 65 the Podcasting 2.0 transcript
    /// guidance recommends); speakers go in voice spans.
    pub const WEBVTT: Self = Self {
        line_chars: MAX_LINE_CHARS,
        name_in_text: false,
    };
    /// SRT as the Podcasting 2.0 transcript guidance asks for podcasts: two lines of at
    /// most 32 characters, and "Name: " opening the card where the speaker changes.
    pub const PODCAST_SRT: Self = Self {
        line_chars: 32,
        name_in_text: true,
    };
}
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
    /// Who speaks (`Speaker 1`), when the transcript knows: a WebVTT voice span
    /// (`<v Speaker 1>`), which players such as Apple's show; SRT has no place for it.
    pub speaker: Option<String>,
}

/// A word with its time, whether it starts a speaker's turn, and the speaker's label.
type SpokenWord<'a> = (TimedWord, bool, Option<&'a str>);

/// Words with times for every segment: the engine's own where it gave them, otherwise
/// spread over the segment in proportion to their length.
fn timed_words(transcript: &Transcript) -> Vec<SpokenWord<'_>> {
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
            out.push((w, i == 0 && speaker_changed, seg.speaker.as_deref()));
        }
    }
    out
}

/// Splits text into at most `MAX_LINES` balanced lines of at most `MAX_LINE_CHARS`, or
/// `None` when it does not fit.
pub fn wrap(text: &str) -> Option<Vec<String>> {
    wrap_to(text, MAX_LINE_CHARS)
}

/// [`wrap`] to lines of at most `line_chars`.
fn wrap_to(text: &str, line_chars: usize) -> Option<Vec<String>> {
    let len = text.chars().count();
    if len <= line_chars {
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
        if first <= line_chars && second <= line_chars {
            let longest = first.max(second);
            if best.is_none_or(|(b, _)| longest < b) {
                best = Some((longest, idx));
            }
        }
    }
    best.map(|(_, idx)| vec![text[..idx].to_owned(), text[idx + 1..].to_owned()])
}

/// Splits a word longer than a line (a URL, say) into line-sized pieces.
fn chunk_long_word(word: TimedWord, line_chars: usize) -> Vec<TimedWord> {
    let chars: Vec<char> = word.text.chars().collect();
    if chars.len() <= line_chars {
        return vec![word];
    }
    let pieces: Vec<String> = chars
        .chunks(line_chars)
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

/// Builds WebVTT cues from a transcript.
pub fn build_cues(transcript: &Transcript) -> Vec<Cue> {
    build_cues_for(transcript, &CueLayout::WEBVTT)
}

/// Builds cues laid out as `layout` says.
pub fn build_cues_for(transcript: &Transcript, layout: &CueLayout) -> Vec<Cue> {
    // A name is at most a line, so that a card opening with it can always hold a word.
    let name_of = |speaker: Option<&str>| {
        speaker
            .filter(|_| layout.name_in_text)
            .map(speaker_name)
            .filter(|name| name.chars().count() + 2 <= layout.line_chars / 2)
    };
    let mut cues: Vec<RawCue> = Vec::new();
    let mut current: Option<RawCue> = None;
    let mut prev_word_ended_sentence = false;

    let words = timed_words(transcript)
        .into_iter()
        .flat_map(|(w, turn, speaker)| {
            chunk_long_word(w, layout.line_chars)
                .into_iter()
                .enumerate()
                .map(move |(i, w)| (w, turn && i == 0, speaker))
        });
    for (word, starts_turn, speaker) in words {
        if let Some((start, end, text, _)) = current.as_mut() {
            let candidate = format!("{text} {}", word.text);
            let pause = word.start - *end;
            let too_long = wrap_to(&candidate, layout.line_chars).is_none()
                || word.end - *start > MAX_CUE_SECONDS;
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
            let text = match name_of(speaker).filter(|_| starts_turn) {
                Some(name) => format!("{name}: {}", word.text),
                None => word.text.clone(),
            };
            current = Some((word.start, word.end, text, speaker));
        }
        prev_word_ended_sentence = ends_sentence(&word.text);
    }
    cues.extend(current);
    finish_timing(cues, layout)
}

/// A cue being built: start, end, text, the speaker's label.
type RawCue<'a> = (f64, f64, String, Option<&'a str>);

/// Applies the duration rules: stretch short cues towards 1 s without touching the next
/// cue, cap at 7 s, and make times strictly non-overlapping.
fn finish_timing(raw: Vec<RawCue<'_>>, layout: &CueLayout) -> Vec<Cue> {
    let mut cues: Vec<Cue> = Vec::with_capacity(raw.len());
    for (i, (start, end, text, speaker)) in raw.iter().enumerate() {
        let start = start.max(cues.last().map_or(0.0, |c: &Cue| c.end));
        let next_start = raw.get(i + 1).map_or(f64::INFINITY, |n| n.0);
        let mut end = end.max(start + MIN_CUE_SECONDS).min(next_start);
        end = end.min(start + MAX_CUE_SECONDS);
        if end <= start {
            end = start + 0.001;
        }
        let lines = wrap_to(text, layout.line_chars).unwrap_or_else(|| vec![text.clone()]);
        cues.push(Cue {
            start: round_ms(start),
            end: round_ms(end),
            lines,
            speaker: speaker.map(speaker_name),
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
        let mut lines: Vec<String> = cue.lines.iter().map(|l| escape_vtt(l)).collect();
        if let (Some(speaker), Some(first)) = (&cue.speaker, lines.first_mut()) {
            // A voice span runs to the end of the cue; its closing tag may be left out.
            *first = format!("<v {}>{first}", escape_vtt(speaker));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(cue.start, '.'),
            stamp(cue.end, '.'),
            lines.join("\n")
        ));
    }
    out
}

/// WebVTT cue text may not hold a bare `&` or `<` (they start character references and
/// tags), and `>` ends the `-->` that a cue line may not contain: "Q&A", "<3" or "a --> b"
/// in a transcript would otherwise make an invalid file.
fn escape_vtt(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The text of a WebVTT cue line, its character references decoded; an error for what the
/// format forbids in cue text: a bare `&`, a `<` that opens no tag, or `-->`.
fn unescape_vtt(line: &str, line_no: usize) -> Result<String, SubtitleParseError> {
    let bad = |message: String| SubtitleParseError::Malformed {
        line: line_no,
        message,
    };
    if line.contains("-->") {
        return Err(bad("`-->` in cue text".into()));
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(['&', '<']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('<') {
            // A tag (`<v Name>`, `<i>`, `</i>`, a timestamp) is kept as it is.
            let end = rest
                .find('>')
                .filter(|&end| end > 1 && !rest[1..end].contains('<'))
                .ok_or_else(|| bad(format!("`<` opens no tag in `{line}`: write `&lt;`")))?;
            out.push_str(&rest[..=end]);
            rest = &rest[end + 1..];
            continue;
        }
        let (text, len) = [
            ("&amp;", "&"),
            ("&lt;", "<"),
            ("&gt;", ">"),
            ("&nbsp;", "\u{a0}"),
            ("&lrm;", "\u{200e}"),
            ("&rlm;", "\u{200f}"),
        ]
        .into_iter()
        .find(|(reference, _)| rest.starts_with(reference))
        .map(|(reference, text)| (text, reference.len()))
        .ok_or_else(|| bad(format!("bare `&` in `{line}`: write `&amp;`")))?;
        out.push_str(text);
        rest = &rest[len..];
    }
    out.push_str(rest);
    Ok(out)
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
    // Hours come from the file: a count no u64 of milliseconds holds is a bad timestamp.
    let millis = h
        .checked_mul(3_600_000)
        .and_then(|ms| ms.checked_add((m * 60 + sec) * 1000 + milli))
        .ok_or_else(bad)?;
    Ok(millis as f64 / 1000.0)
}

/// The cues of `text`, each with the line number of its first text line.
fn parse_blocks(
    text: &str,
    sep: char,
    numbered: bool,
    first_line: usize,
) -> Result<Vec<(Cue, usize)>, SubtitleParseError> {
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
        let text_line = first_line + i;
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
        cues.push((
            Cue {
                start,
                end,
                lines: cue_lines,
                speaker: None,
            },
            text_line,
        ));
    }
    Ok(cues)
}

pub fn parse_srt(text: &str) -> Result<Vec<Cue>, SubtitleParseError> {
    Ok(parse_blocks(text, ',', true, 1)?
        .into_iter()
        .map(|(cue, _)| cue)
        .collect())
}

pub fn parse_vtt(text: &str) -> Result<Vec<Cue>, SubtitleParseError> {
    let rest = text
        .strip_prefix("WEBVTT")
        .ok_or(SubtitleParseError::Malformed {
            line: 1,
            message: "missing WEBVTT header".into(),
        })?;
    let mut cues = Vec::new();
    for (mut cue, first) in parse_blocks(rest, '.', false, 1)? {
        take_voice(&mut cue);
        for (k, line) in cue.lines.iter_mut().enumerate() {
            *line = unescape_vtt(line, first + k)?;
        }
        if let Some(speaker) = &mut cue.speaker {
            *speaker = unescape_vtt(speaker, first)?;
        }
        cues.push(cue);
    }
    Ok(cues)
}

/// Moves a voice span that opens the cue (`<v Speaker 1>…[</v>]`, as written, before
/// character references are decoded) into `speaker`.
fn take_voice(cue: &mut Cue) {
    let Some(first) = cue.lines.first_mut() else {
        return;
    };
    let Some((tag, text)) = first
        .strip_prefix("<v")
        .filter(|rest| rest.starts_with([' ', '\t', '.']))
        .and_then(|rest| rest.split_once('>'))
    else {
        return;
    };
    // `<v.loud Name>`: classes before the name.
    let name = tag
        .split_once([' ', '\t'])
        .map_or("", |(_, name)| name.trim());
    cue.speaker = (!name.is_empty()).then(|| name.to_owned());
    *first = text.to_owned();
    if let Some(last) = cue.lines.last_mut()
        && let Some(open) = last.strip_suffix("</v>")
    {
        *last = open.to_owned();
    }
}

/// Rule violations in a list of cues (empty when they follow the captioning rules).
/// `strict_min` also checks the 1-second minimum, which a cue squeezed between two others
/// cannot always meet.
pub fn rule_violations(cues: &[Cue], strict_min: bool) -> Vec<String> {
    rule_violations_for(cues, &CueLayout::WEBVTT, strict_min)
}

/// [`rule_violations`] for cues laid out as `layout` says.
pub fn rule_violations_for(cues: &[Cue], layout: &CueLayout, strict_min: bool) -> Vec<String> {
    let max = layout.line_chars;
    let mut problems = Vec::new();
    for (i, cue) in cues.iter().enumerate() {
        let n = i + 1;
        let dur = cue.end - cue.start;
        if cue.lines.is_empty() || cue.lines.len() > MAX_LINES {
            problems.push(format!("cue {n}: {} lines", cue.lines.len()));
        }
        for line in &cue.lines {
            if line.chars().count() > max {
                problems.push(format!("cue {n}: line over {max} chars: {line}"));
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
        assert_eq!(parse_srt(&srt).expect("srt parses"), unvoiced(&cues));
        let vtt = to_vtt(&cues);
        assert_eq!(parse_vtt(&vtt).expect("vtt parses"), cues);
    }

    /// The cues as SRT keeps them: without speakers.
    fn unvoiced(cues: &[Cue]) -> Vec<Cue> {
        cues.iter()
            .map(|c| Cue {
                speaker: None,
                ..c.clone()
            })
            .collect()
    }

    #[test]
    fn webvtt_cues_carry_their_speaker_as_a_voice_span() {
        let t = transcript(vec![
            seg(0.0, 2.0, "spk_0", "Welcome back."),
            seg(2.5, 4.0, "spk_1", "Thanks."),
            seg(4.5, 6.0, "Ana & Bo", "Hi."),
        ]);
        let cues = build_cues(&t);
        let vtt = to_vtt(&cues);
        assert!(vtt.contains("\n<v Speaker 1>Welcome back.\n"), "{vtt}");
        assert!(vtt.contains("\n<v Speaker 2>Thanks.\n"), "{vtt}");
        assert!(vtt.contains("\n<v Ana &amp; Bo>Hi.\n"), "{vtt}");
        let parsed = parse_vtt(&vtt).expect("parses");
        assert_eq!(parsed, cues);
        assert_eq!(parsed[2].speaker.as_deref(), Some("Ana & Bo"));
        // Without speakers, no spans; a literal "<v" in the text stays text.
        let mut anonymous = t.clone();
        for s in &mut anonymous.segments {
            s.speaker = None;
            s.text = "<v x> is text".into();
        }
        let cues = build_cues(&anonymous);
        let parsed = parse_vtt(&to_vtt(&cues)).expect("parses");
        assert!(parsed.iter().all(|c| c.speaker.is_none()));
        assert!(
            parsed[0].lines[0].starts_with("<v x> is text"),
            "{parsed:?}"
        );
        // A closing tag and classes, as other tools write them.
        let other = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v.loud Mary>Hello\nthere</v>\n";
        let parsed = parse_vtt(other).expect("parses");
        assert_eq!(parsed[0].speaker.as_deref(), Some("Mary"));
        assert_eq!(parsed[0].lines, vec!["Hello", "there"]);
    }

    /// The Podcasting 2.0 transcript guidance for SRT: two lines of at most 32
    /// characters, and the speaker's name and a colon opening the card where they start.
    #[test]
    fn podcast_srt_cards_hold_two_lines_of_32_and_name_each_new_speaker() {
        let t = transcript(vec![
            seg(
                0.0,
                6.0,
                "spk_0",
                "In today's episode you'll learn whether or not you should have a trailer.",
            ),
            seg(
                6.5,
                12.0,
                "spk_0",
                "And if so, what should you include in one? Welcome to the show.",
            ),
            seg(
                12.5,
                16.0,
                "spk_1",
                "Hi, Gillian here from the careers podcast.",
            ),
            seg(16.5, 18.0, "spk_0", "Thanks."),
        ]);
        let cues = build_cues_for(&t, &CueLayout::PODCAST_SRT);
        let problems = rule_violations_for(&cues, &CueLayout::PODCAST_SRT, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            cues.iter()
                .all(|c| c.lines.iter().all(|l| l.chars().count() <= 32))
        );
        let named: Vec<&str> = cues
            .iter()
            .filter(|c| c.lines[0].contains(": "))
            .map(|c| c.lines[0].as_str())
            .collect();
        assert_eq!(named.len(), 3, "one card per change of speaker: {cues:?}");
        assert!(named[0].starts_with("Speaker 1: In today"), "{named:?}");
        assert!(named[1].starts_with("Speaker 2: Hi,"), "{named:?}");
        assert!(named[2].starts_with("Speaker 1: Thanks."), "{named:?}");
        // The same speaker going on opens no new name.
        let second_segment = cues.iter().find(|c| c.start >= 6.5).expect("a cue");
        assert!(!second_segment.lines[0].starts_with("Speaker"), "{cues:?}");
        // It is valid SRT, and the WebVTT layout of the same transcript is unchanged.
        assert_eq!(parse_srt(&to_srt(&cues)).expect("parses").len(), cues.len());
        assert!(
            build_cues(&t)
                .iter()
                .all(|c| !c.lines[0].starts_with("Speaker"))
        );
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
    fn webvtt_text_is_escaped_and_the_parser_rejects_what_the_format_forbids() {
        let t = transcript(vec![
            seg(0.0, 2.0, "spk_0", "Our Q&A on R&D."),
            seg(3.0, 5.0, "spk_1", "I <3 it, a --> b."),
        ]);
        let cues = build_cues(&t);
        let vtt = to_vtt(&cues);
        assert!(vtt.contains("Our Q&amp;A on R&amp;D."), "{vtt}");
        assert!(vtt.contains("I &lt;3 it, a --&gt; b."), "{vtt}");
        assert_eq!(parse_vtt(&vtt).expect("escaped text parses"), cues);

        let file = |text: &str| format!("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{text}\n");
        for (text, said) in [
            ("Our Q&A", "bare `&`"),
            ("I <3 it", "`<` opens no tag"),
            ("a --> b", "`-->` in cue text"),
        ] {
            match parse_vtt(&file(text)) {
                Err(SubtitleParseError::Malformed { line, message }) => {
                    assert_eq!(line, 4, "{text}");
                    assert!(message.contains(said), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // References and tags the format allows.
        let parsed = parse_vtt(&file("<i>fish</i> &amp; chips&nbsp;&lt;3")).expect("valid");
        assert_eq!(parsed[0].lines, vec!["<i>fish</i> & chips\u{a0}<3"]);
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
            words in proptest::collection::vec(("[a-z&<>]{1,12}[.?!]?", 0.05f64..1.5, 0.0f64..1.2, 0u8..3), 1..120)
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
            prop_assert_eq!(parse_srt(&srt).expect("parses"), unvoiced(&cues));
            prop_assert_eq!(parse_vtt(&to_vtt(&cues)).expect("parses"), cues);
        }
    }
}
