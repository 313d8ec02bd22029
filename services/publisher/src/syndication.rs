//! What podcast apps read, made at each publish: the show's configuration from the store,
//! the tagged MP3 (`episode.mp3`), the Podcasting 2.0 JSON transcript, the episode's feed
//! item and then `feed.xml` for the whole show.

use std::collections::BTreeMap;

use podflow_core::{
    BlobStore, EpisodeStore, ErrorKind, PortError,
    content::{sha256_hex, work_key},
    handling::intact,
    show::ShowConfig,
    transcript::Transcript,
};
use podflow_events::{BlobRef, EpisodeSummarized};

use crate::{
    PublishHandler,
    documents::{Chapter, Clip},
    feed::{self, FeedFile, FeedItem, FeedTranscript, Soundbite},
    tags::{self, Artwork, EpisodeTags},
};

/// The published MP3, tagged; `audio.mp3` stays as transcoded (its hash is the cache's key).
pub const TAGGED_MP3: &str = "episode.mp3";
/// The Podcasting 2.0 JSON transcript.
pub const PODCAST_TRANSCRIPT: &str = "podcast-transcript.json";

/// The parts of an episode its feed item and tags are made from.
pub struct EpisodeParts<'a> {
    pub title: &'a str,
    pub description: String,
    pub transcript: Option<&'a Transcript>,
    pub chapters: &'a [Chapter],
    pub clips: &'a [Clip],
    pub keywords: Option<&'a str>,
    /// `chapters.json`, when made.
    pub chapters_file: Option<&'a BlobRef>,
}

/// Writes the JSON transcript, the tagged MP3 and the feed item; adds the files it made to
/// `files`.
pub async fn make_episode_files(
    handler: &PublishHandler,
    show: &ShowConfig,
    summary: &EpisodeSummarized,
    parts: &EpisodeParts<'_>,
    files: &mut BTreeMap<String, BlobRef>,
    problems: &mut Vec<String>,
) -> Result<(), PortError> {
    let blobs = handler.blobs.as_ref();
    let episode_id = summary.episode_id.as_str();
    let dir = format!("episodes/{episode_id}");
    if let Some(transcript) = parts.transcript {
        let blob = blobs
            .put(
                &format!("{dir}/{PODCAST_TRANSCRIPT}"),
                transcript.to_podcast_json().into_bytes(),
            )
            .await?;
        files.insert(PODCAST_TRANSCRIPT.into(), blob);
    }
    let Some(record) = handler.store.episode(episode_id).await? else {
        return Ok(());
    };
    let number = episode_number(handler.store.as_ref(), episode_id).await?;
    let show_title = show.title.clone().unwrap_or_else(|| "Podcast".into());
    let duration = parts.transcript.map_or(0.0, |t| t.duration_seconds);
    let Some(audio) = &summary.audio else {
        return Ok(());
    };
    let artwork = artwork(blobs, show, problems).await?;
    let episode_tags = EpisodeTags {
        title: parts.title,
        show: &show_title,
        author: show.author.as_deref(),
        episode: number,
        published_ms: record.created_at_ms,
        duration_seconds: duration,
        chapters: parts.chapters,
        artwork,
    };
    let tagged = match tagged_mp3(handler, episode_id, audio, &episode_tags).await {
        Ok(tagged) => {
            files.insert(TAGGED_MP3.into(), tagged.clone());
            tagged
        }
        // The feed carries the untagged MP3 rather than nothing.
        Err(e) if e.kind() == ErrorKind::Input => {
            problems.push(format!("{TAGGED_MP3} not made: {}", e.report()));
            audio.clone()
        }
        Err(e) => return Err(e),
    };

    let mut transcripts = Vec::new();
    for (blob, mime_type) in [
        (summary.subtitles_vtt.as_ref(), "text/vtt"),
        (summary.subtitles_srt.as_ref(), "application/x-subrip"),
        (files.get(PODCAST_TRANSCRIPT), "application/json"),
    ] {
        if let Some(blob) = blob {
            transcripts.push(FeedTranscript {
                key: blob.key.clone(),
                mime_type: mime_type.into(),
            });
        }
    }
    let speakers = parts.transcript.map(named_speakers).unwrap_or_default();
    let item = FeedItem {
        episode_id: episode_id.to_owned(),
        number,
        title: parts.title.to_owned(),
        description: parts.description.clone(),
        published_ms: record.created_at_ms,
        duration_seconds: duration,
        audio: FeedFile {
            key: tagged.key.clone(),
            bytes: tagged.size,
        },
        language: parts.transcript.map(|t| t.language.clone()),
        transcripts,
        chapters: parts.chapters_file.map(|b| b.key.clone()),
        soundbites: parts
            .clips
            .iter()
            .filter_map(|c| Soundbite::of_clip(c.start, c.end, &c.hook))
            .collect(),
        persons: feed::persons(&show.hosts.clone().unwrap_or_default(), &speakers),
        keywords: parts.keywords.map(keyword_list),
    };
    let body = serde_json::to_vec_pretty(&item).map_err(|e| PortError::storage("feed item", e))?;
    blobs.put(&feed::item_key(episode_id), body).await?;
    Ok(())
}

