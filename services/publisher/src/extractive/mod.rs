//! The built-in extractive text engine: the show's texts made from the transcript alone —
//! pure Rust, deterministic, no model — when no LLM is configured, or for an output whose
//! prompt failed.
//!
//! Every text is cut from what was said, never written anew: the summary is the most
//! central sentences (centroid of TF-IDF vectors), chapters start at topic shifts
//! (TextTiling over lexical cohesion) and are titled by their key phrase (RAKE-style runs
//! of content words), clips are the most central 20–60 s stretches between sentence
//! boundaries. Words are split by `unicode-segmentation`, stop words come from
//! `stop-words` (the ISO lists) and stems from `rust-stemmers` (Snowball); the ranking
//! itself is written here, since no maintained crate does centroid ranking or TextTiling.
//!
//! [`Extract::answer`] gives each output in the shape the matching prompt asks an LLM for,
//! so the publisher reads both alike.

mod rank;
pub mod sample;
mod segment;
pub mod text;

use std::collections::HashMap;

use podflow_core::transcript::{Transcript, clock};
use serde_json::json;

use crate::documents::truncate;
use rank::ClipSpan;
use text::{Language, Sentence};

/// What the outputs it makes are recorded as (`model` of their `PromptOutput`).
pub const ENGINE: &str = "extractive";
/// Its version, recorded as the outputs' `prompt_version`.
pub const VERSION: u32 = 1;

/// The outputs the engine makes: the bundled prompts' ids.
pub const OUTPUTS: &[&str] = &[
    "summary",
    "chapters",
    "keywords",
    "clips",
    "titles",
    "show-notes",
    "blog-post",
    "social",
];

/// The summary's length: at most this many sentences and (beyond one per chapter) words.
const SUMMARY_SENTENCES: usize = 6;
const SUMMARY_WORDS: usize = 130;

/// A chapter: its first sentence, its title and its most central sentence.
#[derive(Debug, Clone)]
pub struct ChapterPick {
    pub first: usize,
    pub start: f64,
    pub title: String,
    pub key_sentence: Option<usize>,
}

/// Everything the engine finds in one transcript.
pub struct Extract {
    sentences: Vec<Sentence>,
    summary: Vec<usize>,
    chapters: Vec<ChapterPick>,
    keywords: Vec<String>,
    clips: Vec<ClipSpan>,
    hooks: Vec<usize>,
}

impl Extract {
    pub fn of(transcript: &Transcript) -> Self {
        let language = Language::for_code(&transcript.language);
        let sentences = text::sentences(transcript, &language);
        let all: Vec<usize> = (0..sentences.len()).collect();
        let vectors = rank::vectors(&sentences);
        let centrality = rank::centrality(&sentences, &vectors, &all);
        let word_counts = text::counts(&sentences);
        let keywords = rank::key_phrases(&sentences, &all, &word_counts, 10)
            .into_iter()
            .map(|p| p.surface)
            .collect();

        let duration = transcript
            .duration_seconds
            .max(sentences.last().map_or(0.0, |s| s.end));
        let starts = if sentences.is_empty() {
            Vec::new()
        } else {
            segment::chapter_starts(&sentences, duration)
        };
        let mut chapters: Vec<ChapterPick> = Vec::new();
        for (k, &first) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(sentences.len());
            let members: Vec<usize> = (first..end).collect();
            let counts = text::counts(members.iter().map(|&i| &sentences[i]));
            let taken: Vec<&str> = chapters.iter().map(|c| c.title.as_str()).collect();
            let title = rank::key_phrases(&sentences, &members, &counts, 5)
                .into_iter()
                .map(|p| title_case(&p.surface))
                .find(|t| !taken.contains(&t.as_str()))
                .unwrap_or_else(|| format!("Part {}", k + 1));
            let key_sentence = rank::pick_sentences(&sentences, &vectors, &members, 60, 1)
                .first()
                .copied();
            chapters.push(ChapterPick {
                first,
                start: sentences.get(first).map_or(0.0, |s| s.start),
                title,
                key_sentence,
            });
        }

