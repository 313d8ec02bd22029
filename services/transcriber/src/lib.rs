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

/// Stores a transcript and its subtitles under the episode's folder.
pub async fn store_transcript(
    blobs: &dyn BlobStore,
    episode_id: &str,
    transcript: &Transcript,
) -> Result<(BlobRef, BlobRef, BlobRef), PortError> {
    let json = serde_json::to_vec_pretty(transcript)
        .map_err(|e| PortError::storage("serialising transcript", e))?;
    let dir = format!("episodes/{episode_id}");
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
        if let Some(result) = cached(
            self.store.as_ref(),
            self.blobs.as_ref(),
            &key,
            &up.episode_id,
        )
        .await?
        {
            return Ok((result, true));
        }
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
        Ok((result, false))
    }
}

/// The cache key of a transcription: the audio, the engine's fingerprint and the revision.
fn work_key(audio_sha256: &str, engine_fingerprint: &str) -> String {
    let params = format!("{engine_fingerprint}:r{TRANSCRIPT_REVISION}");
    content::work_key(STEP, audio_sha256, &params)
}

/// A finished transcription of the same audio, copied into this episode's folder.
async fn cached(
    store: &dyn EpisodeStore,
    blobs: &dyn BlobStore,
    key: &str,
    episode_id: &str,
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
    Ok(Some(relocate(blobs, result, episode_id).await?))
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
    let (t, srt, vtt) = store_transcript(blobs, &up.episode_id, transcript).await?;
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

/// Cached results may live under another episode's folder (same audio, other name):
/// copy them so every episode's folder is complete.
async fn relocate(
    blobs: &dyn BlobStore,
    mut r: TranscriptionResult,
    episode_id: &str,
) -> Result<TranscriptionResult, PortError> {
    let dir = format!("episodes/{episode_id}/");
    for blob in [&mut r.transcript, &mut r.srt, &mut r.vtt] {
        if !blob.key.starts_with(&dir) {
            let name = blob.key.rsplit('/').next().unwrap_or("file").to_owned();
            *blob = blobs.copy(blob, &format!("{dir}{name}")).await?;
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