/// Rebuilds `feed.xml` from every episode's feed item. Returns why it was not written, if
/// it was not (no base URL).
pub async fn rebuild_feed(
    handler: &PublishHandler,
    show: &ShowConfig,
) -> Result<Option<String>, PortError> {
    // Two episodes published at once each rebuild the feed from the items they see; the
    // one that writes last may have read before the other's item existed. So the items
    // are read again after writing, and the feed rebuilt while they changed meanwhile.
    let mut seen = read_items(handler).await?;
    for _ in 0..FEED_REBUILDS {
        let items: Vec<FeedItem> = seen.iter().map(|(_, item)| item.clone()).collect();
        let xml = match feed::render(show, &items) {
            Ok(xml) => xml,
            Err(e) => return Ok(Some(e.to_string())),
        };
        handler.blobs.put(feed::FEED_KEY, xml.into_bytes()).await?;
        let now = read_items(handler).await?;
        if now
            .iter()
            .map(|(sha, _)| sha)
            .eq(seen.iter().map(|(sha, _)| sha))
        {
            break;
        }
        seen = now;
    }
    Ok(None)
}

/// Rebuilds of the feed one publish makes at most while items keep changing under it.
const FEED_REBUILDS: usize = 3;

/// Every published episode's feed item, with the SHA-256 of its file.
async fn read_items(handler: &PublishHandler) -> Result<Vec<(String, FeedItem)>, PortError> {
    let blobs = handler.blobs.as_ref();
    let mut items = Vec::new();
    for episode in handler.store.episodes().await? {
        let key = feed::item_key(&episode.episode_id);
        let blob = match blobs.digest(&key).await {
            Ok(blob) => blob,
            // Not published yet.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<FeedItem>(&blobs.get(&blob).await?) {
            Ok(item) => items.push((blob.sha256, item)),
            Err(e) => {
                tracing::warn!(key, error = %e, "feed item unreadable; left out of the feed until its episode is published again")
            }
        }
    }
    Ok(items)
}

/// The episode's place in the show by upload time, from 1.
async fn episode_number(store: &dyn EpisodeStore, episode_id: &str) -> Result<u32, PortError> {
    let mut episodes = store.episodes().await?;
    episodes
        .sort_by(|a, b| (a.created_at_ms, &a.episode_id).cmp(&(b.created_at_ms, &b.episode_id)));
    let place = episodes
        .iter()
        .position(|e| e.episode_id == episode_id)
        .unwrap_or(episodes.len());
    Ok(u32::try_from(place + 1).unwrap_or(u32::MAX))
}

