//! Ranking: how central each sentence is (centroid of TF-IDF vectors), key phrases
//! (RAKE-style runs of content words, scored by frequency), and clip windows.

use std::collections::HashMap;

use super::text::{Sentence, cosine, document_frequency};

/// Terms kept in the centroid: the episode's vocabulary beyond them is noise.
const CENTROID_TERMS: usize = 40;
/// A sentence with fewer content terms than this is scaled down: short ones say little.
const FULL_SENTENCE_TERMS: f64 = 6.0;

/// Words in a text.
pub fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Each sentence's TF-IDF vector (sentences are the documents).
pub fn vectors(sentences: &[Sentence]) -> Vec<HashMap<&str, f64>> {
    let n = sentences.len().max(1) as f64;
    let df = document_frequency(sentences);
    sentences
        .iter()
        .map(|s| {
            let mut v: HashMap<&str, f64> = HashMap::new();
            for t in &s.terms {
                *v.entry(t.as_str()).or_insert(0.0) += 1.0;
            }
            for (t, w) in v.iter_mut() {
                *w *= (1.0 + n / df[t]).ln();
            }
            v
        })
        .collect()
}

/// How central each sentence is to `among` (indices into `sentences`): the cosine of its
/// vector with their centroid, scaled down for short sentences (centroid summarisation).
pub fn centrality(
    sentences: &[Sentence],
    vectors: &[HashMap<&str, f64>],
    among: &[usize],
) -> HashMap<usize, f64> {
    let mut centroid: HashMap<&str, f64> = HashMap::new();
    for &i in among {
        for (t, w) in &vectors[i] {
            *centroid.entry(t).or_insert(0.0) += w;
        }
    }
    let mut strongest: Vec<(&str, f64)> = centroid.into_iter().collect();
    strongest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    strongest.truncate(CENTROID_TERMS);
    let centroid: HashMap<&str, f64> = strongest.into_iter().collect();
    among
        .iter()
        .map(|&i| {
            let length = (sentences[i].terms.len() as f64 / FULL_SENTENCE_TERMS).min(1.0);
            (i, cosine(&vectors[i], &centroid) * length)
        })
        .collect()
}

/// The most central sentences of `among`, without repeating one another, up to `budget`
/// words and `most` sentences, in the order they were said.
pub fn pick_sentences(
    sentences: &[Sentence],
    vectors: &[HashMap<&str, f64>],
    among: &[usize],
    budget: usize,
    most: usize,
) -> Vec<usize> {
    let scores = centrality(sentences, vectors, among);
    let mut ranked: Vec<usize> = among
        .iter()
        .copied()
        .filter(|&i| (5..=60).contains(&words(&sentences[i].text)))
        .collect();
    ranked.sort_by(|a, b| scores[b].total_cmp(&scores[a]).then(a.cmp(b)));
    let mut chosen: Vec<usize> = Vec::new();
    let mut used = 0;
    for i in ranked {
        if chosen.len() >= most {
            break;
        }
        let n = words(&sentences[i].text);
        if !chosen.is_empty() && used + n > budget {
            continue;
        }
        if chosen
            .iter()
            .any(|&j| cosine(&vectors[i], &vectors[j]) > 0.5)
        {
            continue;
        }
        used += n;
        chosen.push(i);
    }
    chosen.sort_unstable();
    chosen
}

/// A candidate key phrase: its stems, and how it was said most often.
#[derive(Debug, Clone)]
pub struct Phrase {
    pub stems: Vec<String>,
    pub surface: String,
    score: f64,
}

