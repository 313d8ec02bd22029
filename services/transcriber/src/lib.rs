//! transcriber: EpisodeUploaded → transcript.json, subtitles.srt and subtitles.vtt →
//! EpisodeTranscribed (or TranscriptionFailed). The transcription is keyed by the audio's
//! hash and the model's, so the same audio is never transcribed twice.
//!
//! [`TranscriberHandler`] transcribes through the `SpeechToText` port (locally
//! `podflow_speech::engine::LocalEngine`); [`batch`] is the AWS path, one Amazon Transcribe
//! job per audio finished by Transcribe's state-change event.

pub mod batch;

use std::sync::Arc;

use async_trait::async_trait;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, PortError, SpeechToText, content,
    handling::{
        StepEnd, StepFailure, decode_delivery, end_step, give_up_step, intact, retry_on_store_error,
    },
    show::ShowLayers,
    subtitles,
    transcript::{Transcript, TranscriptView},
};
use podflow_events::{
    BlobRef, EpisodeTranscribed, EpisodeUploaded, EventEnvelope, SCHEMA_VERSION,
    TranscriptionFailed,
};
use serde::{Deserialize, Serialize};

pub const STEP: &str = "transcribe";
/// Part of the work key: bumped when what a transcription produces changes (2: speaker
/// labels), so transcripts cached by an older podflow are made again once, not reused.
const TRANSCRIPT_REVISION: u32 = 2;

/// What a transcription produced, as cached under its work key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TranscriptionResult {
    transcript: BlobRef,
    srt: BlobRef,
    vtt: BlobRef,
    duration_seconds: f64,
    language: String,
    engine: String,
    model: String,
    segment_count: u32,
}

/// The transcriber service's handler.
pub struct TranscriberHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub engine: Arc<dyn SpeechToText>,
    pub speakers: SpeakerNames,
}

/// Whose voices a transcript names: the names given for the episodes
/// (`--speakers "Ana,Ben"`, `PODFLOW_SPEAKERS`), else the show's hosts (`hosts` in
/// `podflow.toml`), in the order the voices are first heard. None: `Speaker 1`, `2`…
#[derive(Debug, Clone, Default)]
pub struct SpeakerNames {
    pub given: Vec<String>,
    pub show: ShowLayers,
}

impl SpeakerNames {
    async fn resolve(&self, blobs: &dyn BlobStore) -> Result<Vec<String>, PortError> {
        if !self.given.is_empty() {
            return Ok(self.given.clone());
        }
        let (show, problems) = self.show.resolve(blobs).await?;
        for problem in problems {
            tracing::warn!(%problem, "show configuration");
        }
        Ok(show.hosts.unwrap_or_default())
    }
}

/// The folder of an episode where the engine's labelled files (what the cache keeps under
/// `key`) stay — one per transcription, so another engine or model never overwrites what
/// an earlier cache entry points at. The episode's own transcript and subtitles are made
/// from them.
fn labelled_dir(episode_id: &str, key: &str) -> String {
    let id = content::sha256_hex(key.as_bytes());
    format!("episodes/{episode_id}/transcription/{}", &id[..12])
}

/// The episode's published transcript and subtitles: the engine's files copied, or, with
/// names (see [`SpeakerNames`]), rendered again with the speakers named. The cached files
/// are never changed, so naming never makes the audio be transcribed again.
async fn with_names(
    store: &dyn EpisodeStore,
    blobs: &dyn BlobStore,
    key: &str,
    episode_id: &str,
    result: TranscriptionResult,
    names: &[String],
) -> Result<TranscriptionResult, PortError> {
    let mut transcript = None;
    if !names.is_empty() {
        let mut read: Transcript = serde_json::from_slice(&blobs.get(&result.transcript).await?)
            .map_err(|e| PortError::storage(format!("reading {}", result.transcript.key), e))?;
        // No voices told apart: nothing to name.
        if !read.name_speakers(names).is_empty() {
            transcript = Some(read);
        }
    }
    let Some(transcript) = transcript else {
        return relocate(blobs, result, episode_id).await;
    };
    let dir = format!("episodes/{episode_id}");
    // A cache entry from before the labelled files had a folder of their own points at the
    // files about to be replaced: it moves to copies first.
    let published = format!("{dir}/transcript.json");
    let legacy = store
        .work_result(key)
        .await?
        .and_then(|v| serde_json::from_value::<TranscriptionResult>(v).ok())
        .filter(|c| c.transcript.key == published);
    if let Some(mut labelled) = legacy {
        for blob in [
            &mut labelled.transcript,
            &mut labelled.srt,
            &mut labelled.vtt,
        ] {
            let name = blob.key.rsplit('/').next().unwrap_or("file").to_owned();
            *blob = blobs
                .copy(blob, &format!("{}/{name}", labelled_dir(episode_id, key)))
                .await?;
        }
        let value =
            serde_json::to_value(&labelled).map_err(|e| PortError::storage("caching", e))?;
        store.record_work(key, episode_id, &value).await?;
    }
    let (t, srt, vtt) = store_transcript(blobs, &dir, &transcript).await?;
    Ok(TranscriptionResult {
        transcript: t,
        srt,
        vtt,
        ..result
    })
}

