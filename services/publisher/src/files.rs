//! Makes an episode's files from what is available when it is summarized. Every part is
//! optional: a failed prompt only leaves its own file (or section) out, and a bad answer
//! is noted, never fatal.

use std::collections::BTreeMap;

use podflow_core::{
    BlobStore, ErrorKind, PortError, TextEngine,
    content::{sha256_hex, work_key},
    show::ShowConfig,
    subtitles,
    transcript::Transcript,
};
use podflow_events::{BlobRef, EpisodeSummarized, PromptOutput, PublishedFile};
use serde::{Deserialize, Serialize};

use crate::{
    PublishHandler, cost,
    documents::{self, Chapter, ChaptersDocument, Clip, ShowNotesParts, SkippedClip},
    extractive::{self, Extract},
    syndication::{self, EpisodeParts},
};

/// Clips that go into the trailer, and the most of each that is used.
const TRAILER_CLIPS: usize = 3;
const TRAILER_PART_SECONDS: f64 = 15.0;
const FADE_SECONDS: f64 = 0.5;

/// What making the files found wrong (for the step note and the logs).
#[derive(Debug, Default)]
pub struct Made {
    pub problems: Vec<String>,
    /// The suggested titles, best first (what a person chooses from).
    pub titles: Vec<String>,
    /// The summary's text, when there is one.
    pub summary: Option<String>,
    pub chapters: Vec<Chapter>,
}

pub use podflow_core::approval::Edits;

/// Whether the episode goes to podcast apps now (tagged MP3, feed item) or is a draft
/// waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Draft,
    Publish,
}

/// `clips.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClipsDocument {
    /// `llm`, or `extractive` when the built-in engine chose the clips.
    #[serde(default)]
    pub engine: String,
    pub clips: Vec<ClipEntry>,
    pub skipped: Vec<SkippedClip>,
    /// `trailer.mp3` when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailer: Option<String>,
}

/// One clip in `clips.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClipEntry {
    #[serde(flatten)]
    pub clip: Clip,
    /// `clips/<n>.mp3`, absent if it could not be cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitles: Option<String>,
}

/// Cut media, cached by the audio and the clip plan so it is never cut twice.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CutMedia {
    files: BTreeMap<String, BlobRef>,
    problems: Vec<String>,
}