/// Key phrases of `among` (indices into `sentences`), best first: 1–3-word pieces of runs of
/// content words, scored by how often they occur, how frequent their words are across the
/// stretch they come from (`word_counts`) and their words' RAKE scores; no phrase inside
/// another.
pub fn key_phrases(
    sentences: &[Sentence],
    among: &[usize],
    word_counts: &HashMap<&str, f64>,
    most: usize,
) -> Vec<Phrase> {
    let mut found: HashMap<Vec<String>, (usize, HashMap<String, usize>)> = HashMap::new();
    // RAKE's word score: how long the runs a word stands in are (degree) for how often it
    // occurs; words that come in phrases score higher than words that come alone.
    let mut degree: HashMap<&str, (f64, f64)> = HashMap::new();
    for &i in among {
        for run in &sentences[i].runs {
            for (_, stem) in run {
                let d = degree.entry(stem.as_str()).or_insert((0.0, 0.0));
                d.0 += run.len().min(3) as f64;
                d.1 += 1.0;
            }
            for n in 1..=3.min(run.len()) {
                for gram in run.windows(n) {
                    let stems: Vec<String> = gram.iter().map(|(_, s)| s.clone()).collect();
                    let surface = gram
                        .iter()
                        .map(|(w, _)| w.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let entry = found.entry(stems).or_default();
                    entry.0 += 1;
                    *entry.1.entry(surface).or_insert(0) += 1;
                }
            }
        }
    }
    let mut phrases: Vec<Phrase> = found
        .into_iter()
        .map(|(stems, (count, surfaces))| {
            let frequency = |s: &String| word_counts.get(s.as_str()).copied().unwrap_or(1.0);
            let mean_frequency = stems.iter().map(frequency).sum::<f64>() / stems.len() as f64;
            let rake: f64 = stems
                .iter()
                .map(|s| degree.get(s.as_str()).map_or(1.0, |(d, f)| d / f))
                .sum();
            let mut surfaces: Vec<(String, usize)> = surfaces.into_iter().collect();
            surfaces.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            Phrase {
                surface: surfaces.swap_remove(0).0,
                score: count as f64 * mean_frequency.sqrt() * rake,
                stems,
            }
        })
        .collect();
    phrases.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.surface.cmp(&b.surface))
    });
    let mut chosen: Vec<Phrase> = Vec::new();
    for p in phrases {
        if chosen.len() >= most {
            break;
        }
        let overlaps = chosen
            .iter()
            .any(|c| contains(&c.stems, &p.stems) || contains(&p.stems, &c.stems));
        if !overlaps {
            chosen.push(p);
        }
    }
    chosen
}

/// Whether `needle` occurs in `hay` as consecutive items.
fn contains(hay: &[String], needle: &[String]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Shortest and longest clip, in seconds.
pub const CLIP_SECONDS: (f64, f64) = (20.0, 60.0);

/// Words a clip that stands on its own does not start with: they lean on what came before.
const LEANING_STARTS: &[&str] = &[
    "and", "but", "so", "because", "which", "that", "this", "it", "they", "he", "she", "also",
    "then", "or", "those", "these", "there", "yes", "no", "yeah", "right",
];

/// A clip: the sentences `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSpan {
    pub first: usize,
    pub last: usize,
    pub score: f64,
}

/// Up to `most` clips of 20–60 s that start at a sentence's start and end at a sentence's
/// end, none overlapping, best first: the most central stretches, preferring ones that do
/// not begin by leaning on what came before and that a pause sets apart.
pub fn clips(
    sentences: &[Sentence],
    centrality: &HashMap<usize, f64>,
    most: usize,
) -> Vec<ClipSpan> {
    let pause_before = |i: usize| i == 0 || sentences[i].start - sentences[i - 1].end >= 0.3;
    let pause_after =
        |i: usize| i + 1 == sentences.len() || sentences[i + 1].start - sentences[i].end >= 0.3;
    let mut candidates = Vec::new();
    for first in 0..sentences.len() {
        let lean = sentences[first]
            .text
            .split_whitespace()
            .next()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .is_some_and(|w| LEANING_STARTS.contains(&w.as_str()));
        let mut total = 0.0;
        for last in first..sentences.len() {
            total += centrality.get(&last).copied().unwrap_or(0.0);
            let length = sentences[last].end - sentences[first].start;
            if length > CLIP_SECONDS.1 {
                break;
            }
            if length < CLIP_SECONDS.0 {
                continue;
            }
            let mean = total / (last - first + 1) as f64;
            let mut score = mean;
            if lean {
                score *= 0.6;
            }
            if pause_before(first) {
                score *= 1.1;
            }
            if pause_after(last) {
                score *= 1.1;
            }
            // Half a minute or so is what a listener gives a clip.
            if (25.0..=45.0).contains(&length) {
                score *= 1.1;
            }
            candidates.push(ClipSpan { first, last, score });
        }
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.first.cmp(&b.first)));
    let mut chosen: Vec<ClipSpan> = Vec::new();
    for c in candidates {
        if chosen.len() >= most {
            break;
        }
        if chosen.iter().all(|k| c.last < k.first || c.first > k.last) {
            chosen.push(c);
        }
    }
    chosen
}