/// The formats `podflow transcribe` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TranscriptFormat {
    /// podflow's transcript.json (segments, speakers, word times).
    Json,
    Srt,
    Vtt,
    /// Running text, a paragraph per turn.
    Txt,
}

/// A transcript in one of the output formats.
pub fn render(
    transcript: &Transcript,
    format: TranscriptFormat,
) -> Result<String, serde_json::Error> {
    Ok(match format {
        TranscriptFormat::Json => serde_json::to_string_pretty(transcript)? + "\n",
        TranscriptFormat::Srt => subtitles::to_srt(&subtitles::build_cues_for(
            transcript,
            &subtitles::CueLayout::PODCAST_SRT,
        )),
        TranscriptFormat::Vtt => subtitles::to_vtt(&subtitles::build_cues(transcript)),
        TranscriptFormat::Txt => transcript.render(TranscriptView::Plain) + "\n",
    })
}

/// Stores a transcript and its subtitles in the folder `dir` (an episode's folder, or its
/// `transcription/` folder for the engine's labelled files).
pub async fn store_transcript(
    blobs: &dyn BlobStore,
    dir: &str,
    transcript: &Transcript,
) -> Result<(BlobRef, BlobRef, BlobRef), PortError> {
    let json = serde_json::to_vec_pretty(transcript)
        .map_err(|e| PortError::storage("serialising transcript", e))?;
    let t = blobs.put(&format!("{dir}/transcript.json"), json).await?;
    let srt = blobs
        .put(
            &format!("{dir}/subtitles.srt"),
            subtitles::to_srt(&subtitles::build_cues_for(
                transcript,
                &subtitles::CueLayout::PODCAST_SRT,
            ))
            .into_bytes(),
        )
        .await?;
    let vtt = blobs
        .put(
            &format!("{dir}/subtitles.vtt"),
            subtitles::to_vtt(&subtitles::build_cues(transcript)).into_bytes(),
        )
        .await?;
    Ok((t, srt, vtt))
}

impl TranscriberHandler {
    async fn transcribe(
        &self,
        up: &EpisodeUploaded,
    ) -> Result<(TranscriptionResult, bool), StepFailure> {
        // The engine is loaded before the key is built: the key needs the model's fingerprint.
        self.engine
            .prepare()
            .map_err(|e| StepFailure::Final(e.report()))?;
        let key = work_key(&up.source.sha256, self.engine.model_fingerprint());
        let names = self.speakers.resolve(self.blobs.as_ref()).await?;
        let (result, reused) = match cached(self.store.as_ref(), self.blobs.as_ref(), &key).await? {
            Some(result) => (result, true),
            None => {
                let path = self.blobs.local_path(&up.source).ok_or_else(|| {
                    StepFailure::Final(format!("{} is not on this machine", up.source.key))
                })?;
                let transcript = self
                    .engine
                    .transcribe(&path, up.duration_seconds)
                    .await
                    .map_err(|e| StepFailure::Final(e.report()))?;
                let result = keep(
                    self.store.as_ref(),
                    self.blobs.as_ref(),
                    &key,
                    up,
                    &transcript,
                )
                .await?;
                (result, false)
            }
        };
        let named = with_names(
            self.store.as_ref(),
            self.blobs.as_ref(),
            &key,
            &up.episode_id,
            result,
            &names,
        )
        .await?;
        Ok((named, reused))
    }
}

/// The cache key of a transcription: the audio, the engine's fingerprint and the revision.
fn work_key(audio_sha256: &str, engine_fingerprint: &str) -> String {
    let params = format!("{engine_fingerprint}:r{TRANSCRIPT_REVISION}");
    content::work_key(STEP, audio_sha256, &params)
}

/// A finished transcription of the same audio whose files are intact (maybe another
/// episode's: [`relocate`] copies them into this one's folder).
async fn cached(
    store: &dyn EpisodeStore,
    blobs: &dyn BlobStore,
    key: &str,
) -> Result<Option<TranscriptionResult>, PortError> {
    let Some(value) = store.work_result(key).await? else {
        return Ok(None);
    };
    let Ok(result) = serde_json::from_value::<TranscriptionResult>(value) else {
        return Ok(None);
    };
    for blob in [&result.transcript, &result.srt, &result.vtt] {
        if !intact(blobs, blob).await? {
            tracing::warn!(key, file = %blob.key, "the cached transcription's file is missing or damaged; transcribing again");
            return Ok(None);
        }
    }
    Ok(Some(result))
}

