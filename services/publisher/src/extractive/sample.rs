//! Episodes assembled from written passages at a steady speaking rate, with the times
//! their topics change: what the extractive engine's tests and benchmark are measured on.

use podflow_core::transcript::{Transcript, TranscriptSegment};

use super::Extract;

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

/// How well chapter starts match the true topic shifts (both in seconds, without the 0 that
/// starts every episode).
#[derive(Debug, Clone, Copy)]
pub struct SegmentationScores {
    /// Share of found starts within `tolerance` of a true shift.
    pub precision: f64,
    /// Share of true shifts with a found start within `tolerance`.
    pub recall: f64,
    /// Pk (Beeferman et al.), at one-second resolution: how often two points k seconds
    /// apart (k: half the mean true chapter) are wrongly judged in the same or in different
    /// chapters. Lower is better.
    pub pk: f64,
    /// WindowDiff (Pevzner and Hearst): how often a k-second window holds a different
    /// number of boundaries than it should. Lower is better.
    pub window_diff: f64,
}

/// Scores `found` against `truth` over an episode of `duration` seconds.
pub fn segmentation_scores(
    truth: &[f64],
    found: &[f64],
    duration: f64,
    tolerance: f64,
) -> SegmentationScores {
    let near = |a: &[f64], b: &[f64]| {
        a.iter()
            .filter(|x| b.iter().any(|y| (*x - y).abs() <= tolerance))
            .count() as f64
    };
    let segment_at = |b: &[f64], t: f64| b.iter().filter(|&&x| x <= t).count();
    let k = ((duration / (truth.len() + 1) as f64 / 2.0).round() as usize).max(1);
    let points = (duration as usize).saturating_sub(k).max(1);
    let (mut pk, mut wd) = (0usize, 0usize);
    for t in 0..points {
        let (a, b) = (t as f64, (t + k) as f64);
        let same_true = segment_at(truth, a) == segment_at(truth, b);
        let same_found = segment_at(found, a) == segment_at(found, b);
        pk += usize::from(same_true != same_found);
        let between = |x: &[f64]| segment_at(x, b) - segment_at(x, a);
        wd += usize::from(between(truth) != between(found));
    }
    SegmentationScores {
        precision: if found.is_empty() {
            1.0
        } else {
            near(found, truth) / found.len() as f64
        },
        recall: if truth.is_empty() {
            1.0
        } else {
            near(truth, found) / truth.len() as f64
        },
        pk: pk as f64 / points as f64,
        window_diff: wd as f64 / points as f64,
    }
}

/// Where the extractive engine starts a chapter in `transcript`, after the first (which
/// always starts at 0), and the same number of starts evenly spaced (the baseline).
pub fn chapter_shifts(transcript: &Transcript) -> (Vec<f64>, Vec<f64>) {
    let found: Vec<f64> = Extract::of(transcript)
        .chapters
        .iter()
        .skip(1)
        .map(|c| c.start)
        .collect();
    let duration = transcript.duration_seconds;
    let even = (1..=found.len())
        .map(|k| duration * k as f64 / (found.len() + 1) as f64)
        .collect();
    (found, even)
}

/// "105, 224, 333": times in whole seconds, for a table.
pub fn seconds_list(times: &[f64]) -> String {
    times
        .iter()
        .map(|t| format!("{t:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}
