//! Episodes assembled from written passages at a steady speaking rate, with the times
//! their topics change: what the extractive engine's tests and benchmark are measured on.

use podflow_core::transcript::{Transcript, TranscriptSegment};

/// Speaking rate of an assembled episode, words per second, and the pause after each
/// sentence.
const WORDS_PER_SECOND: f64 = 2.4;
const PAUSE_SECONDS: f64 = 0.4;

/// The passages of a text: blocks separated by blank lines, `#` lines left out, one
/// sentence a line.
pub fn passages(text: &str) -> Vec<Vec<&str>> {
    let mut passages: Vec<Vec<&str>> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                passages.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        passages.push(current);
    }
    passages
}

/// One segment per sentence, two speakers taking turns, and the start of every passage
/// after the first.
pub fn assemble(passages: &[Vec<&str>]) -> (Transcript, Vec<f64>) {
    let mut segments = Vec::new();
    let mut boundaries = Vec::new();
    let mut at = 0.0;
    for (k, passage) in passages.iter().enumerate() {
        if k > 0 {
            boundaries.push(at);
        }
        for line in passage {
            let seconds = line.split_whitespace().count() as f64 / WORDS_PER_SECOND;
            segments.push(TranscriptSegment {
                start: at,
                end: at + seconds,
                speaker: Some(format!("spk_{}", segments.len() % 2)),
                text: (*line).to_owned(),
                words: Vec::new(),
            });
            at += seconds + PAUSE_SECONDS;
        }
    }
    let transcript = Transcript {
        language: "en".into(),
        duration_seconds: at,
        engine: "assembled".into(),
        model: "none".into(),
        segments,
    };
    (transcript, boundaries)
}