/// Makes the files, adds them to `summary.files` and sets `summary.cost`.
pub async fn make(
    handler: &PublishHandler,
    summary: &mut EpisodeSummarized,
    show: &ShowConfig,
    edits: Option<&Edits>,
    stage: Stage,
) -> Result<Made, PortError> {
    let mut made = Made::default();
    let blobs = handler.blobs.as_ref();
    let episode_id = summary.episode_id.clone();
    // A draft never replaces what is published: it has a folder of its own.
    let dir = match stage {
        Stage::Publish => format!("episodes/{episode_id}"),
        Stage::Draft => format!("episodes/{episode_id}/draft"),
    };
    let transcript: Option<Transcript> = match &summary.transcript {
        Some(t) => Some(
            serde_json::from_slice(&blobs.get(t).await?)
                .map_err(|e| PortError::storage(format!("reading {}", t.key), e))?,
        ),
        None => None,
    };
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for out in &summary.outputs {
        let text = String::from_utf8_lossy(&blobs.get(&out.output).await?).into_owned();
        texts.insert(out.prompt_id.clone(), text);
    }
    // The outputs the extractive engine writes: every one without an LLM, those whose
    // prompt failed with one.
    let fill: Vec<&str> = match handler.text_engine {
        TextEngine::Llm => Vec::new(),
        TextEngine::Extractive => extractive::OUTPUTS.to_vec(),
        TextEngine::Auto => extractive::OUTPUTS
            .iter()
            .copied()
            .filter(|o| summary.failed_prompts.iter().any(|p| p.prompt_id == *o))
            .collect(),
    };
    let fill: Vec<&str> = fill
        .into_iter()
        .filter(|o| !texts.contains_key(*o))
        .collect();
    let found = match (&transcript, fill.is_empty()) {
        (Some(t), false) => Some(Extract::of(t)),
        _ => None,
    };
    let record = handler.store.episode(&episode_id).await?;
    let name = record.map_or_else(|| episode_id.clone(), |r| r.original_name);
    // The first suggested title, else the file's name.
    let title_from = |texts: &BTreeMap<String, String>| {
        texts
            .get("titles")
            .and_then(|t| documents::titles(t).into_iter().next())
            .unwrap_or_else(|| name.clone())
    };
    // The outputs the extractive engine wrote.
    let mut extracted: Vec<&str> = Vec::new();
    if let Some(found) = &found {
        // Titles first: the blog post and the social posts name the episode.
        for output in fill
            .iter()
            .filter(|o| **o == "titles")
            .chain(fill.iter().filter(|o| **o != "titles"))
        {
            let Some(answer) = found.answer(output, &title_from(&texts)) else {
                continue;
            };
            let extension = if matches!(*output, "chapters" | "clips") {
                "json"
            } else {
                "md"
            };
            let blob = blobs
                .put(
                    &format!("{dir}/extractive/{output}.{extension}"),
                    answer.clone().into_bytes(),
                )
                .await?;
            summary.outputs.push(PromptOutput {
                prompt_id: (*output).to_owned(),
                prompt_version: extractive::VERSION,
                model: extractive::ENGINE.to_owned(),
                output: blob,
            });
            texts.insert((*output).to_owned(), answer);
            extracted.push(output);
        }
    }
    let engine_of = |output: &str| {
        if extracted.contains(&output) {
            extractive::ENGINE
        } else {
            "llm"
        }
    };
    made.titles = texts
        .get("titles")
        .map(|t| documents::titles(t))
        .unwrap_or_default();
    if let Some(summary) = edits.and_then(|e| e.summary.as_ref()) {
        texts.insert("summary".into(), summary.clone());
    }
    made.summary = texts.get("summary").map(|s| s.trim().to_owned());
    let title = edits.map_or_else(|| title_from(&texts), |e| e.title.clone());
    let duration = transcript.as_ref().map(|t| t.duration_seconds);
    let mut files: BTreeMap<String, BlobRef> = BTreeMap::new();
    let mut docs: Vec<(String, Vec<u8>)> = Vec::new();

    let mut chapters = Vec::new();
    let mut planned_clips = Vec::new();
    if let (Some(answer), Some(duration)) = (texts.get("chapters"), duration) {
        match documents::parse_chapters(answer, duration) {
            Ok((parsed, dropped)) => {
                if !dropped.is_empty() {
                    made.problems.push(format!(
                        "chapters: {} dropped ({})",
                        dropped.len(),
                        dropped.join("; ")
                    ));
                }
                let doc = ChaptersDocument {
                    version: "1.2.0",
                    title: title.clone(),
                    chapters: parsed.clone(),
                    engine: engine_of("chapters"),
                };
                docs.push(("chapters.json".into(), to_json(&doc)?));
                made.chapters.clone_from(&parsed);
                chapters = parsed;
            }
            Err(e) => made.problems.push(podflow_core::report(&e)),
        }
    }

    if let (Some(answer), Some(transcript), Some(audio)) = (
        texts.get("clips"),
        transcript.as_ref(),
        summary.audio.as_ref(),
    ) {
        match documents::plan_clips(answer, transcript.duration_seconds) {
            Ok((clips, skipped)) => {
                // A draft lists the clips; they are cut when the episode is published.
                let media = match stage {
                    Stage::Publish => {
                        cut_media(handler, &episode_id, audio, transcript, &clips).await?
                    }
                    Stage::Draft => CutMedia::default(),
                };
                made.problems.extend(media.problems.iter().cloned());
                if !skipped.is_empty() {
                    made.problems
                        .push(format!("clips: {} suggestion(s) skipped", skipped.len()));
                }
                planned_clips.clone_from(&clips);
                let entries = clips
                    .into_iter()
                    .map(|clip| {
                        let audio = format!("clips/{}.mp3", clip.n);
                        let srt = format!("clips/{}.srt", clip.n);
                        ClipEntry {
                            audio: media.files.contains_key(&audio).then_some(audio),
                            subtitles: media.files.contains_key(&srt).then_some(srt),
                            clip,
                        }
                    })
                    .collect();
                let doc = ClipsDocument {
                    engine: engine_of("clips").to_owned(),
                    clips: entries,
                    skipped,
                    trailer: media
                        .files
                        .contains_key("trailer.mp3")
                        .then(|| "trailer.mp3".into()),
                };
                docs.push(("clips.json".into(), to_json(&doc)?));
                files.extend(media.files);
            }
            Err(e) => made.problems.push(podflow_core::report(&e)),
        }
    }

    if let Some(article) = texts.get("blog-post") {
        let md = front_matter(&["titles", "blog-post"], &texts, &extracted)
            + &documents::blog_post(&title, article);
        docs.push(("blog-post.md".into(), md.into_bytes()));
    }
    if let Some(posts) = texts.get("social") {
        let md = format!(
            "{}# Social posts — {title}\n\n{}\n",
            front_matter(&["titles", "social"], &texts, &extracted),
            posts.trim()
        );
        docs.push(("social.md".into(), md.into_bytes()));
    }
    let mut links: Vec<(String, String)> = Vec::new();
    let mut link = |label: &str, name: &str| links.push((label.to_owned(), name.to_owned()));
    if summary.audio.is_some() {
        link("Audio (MP3)", "audio.mp3");
    }
    if summary.transcript.is_some() {
        link("Transcript", "transcript.json");
    }
    if summary.subtitles_srt.is_some() {
        link("Subtitles (SRT)", "subtitles.srt");
    }
    if summary.subtitles_vtt.is_some() {
        link("Subtitles (WebVTT)", "subtitles.vtt");
    }
    for (name, label) in [
        ("chapters.json", "Chapters (Podcasting 2.0)"),
        ("blog-post.md", "Blog post"),
        ("social.md", "Social posts"),
        ("clips.json", "Clips"),
    ] {
        if docs.iter().any(|(n, _)| n == name) {
            link(label, name);
        }
    }
    if files.contains_key("trailer.mp3") {
        link("Trailer", "trailer.mp3");
    }
    let notes = ShowNotesParts {
        title: &title,
        summary: texts.get("summary").map(String::as_str),
        chapters: &chapters,
        notes: texts.get("show-notes").map(String::as_str),
        keywords: texts.get("keywords").map(String::as_str),
        links: &links,
    };
    let parts = ["titles", "summary", "chapters", "show-notes", "keywords"];
    let md = front_matter(&parts, &texts, &extracted) + &documents::show_notes(&notes);
    docs.push(("show-notes.md".into(), md.into_bytes()));
    // The feed's description: the show notes without their heading and the relative links.
    let description = documents::show_notes(&ShowNotesParts {
        links: &[],
        ..notes
    });
    let description = description
        .split_once('\n')
        .map_or("", |(_, rest)| rest)
        .trim()
        .to_owned();

    for (name, bytes) in docs {
        let blob = blobs.put(&format!("{dir}/{name}"), bytes).await?;
        files.insert(name, blob);
    }
    let chapters_file = files.get("chapters.json").cloned();
    let episode = EpisodeParts {
        title: &title,
        description,
        transcript: transcript.as_ref(),
        chapters: &chapters,
        clips: &planned_clips,
        keywords: texts.get("keywords").map(String::as_str),
        chapters_file: chapters_file.as_ref(),
    };
    if stage == Stage::Publish {
        syndication::make_episode_files(
            handler,
            show,
            summary,
            &episode,
            &mut files,
            &mut made.problems,
        )
        .await?;
    }
    summary.files = files
        .into_iter()
        .map(|(name, file)| PublishedFile { name, file })
        .collect();

    let prompts = handler.store.prompts(&episode_id).await?;
    let engine = transcript.as_ref().map_or("none", |t| t.engine.as_str());
    summary.cost = Some(cost::estimate(
        &handler.prices,
        duration.unwrap_or(0.0),
        engine,
        &prompts,
    ));
    Ok(made)
}

