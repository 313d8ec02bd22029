//! `cargo bench -p publisher --bench extractive`: the extractive text engine's quality and
//! speed, each beside a simple baseline in the same run.
//!
//! - Chapters, on the four-topic episode (`src/extractive/testdata/four-topics.txt`, about
//!   ten minutes at 2.4 words/s) in three topic orders: boundaries found within ±15 s of a
//!   true one (precision / recall), Pk and WindowDiff at one-second resolution (lower is
//!   better); baseline: the same number of chapters evenly spaced.
//! - Summary: ROUGE-L (word LCS) against a reference written for the episode; baseline: the
//!   episode's first sentences up to the same length.
//! - Key phrases: recall of reference phrases among the ten keywords; baseline: the ten most
//!   frequent content words.
//! - Speed: everything the engine makes for a one-hour transcript (the episode six times);
//!   baseline: reading that transcript's JSON, which every publish does anyway.

use std::time::{Duration, Instant};

use podflow_core::transcript::Transcript;
use publisher::extractive::{Extract, OUTPUTS, sample, text::Language};

const TEXT: &str = include_str!("../src/extractive/testdata/four-topics.txt");
const TOLERANCE: f64 = 15.0;

const REFERENCE_SUMMARY: &str = "The host bakes a sourdough loaf: a lively starter, the \
    autolyse, folds, a cold night in the fridge and a covered pot in a hot oven. Then the \
    night sky: a comet, the moons of Jupiter and the rings of Saturn through a small \
    telescope, why dark skies and steady air matter, and meteor showers. Next a bicycle \
    service: cleaning the chain, new brake pads, tyre pressure, tuning the gears and truing \
    a wheel. Last, a neighbour's beehive: the queen and the workers, the waggle dance, how \
    bees make honey, swarms and the varroa mite.";

const REFERENCE_PHRASES: &[&str] = &[
    "sourdough",
    "starter",
    "bread",
    "dough",
    "telescope",
    "comet",
    "jupiter",
    "meteor",
    "chain",
    "brake pads",
    "tyre pressure",
    "bees",
    "hive",
    "honey",
    "varroa",
];

