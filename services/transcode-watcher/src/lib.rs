//! transcode-watcher: EpisodeUploaded → podcast-ready MP3 → EpisodeTranscoded (or
//! TranscodeFailed). The MP3 is keyed by the audio's hash and the encoding options, so the
//! same audio is never transcoded twice.

use std::sync::Arc;

use async_trait::async_trait;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MediaError, MessageHandler, Mp3Options, Outcome, StoreError,
    Transcoder, content,
    handling::{StepEnd, StepFailure, decode_delivery, end_step, retry_on_store_error},
};
use podflow_events::{
    BlobRef, EpisodeTranscoded, EpisodeUploaded, EventEnvelope, SCHEMA_VERSION, TranscodeFailed,
};
use serde::{Deserialize, Serialize};

pub const STEP: &str = "transcode";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TranscodeResult {
    audio: BlobRef,
    duration_seconds: f64,
    bitrate_kbps: u32,
}

/// The transcode-watcher service's handler.
pub struct TranscodeHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub transcoder: Arc<dyn Transcoder>,
    pub bitrate_kbps: u32,
}

impl TranscodeHandler {
    async fn transcode(
        &self,
        up: &EpisodeUploaded,
    ) -> Result<(TranscodeResult, bool), StepFailure> {
        let key = content::work_key(
            STEP,
            &up.source.sha256,
            &format!("mp3-{}k-loudnorm", self.bitrate_kbps),
        );
        let target = format!("episodes/{}/audio.mp3", up.episode_id);
        if let Some(cached) = self.store.work_result(&key).await?
            && let Ok(mut r) = serde_json::from_value::<TranscodeResult>(cached)
        {
            if r.audio.key != target {
                let bytes = self.blobs.get(&r.audio).await?;
                r.audio = self.blobs.put(&target, bytes).await?;
            }
            return Ok((r, true));
        }
        let input = self.blobs.local_path(&up.source).ok_or_else(|| {
            StepFailure::Final(format!("{} is not on this machine", up.source.key))
        })?;
        let scratch = self.blobs.scratch_path("audio.mp3");
        let title = up
            .original_name
            .rsplit_once('.')
            .map_or(up.original_name.as_str(), |(stem, _)| stem)
            .to_owned();
        let options = Mp3Options {
            bitrate_kbps: self.bitrate_kbps,
            title,
        };
        let info = self
            .transcoder
            .to_mp3(&input, &scratch, &options)
            .await
            .map_err(|e| match e {
                MediaError::Unreadable(why) => {
                    StepFailure::Final(format!("{}: {why}", up.original_name))
                }
                MediaError::Tool(why) => StepFailure::Final(why),
            })?;
        let audio = self.blobs.put_file(&target, &scratch).await?;
        let result = TranscodeResult {
            audio,
            duration_seconds: info.duration_seconds,
            bitrate_kbps: self.bitrate_kbps,
        };
        let value = serde_json::to_value(&result).map_err(|e| StoreError::new("caching", e))?;
        self.store.record_work(&key, &up.episode_id, &value).await?;
        Ok((result, false))
    }
}

#[async_trait]
impl MessageHandler for TranscodeHandler {
    fn name(&self) -> &'static str {
        "transcode-watcher"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let (_, up) = match decode_delivery::<EpisodeUploaded>(delivery) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        if let Err(e) = self.store.step_started(&up.episode_id, STEP).await {
            return retry_on_store_error(delivery.attempt, &e);
        }
        let attempt = delivery.attempt;
        match self.transcode(&up).await {
            Err(StepFailure::Store(e)) => retry_on_store_error(attempt, &e),
            Err(StepFailure::Final(reason)) => {
                let event = EventEnvelope::wrap(&TranscodeFailed {
                    schema_version: SCHEMA_VERSION.into(),
                    episode_id: up.episode_id.clone(),
                    correlation_id: up.correlation_id.clone(),
                    reason: reason.clone(),
                });
                end_step(
                    self.store.as_ref(),
                    &up.episode_id,
                    STEP,
                    StepEnd::Failed { reason: &reason },
                    event,
                    attempt,
                )
                .await
            }
            Ok((r, reused)) => {
                let event = EventEnvelope::wrap(&EpisodeTranscoded {
                    schema_version: SCHEMA_VERSION.into(),
                    episode_id: up.episode_id.clone(),
                    correlation_id: up.correlation_id.clone(),
                    audio: r.audio.clone(),
                    duration_seconds: r.duration_seconds,
                    bitrate_kbps: r.bitrate_kbps,
                    reused,
                });
                let note = reused.then_some("reused an earlier transcode of the same audio");
                end_step(
                    self.store.as_ref(),
                    &up.episode_id,
                    STEP,
                    StepEnd::Done {
                        artifacts: vec![("audio", &r.audio)],
                        note,
                    },
                    event,
                    attempt,
                )
                .await
            }
        }
    }
}