        // Each chapter's central sentence, so every topic is in the summary, then the
        // episode's most central ones while words are left.
        let central = |i: &usize| centrality.get(i).copied().unwrap_or(0.0);
        let mut summary: Vec<usize> = chapters.iter().filter_map(|c| c.key_sentence).collect();
        // More chapters than summary sentences: the most central of theirs, from anywhere
        // in the episode (not the first chapters').
        summary.sort_by(|a, b| central(b).total_cmp(&central(a)).then(a.cmp(b)));
        summary.truncate(SUMMARY_SENTENCES);
        let mut used: usize = summary
            .iter()
            .map(|&i| rank::words(&sentences[i].text))
            .sum();
        for i in rank::pick_sentences(&sentences, &vectors, &all, SUMMARY_WORDS, SUMMARY_SENTENCES)
        {
            let n = rank::words(&sentences[i].text);
            if summary.len() < SUMMARY_SENTENCES
                && !summary.contains(&i)
                && used + n <= SUMMARY_WORDS
                && summary
                    .iter()
                    .all(|&j| text::cosine(&vectors[i], &vectors[j]) <= 0.5)
            {
                summary.push(i);
                used += n;
            }
        }
        summary.sort_unstable();

        let clips = rank::clips(&sentences, &centrality, 5);
        let hooks = clips
            .iter()
            .map(|c| {
                (c.first..=c.last)
                    .max_by(|a, b| central(a).total_cmp(&central(b)).then(b.cmp(a)))
                    .unwrap_or(c.first)
            })
            .collect();
        Self {
            sentences,
            summary,
            chapters,
            keywords,
            clips,
            hooks,
        }
    }

    fn said(&self, i: usize) -> &str {
        self.sentences[i].text.trim()
    }

    fn summary_text(&self) -> String {
        let parts: Vec<&str> = self.summary.iter().map(|&i| self.said(i)).collect();
        parts.join(" ")
    }

    /// Titles, best first: the two leading key phrases, the topic list, the most central
    /// short sentence.
    fn titles(&self) -> Vec<String> {
        let phrases: Vec<String> = self.keywords.iter().map(|k| title_case(k)).collect();
        let mut titles = Vec::new();
        match phrases.as_slice() {
            [] => {}
            [one] => titles.push(one.clone()),
            [one, two, rest @ ..] => {
                titles.push(format!("{one} and {two}"));
                if let Some(three) = rest.first() {
                    titles.push(format!("{one}: {two}, {three}"));
                }
                titles.push(format!("On {one}"));
            }
        }
        let chapter_titles: Vec<&str> = self
            .chapters
            .iter()
            .map(|c| c.title.as_str())
            .filter(|t| !t.starts_with("Part "))
            .collect();
        if chapter_titles.len() >= 2 {
            titles.push(chapter_titles.join(", "));
        }
        if let Some(&i) = self
            .summary
            .iter()
            .find(|&&i| self.said(i).chars().count() <= 70)
        {
            titles.push(self.said(i).trim_end_matches('.').to_owned());
        }
        let mut unique: Vec<String> = Vec::new();
        for t in titles {
            let t = truncate(&t, 70);
            if !t.is_empty() && !unique.contains(&t) {
                unique.push(t);
            }
        }
        unique.truncate(5);
        unique
    }

    /// The output `output` (a bundled prompt's id) in the shape its prompt asks an LLM for;
    /// `None` for one the engine does not make. `title` is the episode's title.
    pub fn answer(&self, output: &str, title: &str) -> Option<String> {
        let text = match output {
            // Nothing to say is no answer: an empty list would read as a failed one.
            "chapters" | "show-notes" if self.chapters.is_empty() => return None,
            "clips" if self.clips.is_empty() => return None,
            "summary" => self.summary_text(),
            "chapters" => json!({"chapters": self.chapters.iter().map(|c| json!({
                "startTime": (c.start * 1000.0).round() / 1000.0,
                "title": c.title,
            })).collect::<Vec<_>>()})
            .to_string(),
            "clips" => json!({"clips": self.clips.iter().zip(&self.hooks).map(|(c, &hook)| json!({
                "start": self.sentences[c.first].start,
                "end": self.sentences[c.last].end,
                "hook": truncate(self.said(hook), 100),
            })).collect::<Vec<_>>()})
            .to_string(),
            "keywords" => self.keywords.iter().map(|k| format!("- {k}\n")).collect(),
            "titles" => self
                .titles()
                .iter()
                .enumerate()
                .map(|(n, t)| format!("{}. {t}\n", n + 1))
                .collect(),
            "show-notes" => self.show_notes(),
            "blog-post" => self.blog_post(title),
            "social" => self.social(title),
            _ => return None,
        };
        (!text.trim().is_empty()).then_some(text)
    }

    /// The topics with their times and what was said of each, then who and what came up.
    fn show_notes(&self) -> String {
        let mut md = String::from("### Topics\n");
        for c in &self.chapters {
            md.push_str(&format!("- {} **{}**", clock(c.start), c.title));
            if let Some(i) = c.key_sentence {
                md.push_str(&format!(": “{}”", self.said(i)));
            }
            md.push('\n');
        }
        let names = self.mentioned_names();
        if !names.is_empty() {
            md.push_str(&format!("\n### Mentioned\n{}\n", names.join(", ")));
        }
        md
    }

    /// Capitalised words said more than once that do not start a sentence: names of
    /// people, places and projects (a guess by spelling, so listed, never explained).
    fn mentioned_names(&self) -> Vec<String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for s in &self.sentences {
            let words: Vec<&str> = s.text.split_whitespace().collect();
            for w in words.iter().skip(1) {
                let word = w.trim_matches(|c: char| !c.is_alphanumeric());
                let capital = word.chars().next().is_some_and(char::is_uppercase);
                if capital && word.chars().count() > 1 && word != "I" && !word.starts_with("I'") {
                    *seen.entry(word.to_owned()).or_insert(0) += 1;
                }
            }
        }
        let mut names: Vec<(String, usize)> = seen.into_iter().filter(|(_, n)| *n >= 2).collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        names.into_iter().take(10).map(|(w, _)| w).collect()
    }

    /// An article of what was said: the summary, then each chapter's central sentences.
    fn blog_post(&self, title: &str) -> String {
        let mut md = format!("# {title}\n\n{}\n", self.summary_text());
        if self.chapters.len() > 1 {
            let vectors = rank::vectors(&self.sentences);
            for (k, c) in self.chapters.iter().enumerate() {
                let end = self
                    .chapters
                    .get(k + 1)
                    .map_or(self.sentences.len(), |n| n.first);
                let members: Vec<usize> = (c.first..end).collect();
                let picked = rank::pick_sentences(&self.sentences, &vectors, &members, 90, 3);
                if picked.is_empty() {
                    continue;
                }
                let paragraph: Vec<&str> = picked.iter().map(|&i| self.said(i)).collect();
                md.push_str(&format!("\n## {}\n\n{}\n", c.title, paragraph.join(" ")));
            }
        }
        md.push_str("\n*Listen to the whole episode for more.*\n");
        md
    }

    /// One post per network, within its length, the link left as `{LINK}`.
    fn social(&self, title: &str) -> String {
        let hashtags: Vec<String> = self
            .keywords
            .iter()
            .take(3)
            .map(|k| {
                let tag: String = title_case(k)
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect();
                format!("#{tag}")
            })
            .collect();
        let lead = self.summary.first().map_or("", |&i| self.said(i));
        let topics: Vec<&str> = self.chapters.iter().map(|c| c.title.as_str()).collect();
        let mastodon = format!(
            "{} {{LINK}} {}",
            truncate(&format!("New episode: {title}. {lead}"), 380),
            hashtags.join(" ")
        );
        let bluesky = format!(
            "{} {{LINK}}",
            truncate(&format!("New episode: {title}. {lead}"), 260)
        );
        let linkedin = format!(
            "{}\n\nIn this episode: {}. Listen: {{LINK}}",
            truncate(&self.summary_text(), 600),
            topics.join(", ")
        );
        format!("## Mastodon\n{mastodon}\n\n## Bluesky\n{bluesky}\n\n## LinkedIn\n{linkedin}\n")
    }
}

/// "sourdough starter" → "Sourdough Starter" (short joining words stay lowercase).
fn title_case(phrase: &str) -> String {
    const SMALL: &[&str] = &[
        "a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to",
    ];
    phrase
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i > 0 && SMALL.contains(&w) {
                return w.to_owned();
            }
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_uppercase().collect::<String>() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