/// Stores a new transcript and its subtitles for `up`'s episode and caches the result
/// under `key`. A transcript without speech is the audio's fault.
async fn keep(
    store: &dyn EpisodeStore,
    blobs: &dyn BlobStore,
    key: &str,
    up: &EpisodeUploaded,
    transcript: &Transcript,
) -> Result<TranscriptionResult, StepFailure> {
    if transcript.segments.is_empty() {
        return Err(StepFailure::Final(format!(
            "no speech was recognised in {} ({:.1} s of audio)",
            up.original_name, transcript.duration_seconds
        )));
    }
    let labelled = labelled_dir(&up.episode_id, key);
    let (t, srt, vtt) = store_transcript(blobs, &labelled, transcript).await?;
    let result = TranscriptionResult {
        transcript: t,
        srt,
        vtt,
        duration_seconds: transcript.duration_seconds,
        language: transcript.language.clone(),
        engine: transcript.engine.clone(),
        model: transcript.model.clone(),
        segment_count: transcript.segments.len() as u32,
    };
    let value = serde_json::to_value(&result).map_err(|e| PortError::storage("caching", e))?;
    store.record_work(key, &up.episode_id, &value).await?;
    podflow_core::crash::point("transcribe.after_cache");
    Ok(result)
}

/// The engine's files (in a `transcription/` folder, maybe another episode's: same audio,
/// other name) copied to the episode's own `transcript.json`, `subtitles.srt` and
/// `subtitles.vtt`, so every episode's folder is complete.
async fn relocate(
    blobs: &dyn BlobStore,
    mut r: TranscriptionResult,
    episode_id: &str,
) -> Result<TranscriptionResult, PortError> {
    let dir = format!("episodes/{episode_id}/");
    for blob in [&mut r.transcript, &mut r.srt, &mut r.vtt] {
        let name = blob.key.rsplit('/').next().unwrap_or("file").to_owned();
        let published = format!("{dir}{name}");
        if blob.key != published {
            *blob = blobs.copy(blob, &published).await?;
        }
    }
    Ok(r)
}

pub(crate) fn transcription_failed(up: &EpisodeUploaded, reason: &str) -> EventEnvelope {
    EventEnvelope::wrap(&TranscriptionFailed {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: up.episode_id.clone(),
        correlation_id: up.correlation_id.clone(),
        reason: reason.to_owned(),
    })
}

/// Ends the step for one episode: `EpisodeTranscribed` or `TranscriptionFailed`.
async fn finish(
    store: &dyn EpisodeStore,
    up: &EpisodeUploaded,
    result: Result<(TranscriptionResult, bool), StepFailure>,
    notice: Option<String>,
    attempt: u32,
) -> Outcome {
    match result {
        Err(StepFailure::Store(e)) => retry_on_store_error(attempt, &e),
        Err(StepFailure::Final(reason)) => {
            end_step(
                store,
                &up.episode_id,
                STEP,
                StepEnd::Failed { reason: &reason },
                transcription_failed(up, &reason),
                attempt,
            )
            .await
        }
        Ok((r, reused)) => {
            let event = EventEnvelope::wrap(&EpisodeTranscribed {
                schema_version: SCHEMA_VERSION.into(),
                episode_id: up.episode_id.clone(),
                correlation_id: up.correlation_id.clone(),
                transcript: r.transcript.clone(),
                subtitles_srt: r.srt.clone(),
                subtitles_vtt: r.vtt.clone(),
                duration_seconds: r.duration_seconds,
                language: r.language.clone(),
                engine: r.engine.clone(),
                model: r.model.clone(),
                segment_count: r.segment_count,
                reused,
            });
            let artifacts = vec![
                ("transcript", &r.transcript),
                ("subtitles_srt", &r.srt),
                ("subtitles_vtt", &r.vtt),
            ];
            let mut notes: Vec<&str> = Vec::new();
            if reused {
                notes.push("reused an earlier transcription of the same audio");
            }
            if let Some(notice) = notice.as_deref() {
                notes.push(notice);
            }
            let joined = notes.join("; ");
            let note = (!joined.is_empty()).then_some(joined.as_str());
            end_step(
                store,
                &up.episode_id,
                STEP,
                StepEnd::Done { artifacts, note },
                event,
                attempt,
            )
            .await
        }
    }
}

#[async_trait]
impl MessageHandler for TranscriberHandler {
    fn name(&self) -> &'static str {
        "transcriber"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let (_, up) = match decode_delivery::<EpisodeUploaded>(delivery) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        if let Err(e) = self.store.step_started(&up.episode_id, STEP).await {
            return retry_on_store_error(delivery.attempt, &e);
        }
        let result = self.transcribe(&up).await;
        let notice = self.engine.notice();
        finish(self.store.as_ref(), &up, result, notice, delivery.attempt).await
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        give_up_step(
            self.store.as_ref(),
            delivery,
            STEP,
            reason,
            Some(transcription_failed),
        )
        .await
    }
}
