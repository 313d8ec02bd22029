//! Sentences with their times, and the content terms (stop words out, Snowball stems) the
//! rankers compare them by.

use std::collections::{HashMap, HashSet};

use podflow_core::transcript::Transcript;
use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// One sentence of the transcript.
#[derive(Debug, Clone)]
pub struct Sentence {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Stems of its content words, in order.
    pub terms: Vec<String>,
    /// Its content words as spoken (lowercase), split into runs at stop words and
    /// punctuation: the candidate key phrases.
    pub runs: Vec<Vec<(String, String)>>,
}

/// A sentence left open longer than this is closed at its segment's end: engines that
/// write no punctuation would otherwise make one sentence of the whole episode.
const LONGEST_SENTENCE_SECONDS: f64 = 20.0;

/// Talk that says nothing about the topic, beyond the stop-word list's entries.
const FILLERS_EN: &[&str] = &[
    "yeah",
    "okay",
    "ok",
    "um",
    "uh",
    "hmm",
    "gonna",
    "wanna",
    "kinda",
    "sorta",
    "thing",
    "things",
    "stuff",
    "lot",
    "lots",
    "guess",
    "pretty",
    "basically",
    "actually",
    "literally",
    "totally",
    "sure",
    "talk",
    "talking",
    "today",
    "episode",
    "welcome",
    "podcast",
];

/// Stop words and a stemmer for the transcript's language (ISO 639-1). A language
/// without a stemmer is compared by whole words; one without a stop-word list keeps
/// every word of three letters or more.
pub struct Language {
    stop: HashSet<&'static str>,
    stemmer: Option<Stemmer>,
}

impl Language {
    pub fn for_code(code: &str) -> Self {
        let code = code.split(['-', '_']).next().unwrap_or("").to_lowercase();
        let mut stop: HashSet<&'static str> = stop_words::lookup(&code)
            .map(|words| words.iter().copied().collect())
            .unwrap_or_default();
        if code == "en" {
            stop.extend(FILLERS_EN);
        }
        let algorithm = match code.as_str() {
            "ar" => Some(Algorithm::Arabic),
            "da" => Some(Algorithm::Danish),
            "nl" => Some(Algorithm::Dutch),
            "en" => Some(Algorithm::English),
            "fi" => Some(Algorithm::Finnish),
            "fr" => Some(Algorithm::French),
            "de" => Some(Algorithm::German),
            "el" => Some(Algorithm::Greek),
            "hu" => Some(Algorithm::Hungarian),
            "it" => Some(Algorithm::Italian),
            "no" | "nb" | "nn" => Some(Algorithm::Norwegian),
            "pt" => Some(Algorithm::Portuguese),
            "ro" => Some(Algorithm::Romanian),
            "ru" => Some(Algorithm::Russian),
            "es" => Some(Algorithm::Spanish),
            "sv" => Some(Algorithm::Swedish),
            "ta" => Some(Algorithm::Tamil),
            "tr" => Some(Algorithm::Turkish),
            _ => None,
        };
        Self {
            stop,
            stemmer: algorithm.map(Stemmer::create),
        }
    }

    /// Whether `word` (lowercase) carries content.
    fn is_content(&self, word: &str) -> bool {
        let letters = word.chars().filter(|c| c.is_alphabetic()).count();
        if letters == 0 || self.stop.contains(word) {
            return false;
        }
        // Contractions ("don't", "we're") are stop words whichever list is used.
        if word.contains('\'') || word.contains('’') {
            return false;
        }
        letters >= if self.stop.is_empty() { 3 } else { 2 }
    }

    fn stem(&self, word: &str) -> String {
        match &self.stemmer {
            Some(stemmer) => stemmer.stem(word).into_owned(),
            None => word.to_owned(),
        }
    }

    /// The stems of a text's content words.
    pub fn terms(&self, text: &str) -> Vec<String> {
        text.unicode_words()
            .map(str::to_lowercase)
            .filter(|w| self.is_content(w))
            .map(|w| self.stem(&w))
            .collect()
    }