fn main() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("CPU: {cpu}, {cores} core(s)\n");

    let passages = sample::passages(TEXT);
    println!(
        "## Chapters (boundaries within ±{TOLERANCE:.0} s; Pk and WindowDiff, lower is better)\n"
    );
    println!(
        "| topic order | shifts at (s) | chapters found at (s) | precision | recall | Pk | WindowDiff | Pk evenly spaced | WindowDiff evenly spaced |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for order in [[0, 1, 2, 3], [2, 0, 3, 1], [3, 2, 1, 0]] {
        let ordered: Vec<Vec<&str>> = order.iter().map(|&k| passages[k].clone()).collect();
        let (transcript, truth) = sample::assemble(&ordered);
        let duration = transcript.duration_seconds;
        let (found, even) = sample::chapter_shifts(&transcript);
        let scores = sample::segmentation_scores(&truth, &found, duration, TOLERANCE);
        let baseline = sample::segmentation_scores(&truth, &even, duration, TOLERANCE);
        let names: Vec<String> = order.iter().map(|k| (k + 1).to_string()).collect();
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
            names.join("-"),
            sample::seconds_list(&truth),
            sample::seconds_list(&found),
            scores.precision,
            scores.recall,
            scores.pk,
            scores.window_diff,
            baseline.pk,
            baseline.window_diff,
        );
    }

    let (transcript, _) = sample::assemble(&passages);
    let extract = Extract::of(&transcript);
    let summary = extract.answer("summary", "t").unwrap_or_default();
    let budget = summary.split_whitespace().count();
    let said = transcript.full_text();
    let lead = said
        .split_whitespace()
        .take(budget)
        .collect::<Vec<_>>()
        .join(" ");
    println!("\n## Summary (ROUGE-L against a written reference)\n");
    println!("| summary | words | precision | recall | F1 |");
    println!("|---|---|---|---|---|");
    for (name, text) in [
        ("extractive", summary.as_str()),
        ("first sentences (baseline)", lead.as_str()),
    ] {
        let (p, r, f) = rouge_l(text, REFERENCE_SUMMARY);
        println!(
            "| {name} | {} | {p:.3} | {r:.3} | {f:.3} |",
            text.split_whitespace().count()
        );
    }

    let keywords: Vec<String> = extract
        .answer("keywords", "t")
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim_start_matches("- ").to_owned())
        .collect();
    let language = Language::for_code("en");
    let mut frequent: Vec<(String, usize)> = Vec::new();
    for word in transcript
        .full_text()
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !language.terms(w).is_empty())
    {
        match frequent.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => frequent.push((word, 1)),
        }
    }
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let frequent: Vec<String> = frequent.into_iter().take(10).map(|(w, _)| w).collect();
    println!(
        "\n## Key phrases (recall of {} reference phrases among 10)\n",
        REFERENCE_PHRASES.len()
    );
    println!("| key phrases | recall | the phrases |");
    println!("|---|---|---|");
    for (name, phrases) in [
        ("extractive", &keywords),
        ("most frequent words (baseline)", &frequent),
    ] {
        println!(
            "| {name} | {:.2} | {} |",
            phrase_recall(phrases, &language),
            phrases.join(", ")
        );
    }

    // An hour: the episode six times over.
    let hour: Vec<Vec<&str>> = (0..6).flat_map(|_| passages.clone()).collect();
    let (long, _) = sample::assemble(&hour);
    let json = serde_json::to_vec(&long).unwrap_or_default();
    let engine = median(|| {
        let extract = Extract::of(&long);
        for output in OUTPUTS {
            std::hint::black_box(extract.answer(output, "An hour"));
        }
    });
    let reading = median(|| {
        std::hint::black_box(serde_json::from_slice::<Transcript>(&json).ok());
    });
    println!(
        "\n## Speed ({:.0}-minute transcript, {} segments; median of 5)\n",
        long.duration_seconds / 60.0,
        long.segments.len()
    );
    println!("| work | time | × reading the transcript |");
    println!("|---|---|---|");
    println!(
        "| read the transcript's JSON (baseline) | {:.1} ms | 1.0 |",
        ms(reading)
    );
    println!(
        "| extractive engine, all {} outputs | {:.1} ms | {:.1} |",
        OUTPUTS.len(),
        ms(engine),
        engine.as_secs_f64() / reading.as_secs_f64().max(1e-9)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// ROUGE-L: precision, recall and F1 of the longest common word subsequence.
fn rouge_l(candidate: &str, reference: &str) -> (f64, f64, f64) {
    let (c, r) = (words(candidate), words(reference));
    let mut row = vec![0usize; r.len() + 1];
    for cw in &c {
        let mut diagonal = 0;
        for (j, rw) in r.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if cw == rw {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    let lcs = row[r.len()] as f64;
    let (p, rec) = (lcs / c.len().max(1) as f64, lcs / r.len().max(1) as f64);
    let f = if p + rec == 0.0 {
        0.0
    } else {
        2.0 * p * rec / (p + rec)
    };
    (p, rec, f)
}

/// The share of reference phrases that some found phrase matches (same stems, or one
/// holding the other).
fn phrase_recall(found: &[String], language: &Language) -> f64 {
    let stems = |s: &str| language.terms(s).join(" ");
    let found: Vec<String> = found.iter().map(|f| stems(f)).collect();
    let matched = REFERENCE_PHRASES
        .iter()
        .filter(|r| {
            let r = stems(r);
            found
                .iter()
                .any(|f| !f.is_empty() && (f.contains(&r) || r.contains(f.as_str())))
        })
        .count();
    matched as f64 / REFERENCE_PHRASES.len() as f64
}
