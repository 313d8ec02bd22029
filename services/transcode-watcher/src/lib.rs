//! transcode-watcher: EpisodeUploaded → podcast-ready MP3 → EpisodeTranscoded (or
//! TranscodeFailed). The MP3 is keyed by the audio's hash and the encoding options, so the
//! same audio is never transcoded twice.

use std::sync::Arc;

use async_trait::async_trait;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MediaError, MessageHandler, Mp3Options, Outcome, StepStatus,
    StoreError, Transcoder, content,
    handling::{decode_delivery, retry_on_store_error},
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

enum Failure {
    Final(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl TranscodeHandler {
    async fn transcode(&self, up: &EpisodeUploaded) -> Result<(TranscodeResult, bool), Failure> {
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
        let input = self
            .blobs
            .local_path(&up.source)
            .ok_or_else(|| Failure::Final(format!("{} is not on this machine", up.source.key)))?;
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
                    Failure::Final(format!("{}: {why}", up.original_name))
                }
                MediaError::Tool(why) => Failure::Final(why),
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
        match self.transcode(&up).await {
            Err(Failure::Store(e)) => retry_on_store_error(delivery.attempt, &e),
            Err(Failure::Final(reason)) => {
                if let Err(e) = self
                    .store
                    .step_finished(&up.episode_id, STEP, StepStatus::Failed, Some(&reason))
                    .await
                {
                    return retry_on_store_error(delivery.attempt, &e);
                }
                Outcome::done(vec![EventEnvelope::wrap(&TranscodeFailed {
                    schema_version: SCHEMA_VERSION.into(),
                    episode_id: up.episode_id,
                    correlation_id: up.correlation_id,
                    reason,
                })])
            }
            Ok((r, reused)) => {
                let record = async {
                    self.store
                        .put_artifact(&up.episode_id, "audio", &r.audio)
                        .await?;
                    let note = reused.then_some("reused an earlier transcode of the same audio");
                    self.store
                        .step_finished(&up.episode_id, STEP, StepStatus::Done, note)
                        .await
                };
                if let Err(e) = record.await {
                    return retry_on_store_error(delivery.attempt, &e);
                }
                Outcome::done(vec![EventEnvelope::wrap(&EpisodeTranscoded {
                    schema_version: SCHEMA_VERSION.into(),
                    episode_id: up.episode_id,
                    correlation_id: up.correlation_id,
                    audio: r.audio,
                    duration_seconds: r.duration_seconds,
                    bitrate_kbps: r.bitrate_kbps,
                    reused,
                })])
            }
        }
    }
}