/// YAML front matter saying which engine wrote a Markdown file made of those of `parts`
/// that exist: `extractive`, `llm`, or `mixed` with the extractive parts listed; none when
/// no part exists (the file holds only links).
fn front_matter(parts: &[&str], texts: &BTreeMap<String, String>, extracted: &[&str]) -> String {
    let parts: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| texts.contains_key(*p))
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    let from_extractive: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| extracted.contains(p))
        .collect();
    let engine = if from_extractive.is_empty() {
        "llm"
    } else if from_extractive.len() == parts.len() {
        extractive::ENGINE
    } else {
        "mixed"
    };
    let mut yaml = format!("---\nengine: {engine}\n");
    if engine == "mixed" {
        yaml.push_str(&format!("extractive: [{}]\n", from_extractive.join(", ")));
    }
    yaml.push_str("---\n");
    yaml
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, PortError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| PortError::storage("serialising", e))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Cuts each clip (with its subtitle slice) and the trailer, or reuses an earlier cut of
/// the same audio and plan. A clip ffmpeg cannot cut is noted and left out. A cut that
/// failed for want of ffmpeg (not for the audio) is not remembered, so the next revision
/// after ffmpeg is installed cuts the clips.
async fn cut_media(
    handler: &PublishHandler,
    episode_id: &str,
    audio: &BlobRef,
    transcript: &Transcript,
    clips: &[Clip],
) -> Result<CutMedia, PortError> {
    if clips.is_empty() {
        return Ok(CutMedia::default());
    }
    let plan = serde_json::to_string(clips).map_err(|e| PortError::storage("clip plan", e))?;
    let key = work_key("clips", &audio.sha256, &sha256_hex(plan.as_bytes())[..16]);
    if let Some(cached) = handler.store.work_result(&key).await?
        && let Ok(media) = serde_json::from_value::<CutMedia>(cached)
    {
        return Ok(media);
    }
    let blobs: &dyn BlobStore = handler.blobs.as_ref();
    let (source, downloaded) = match blobs.local_path(audio) {
        Some(path) => (path, false),
        None => {
            let path = blobs.scratch_path("episode.mp3");
            let bytes = blobs.get(audio).await?;
            tokio::fs::write(&path, bytes)
                .await
                .map_err(|e| PortError::storage(format!("writing {}", path.display()), e))?;
            (path, true)
        }
    };
    let mut media = CutMedia::default();
    let mut setup_failed = false;
    let mut note = |problems: &mut Vec<String>, what: String, e: PortError| {
        setup_failed |= e.kind() == ErrorKind::Setup;
        problems.push(format!("{what}: {}", e.report()));
    };
    let mut trailer_parts = Vec::new();
    for clip in clips {
        let name = format!("clips/{}.mp3", clip.n);
        let scratch = blobs.scratch_path(&format!("clip-{}.mp3", clip.n));
        match handler
            .clips
            .cut(&source, clip.start, clip.end, FADE_SECONDS, &scratch)
            .await
        {
            Ok(_) => {
                let blob = podflow_media::store_file(
                    blobs,
                    &format!("episodes/{episode_id}/{name}"),
                    &scratch,
                )
                .await?;
                media.files.insert(name, blob);
            }
            Err(e) => {
                note(&mut media.problems, format!("clip {} not cut", clip.n), e);
                continue;
            }
        }
        let cues = documents::clip_cues(transcript, clip.start, clip.end);
        let srt_name = format!("clips/{}.srt", clip.n);
        let blob = blobs
            .put(
                &format!("episodes/{episode_id}/{srt_name}"),
                subtitles::to_srt(&cues).into_bytes(),
            )
            .await?;
        media.files.insert(srt_name, blob);
        if trailer_parts.len() < TRAILER_CLIPS {
            let part = blobs.scratch_path(&format!("trailer-part-{}.mp3", clip.n));
            let end = clip.end.min(clip.start + TRAILER_PART_SECONDS);
            match handler
                .clips
                .cut(&source, clip.start, end, FADE_SECONDS, &part)
                .await
            {
                Ok(_) => trailer_parts.push(part),
                Err(e) => note(
                    &mut media.problems,
                    format!("trailer part {} not cut", clip.n),
                    e,
                ),
            }
        }
    }
    if !trailer_parts.is_empty() {
        let scratch = blobs.scratch_path("trailer.mp3");
        match handler.clips.join(&trailer_parts, &scratch).await {
            Ok(_) => {
                let blob = podflow_media::store_file(
                    blobs,
                    &format!("episodes/{episode_id}/trailer.mp3"),
                    &scratch,
                )
                .await?;
                media.files.insert("trailer.mp3".into(), blob);
            }
            Err(e) => note(&mut media.problems, "trailer not made".into(), e),
        }
        for part in trailer_parts {
            let _ = tokio::fs::remove_file(part).await;
        }
    }
    if downloaded {
        let _ = tokio::fs::remove_file(&source).await;
    }
    if !setup_failed {
        let value =
            serde_json::to_value(&media).map_err(|e| PortError::storage("clip cache", e))?;
        handler.store.record_work(&key, episode_id, &value).await?;
    }
    Ok(media)
}