    /// Runs of content words between stop words and punctuation, as (surface, stem).
    fn runs(&self, text: &str) -> Vec<Vec<(String, String)>> {
        let mut runs = Vec::new();
        let mut run: Vec<(String, String)> = Vec::new();
        for (_, piece) in text.split_word_bound_indices() {
            // Spaces, and the hyphen inside a compound ("wood-fired"), do not end a run.
            if piece.trim().is_empty() || piece == "-" {
                continue;
            }
            let word = piece.to_lowercase();
            let is_word = piece.chars().any(char::is_alphanumeric);
            if is_word && self.is_content(&word) {
                let stem = self.stem(&word);
                run.push((word, stem));
            } else if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        runs
    }
}

/// Whether a word closes a sentence.
fn closes_sentence(word: &str) -> bool {
    let w = word.trim_end_matches(['"', '\'', ')', '”', '’', ']']);
    w.ends_with(['.', '!', '?', '…'])
}

/// The transcript's sentences, timed by their words where the engine gave word times, else
/// by their share of their segment's characters. A speaker change always ends a sentence.
pub fn sentences(transcript: &Transcript, language: &Language) -> Vec<Sentence> {
    // (start, end, text) pieces that each end a sentence or not.
    let mut pieces: Vec<(f64, f64, String, bool)> = Vec::new();
    for (i, segment) in transcript.segments.iter().enumerate() {
        if !segment.words.is_empty() {
            for word in &segment.words {
                let text = word.text.trim();
                if !text.is_empty() {
                    pieces.push((word.start, word.end, text.to_owned(), closes_sentence(text)));
                }
            }
        } else {
            let text = segment.text.trim();
            let chars = text.chars().count().max(1) as f64;
            let span = (segment.end - segment.start).max(0.0);
            let mut offset = 0usize;
            for part in split_sentences(text) {
                let n = part.chars().count();
                let start = segment.start + span * offset as f64 / chars;
                let end = segment.start + span * (offset + n) as f64 / chars;
                offset += n + 1;
                pieces.push((start, end, part.to_owned(), closes_sentence(part)));
            }
        }
        // The next speaker's turn ends the sentence, punctuated or not.
        let next = transcript.segments[i + 1..]
            .iter()
            .find(|s| !s.text.trim().is_empty());
        if let Some(last) = pieces.last_mut()
            && next.is_none_or(|next| next.speaker != segment.speaker)
        {
            last.3 = true;
        }
    }
    let mut out = Vec::new();
    let mut open: Option<(f64, f64, String)> = None;
    for (start, end, text, closes) in pieces {
        let (first, last, joined) = open.get_or_insert_with(|| (start, end, String::new()));
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(&text);
        *last = end;
        if (closes || end - *first >= LONGEST_SENTENCE_SECONDS)
            && let Some((s, e, t)) = open.take()
        {
            out.push(sentence(s, e, t, language));
        }
    }
    if let Some((s, e, t)) = open.take() {
        out.push(sentence(s, e, t, language));
    }
    out
}

fn sentence(start: f64, end: f64, text: String, language: &Language) -> Sentence {
    Sentence {
        start,
        end: end.max(start),
        terms: language.terms(&text),
        runs: language.runs(&text),
        text,
    }
}

/// A text cut after each `.`, `!`, `?` or `…` that a space follows.
fn split_sentences(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut from = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(k + 1).is_some_and(|&(_, n)| n == ' ');
        if matches!(c, '.' | '!' | '?' | '…') && next_is_space {
            let end = i + c.len_utf8();
            parts.push(text[from..end].trim());
            from = end;
        }
    }
    if from < text.len() {
        parts.push(text[from..].trim());
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// In how many sentences each term occurs.
pub fn document_frequency(sentences: &[Sentence]) -> HashMap<&str, f64> {
    let mut df = HashMap::new();
    for s in sentences {
        let mut seen: Vec<&str> = s.terms.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            *df.entry(t).or_insert(0.0) += 1.0;
        }
    }
    df
}

/// Term counts of some sentences.
pub fn counts<'a>(sentences: impl IntoIterator<Item = &'a Sentence>) -> HashMap<&'a str, f64> {
    let mut counts = HashMap::new();
    for s in sentences {
        for t in &s.terms {
            *counts.entry(t.as_str()).or_insert(0.0) += 1.0;
        }
    }
    counts
}

/// Cosine similarity of two sparse vectors.
pub fn cosine(a: &HashMap<&str, f64>, b: &HashMap<&str, f64>) -> f64 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let dot: f64 = small
        .iter()
        .filter_map(|(k, v)| large.get(k).map(|w| v * w))
        .sum();
    let norm = |m: &HashMap<&str, f64>| m.values().map(|v| v * v).sum::<f64>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podflow_core::transcript::{TimedWord, TranscriptSegment};

    fn transcript(segments: Vec<TranscriptSegment>) -> Transcript {
        Transcript {
            language: "en".into(),
            duration_seconds: segments.last().map_or(0.0, |s| s.end),
            engine: "test".into(),
            model: "test".into(),
            segments,
        }
    }

    #[test]
    fn sentences_are_timed_by_their_share_of_the_segment() {
        let t = transcript(vec![TranscriptSegment {
            start: 10.0,
            end: 20.0,
            speaker: None,
            text: "Bread rises. Yeast eats sugar!".into(),
            words: Vec::new(),
        }]);
        let s = sentences(&t, &Language::for_code("en"));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].text, "Bread rises.");
        assert!((s[0].start - 10.0).abs() < 1e-9 && (s[0].end - 14.0).abs() < 0.01);
        assert!((s[1].end - 20.0).abs() < 1e-9);
        assert_eq!(s[1].terms, ["yeast", "eat", "sugar"]);
    }

    #[test]
    fn word_times_make_exact_sentences_and_a_speaker_change_ends_one() {
        let word = |start: f64, text: &str| TimedWord {
            start,
            end: start + 0.4,
            text: text.into(),
        };
        let t = transcript(vec![
            TranscriptSegment {
                start: 0.0,
                end: 2.0,
                speaker: Some("spk_0".into()),
                text: "so the oven".into(),
                words: vec![word(0.0, "so"), word(0.5, "the"), word(1.0, "oven")],
            },
            TranscriptSegment {
                start: 3.0,
                end: 5.0,
                speaker: Some("spk_1".into()),
                text: "Is hot. Right.".into(),
                words: vec![word(3.0, "Is"), word(3.5, "hot."), word(4.5, "Right.")],
            },
        ]);
        let s = sentences(&t, &Language::for_code("en"));
        let got: Vec<(&str, f64, f64)> = s
            .iter()
            .map(|s| (s.text.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            got,
            [
                ("so the oven", 0.0, 1.4),
                ("Is hot.", 3.0, 3.9),
                ("Right.", 4.5, 4.9)
            ]
        );
    }

    #[test]
    fn key_phrase_runs_stop_at_stop_words_and_punctuation() {
        let runs = Language::for_code("en").runs("The sourdough starter, and a wood-fired oven.");
        let surface: Vec<Vec<&str>> = runs
            .iter()
            .map(|r| r.iter().map(|(w, _)| w.as_str()).collect())
            .collect();
        assert_eq!(
            surface,
            [vec!["sourdough", "starter"], vec!["wood", "fired", "oven"]]
        );
    }
}