/// The show's artwork for the MP3, when it is a stored JPEG or PNG.
async fn artwork(
    blobs: &dyn BlobStore,
    show: &ShowConfig,
    problems: &mut Vec<String>,
) -> Result<Option<Artwork>, PortError> {
    let Some(key) = show.artwork.as_deref() else {
        return Ok(None);
    };
    if key.starts_with("https://") || key.starts_with("http://") {
        // A remote image goes in the feed; the MP3 embeds only stored ones.
        return Ok(None);
    }
    let blob = match blobs.digest(key).await {
        Ok(blob) => blob,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            problems.push(format!(
                "artwork {key} not found: put the image there (under the data directory, or under show/ in the bucket)"
            ));
            return Ok(None);
        }
        Err(e) if e.kind() == ErrorKind::Setup => {
            problems.push(format!("artwork {key} not read: {}", e.report()));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let found = Artwork::sniff(blobs.get(&blob).await?);
    if found.is_none() {
        problems.push(format!(
            "artwork {key} is not a JPEG or PNG: left out of the MP3"
        ));
    }
    Ok(found)
}

/// `audio.mp3` with the episode's tag, as `episode.mp3`; made once per audio and tag.
async fn tagged_mp3(
    handler: &PublishHandler,
    episode_id: &str,
    audio: &BlobRef,
    episode_tags: &EpisodeTags<'_>,
) -> Result<BlobRef, PortError> {
    let blobs = handler.blobs.as_ref();
    let tag = tags::tag(episode_tags);
    let fingerprint = sha256_hex(format!("{episode_tags:?}").as_bytes());
    let key = work_key("tags", &audio.sha256, &fingerprint[..16]);
    if let Some(cached) = handler.store.work_result(&key).await?
        && let Ok(blob) = serde_json::from_value::<BlobRef>(cached)
        && blob.key.starts_with(&format!("episodes/{episode_id}/"))
        && intact(blobs, &blob).await?
    {
        return Ok(blob);
    }
    let scratch = blobs.scratch_path(&format!("{episode_id}-{TAGGED_MP3}"));
    if let Some(dir) = scratch.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| PortError::storage(format!("creating {}", dir.display()), e))?;
    }
    match blobs.local_path(audio) {
        Some(path) => {
            tokio::fs::copy(&path, &scratch).await.map_err(|e| {
                PortError::storage(
                    format!("copying {} to {}", path.display(), scratch.display()),
                    e,
                )
            })?;
        }
        None => {
            let bytes = blobs.get(audio).await?;
            tokio::fs::write(&scratch, bytes)
                .await
                .map_err(|e| PortError::storage(format!("writing {}", scratch.display()), e))?;
        }
    }
    let path = scratch.clone();
    let written = tokio::task::spawn_blocking(move || tags::write(&path, &tag))
        .await
        .map_err(|e| PortError::storage("tagging the MP3", e))?;
    let stored = match written {
        Ok(()) => {
            podflow_media::store_file(
                blobs,
                &format!("episodes/{episode_id}/{TAGGED_MP3}"),
                &scratch,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&scratch).await;
    let blob = stored?;
    let value = serde_json::to_value(&blob).map_err(|e| PortError::storage("tag cache", e))?;
    handler.store.record_work(&key, episode_id, &value).await?;
    Ok(blob)
}

/// The speakers the transcript names (not the engine's `spk_N` labels), in order.
fn named_speakers(transcript: &Transcript) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for seg in &transcript.segments {
        if let Some(label) = &seg.speaker
            && podflow_core::transcript::speaker_name(label) == *label
            && !names.contains(label)
        {
            names.push(label.clone());
        }
    }
    names
}

/// Keywords as iTunes wants them: comma-separated, one line.
fn keyword_list(answer: &str) -> String {
    let words: Vec<&str> = answer
        .split([',', '\n'])
        .map(|w| w.trim().trim_start_matches(['-', '*', '•']).trim())
        .filter(|w| !w.is_empty())
        .collect();
    words.join(", ")
}
