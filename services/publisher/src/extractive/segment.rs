//! Chapters at topic shifts: TextTiling over lexical cohesion. At every sentence boundary
//! the words of the minute before are compared with the words of the minute after; where
//! they share least (a deep valley in the similarity curve) the topic changed.

use std::collections::HashMap;

use super::text::{Sentence, cosine, counts, document_frequency};

/// Term counts scaled by inverse document frequency.
fn weighted<'a>(
    mut counts: HashMap<&'a str, f64>,
    idf: &HashMap<&str, f64>,
) -> HashMap<&'a str, f64> {
    for (t, w) in counts.iter_mut() {
        *w *= idf.get(t).copied().unwrap_or(0.0);
    }
    counts
}

/// How long each side of a boundary is compared, and the shortest chapter, for an episode
/// of `duration` seconds: a minute and a bit more for a normal episode, less for a short one.
fn scales(duration: f64) -> (f64, f64) {
    let window = (duration / 10.0).clamp(15.0, 60.0);
    let shortest = (duration / 8.0).clamp(20.0, 120.0);
    (window, shortest)
}

/// The most chapters an episode gets.
const MOST_CHAPTERS: usize = 12;

/// The indices of the sentences that start a chapter; the first is always 0.
pub fn chapter_starts(sentences: &[Sentence], duration: f64) -> Vec<usize> {
    let n = sentences.len();
    if n < 6 {
        return vec![0];
    }
    let (window, shortest) = scales(duration);
    // Too short for two chapters (or no usable times): nothing to compare.
    if duration < 2.0 * shortest {
        return vec![0];
    }
    // Words said all through the episode say little about where its topics change.
    let idf: HashMap<&str, f64> = document_frequency(sentences)
        .into_iter()
        .map(|(t, d)| (t, (n as f64 / d).ln()))
        .collect();
    // Similarity across the boundary before each sentence g (1..n).
    let mut similarity = vec![0.0; n];
    for g in 1..n {
        let at = sentences[g].start;
        let left: Vec<&Sentence> = sentences[..g]
            .iter()
            .rev()
            .enumerate()
            .take_while(|(k, s)| *k < 2 || s.start >= at - window)
            .map(|(_, s)| s)
            .collect();
        let right: Vec<&Sentence> = sentences[g..]
            .iter()
            .enumerate()
            .take_while(|(k, s)| *k < 2 || s.end <= at + window)
            .map(|(_, s)| s)
            .collect();
        similarity[g] = cosine(
            &weighted(counts(left), &idf),
            &weighted(counts(right), &idf),
        );
    }
    // Smoothed over neighbours, so one odd sentence makes no valley.
    let smooth: Vec<f64> = (0..n)
        .map(|g| {
            if g == 0 {
                return 0.0;
            }
            let lo = g.saturating_sub(1).max(1);
            let hi = (g + 1).min(n - 1);
            similarity[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64
        })
        .collect();
    // Depth: how far the curve climbs on both sides of a boundary.
    let depth = |g: usize| {
        let mut left = smooth[g];
        let mut k = g;
        while k > 1 && smooth[k - 1] >= left {
            k -= 1;
            left = smooth[k];
        }
        let mut right = smooth[g];
        let mut k = g;
        while k + 1 < n && smooth[k + 1] >= right {
            k += 1;
            right = smooth[k];
        }
        (left - smooth[g]) + (right - smooth[g])
    };
    let start = sentences[0].start;
    let candidates: Vec<(usize, f64)> = (1..n)
        .filter(|&g| {
            sentences[g].start - start >= shortest
                && duration - sentences[g].start >= shortest / 2.0
        })
        .map(|g| (g, depth(g)))
        .collect();
    if candidates.is_empty() {
        return vec![0];
    }
    // A boundary must stand out from the episode's own ups and downs.
    let mean = candidates.iter().map(|c| c.1).sum::<f64>() / candidates.len() as f64;
    let sd = (candidates.iter().map(|c| (c.1 - mean).powi(2)).sum::<f64>()
        / candidates.len() as f64)
        .sqrt();
    let threshold = (mean + sd).max(0.1);
    let most = ((duration / shortest) as usize).clamp(1, MOST_CHAPTERS);
    let mut ranked = candidates;
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut starts = vec![0];
    for (g, d) in ranked {
        if starts.len() >= most || d < threshold {
            break;
        }
        let at = sentences[g].start;
        if starts
            .iter()
            .all(|&s| (sentences[s].start - at).abs() >= shortest)
        {
            starts.push(g);
        }
    }
    starts.sort_unstable();
    starts
}
