//! transcode-watcher: EpisodeUploaded → podcast-ready MP3 → EpisodeTranscoded (or
//! TranscodeFailed). The MP3 is keyed by the audio's hash and the encoding options, so the
//! same audio is never transcoded twice.

pub mod mediaconvert;

use std::sync::Arc;

use async_trait::async_trait;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, ErrorKind, MessageHandler, Mp3Options, Outcome, PortError,
    Transcoder, content,
    handling::{
        StepEnd, StepFailure, decode_delivery, end_step, give_up_step, intact, retry_on_store_error,
    },
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
        // `loudnorm2`: two-pass loudness; MP3s cached by the single-pass encode are not
        // reused, their loudness was never measured against the targets.
        let key = content::work_key(
            STEP,
            &up.source.sha256,
            &format!("mp3-{}k-loudnorm2", self.bitrate_kbps),
        );
        let target = format!("episodes/{}/audio.mp3", up.episode_id);
        if let Some(r) = cached(
            self.store.as_ref(),
            self.blobs.as_ref(),
            &key,
            &up.episode_id,
        )
        .await?
        {
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
            .map_err(|e| match e.kind() {
                ErrorKind::Input => {
                    StepFailure::Final(format!("{}: {}", up.original_name, e.report()))
                }
                _ => StepFailure::Final(e.report()),
            })?;
        let audio = podflow_media::store_file(self.blobs.as_ref(), &target, &scratch).await?;
        let result = TranscodeResult {
            audio,
            duration_seconds: info.duration_seconds,
            bitrate_kbps: self.bitrate_kbps,
        };
        let value = serde_json::to_value(&result).map_err(|e| PortError::storage("caching", e))?;
        self.store.record_work(&key, &up.episode_id, &value).await?;
        podflow_core::crash::point("transcode.after_cache");
        Ok((result, false))
    }
}

pub(crate) fn transcode_failed(up: &EpisodeUploaded, reason: &str) -> EventEnvelope {
    EventEnvelope::wrap(&TranscodeFailed {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: up.episode_id.clone(),
        correlation_id: up.correlation_id.clone(),
        reason: reason.to_owned(),
    })
}

/// Ends the step for one episode: `EpisodeTranscoded` or `TranscodeFailed`.
async fn finish(
    store: &dyn EpisodeStore,
    up: &EpisodeUploaded,
    result: Result<(TranscodeResult, bool), StepFailure>,
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
                transcode_failed(up, &reason),
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
                store,
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

/// A finished transcode of the same audio, copied to `episodes/<id>/audio.mp3` if it lives
/// elsewhere (another episode's folder, or where MediaConvert wrote it).
async fn cached(
    store: &dyn EpisodeStore,
    blobs: &dyn BlobStore,
    key: &str,
    episode_id: &str,
) -> Result<Option<TranscodeResult>, PortError> {
    let Some(value) = store.work_result(key).await? else {
        return Ok(None);
    };
    let Ok(result) = serde_json::from_value::<TranscodeResult>(value) else {
        return Ok(None);
    };
    if !intact(blobs, &result.audio).await? {
        tracing::warn!(key, file = %result.audio.key, "the cached MP3 is missing or damaged; transcoding again");
        return Ok(None);
    }
    Ok(Some(placed(blobs, result, episode_id).await?))
}

async fn placed(
    blobs: &dyn BlobStore,
    mut r: TranscodeResult,
    episode_id: &str,
) -> Result<TranscodeResult, PortError> {
    let target = format!("episodes/{episode_id}/audio.mp3");
    if r.audio.key != target {
        r.audio = blobs.copy(&r.audio, &target).await?;
    }
    Ok(r)
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
        let result = self.transcode(&up).await;
        finish(self.store.as_ref(), &up, result, delivery.attempt).await
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        give_up_step(
            self.store.as_ref(),
            delivery,
            STEP,
            reason,
            Some(transcode_failed),
        )
        .await
    }
}
