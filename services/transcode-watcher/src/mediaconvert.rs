//! The transcode-watcher on AWS: MediaConvert makes the MP3, and this handler reacts to two
//! events — `EpisodeUploaded` creates a job (with an idempotency token from the audio's hash,
//! so a duplicate delivery gets the job already made), and MediaConvert's "MediaConvert Job
//! State Change" finishes every episode waiting for that audio. No polling.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, PortError, TranscodeJobSpec,
    TranscodeJobs, content,
    handling::{
        StepFailure, decode_delivery, give_up_step, give_up_waiting, merge_outcomes,
        retry_on_store_error, retry_or_fail, wait_for_job, waiting_episodes,
    },
};
use podflow_events::EpisodeUploaded;
use serde_json::Value;

use crate::{STEP, TranscodeResult, cached, finish, placed};

pub const STATE_CHANGE: &str = "MediaConvert Job State Change";
/// User metadata every podflow job carries (the template's rule matches `podflow_stack`).
pub const META_STACK: &str = "podflow_stack";
const META_AUDIO: &str = "podflow_audio";
const META_BITRATE: &str = "podflow_bitrate";

/// How a job ended, as its state-change event says.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    Complete {
        /// `s3://bucket/key` of the MP3.
        output: String,
        duration_seconds: f64,
    },
    Error(String),
    Canceled,
}

/// A state change of one of podflow's jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobChange {
    pub job_id: String,
    pub audio_sha256: String,
    pub bitrate_kbps: u32,
    /// `None` for states that are not an end (PROGRESSING, STATUS_UPDATE...).
    pub end: Option<JobEnd>,
}

/// Reads a "MediaConvert Job State Change" event's detail.
pub fn job_change(event: &Value) -> Result<JobChange, String> {
    let detail = &event["detail"];
    let job_id = detail["jobId"]
        .as_str()
        .ok_or("the event has no detail.jobId")?;
    let meta = &detail["userMetadata"];
    let audio = meta[META_AUDIO].as_str().ok_or_else(|| {
        format!("job {job_id} carries no {META_AUDIO}: podflow did not create it")
    })?;
    let bitrate = meta[META_BITRATE]
        .as_str()
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| format!("job {job_id} carries no {META_BITRATE}"))?;
    let end = match detail["status"].as_str() {
        Some("COMPLETE") => {
            let output = &detail["outputGroupDetails"][0]["outputDetails"][0];
            let path = output["outputFilePaths"][0]
                .as_str()
                .ok_or_else(|| format!("job {job_id} completed without an output file path"))?;
            Some(JobEnd::Complete {
                output: path.to_owned(),
                duration_seconds: output["durationInMs"].as_f64().unwrap_or(0.0) / 1000.0,
            })
        }
        Some("ERROR") => Some(JobEnd::Error(format!(
            "MediaConvert error {}: {}",
            detail["errorCode"],
            detail["errorMessage"].as_str().unwrap_or("no message")
        ))),
        Some("CANCELED") => Some(JobEnd::Canceled),
        _ => None,
    };
    Ok(JobChange {
        job_id: job_id.to_owned(),
        audio_sha256: audio.to_owned(),
        bitrate_kbps: bitrate,
        end,
    })
}

/// `s3://bucket/key` → key, when the bucket is ours.
fn key_in(uri: &str, bucket: &str) -> Option<String> {
    uri.strip_prefix("s3://")?
        .strip_prefix(bucket)?
        .strip_prefix('/')
        .map(str::to_owned)
}

pub struct MediaConvertHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub jobs: Arc<dyn TranscodeJobs>,
    pub bucket: String,
    pub bitrate_kbps: u32,
    /// The stack's name, put on every job so only this stack's events reach it.
    pub stack: String,
}

fn work_key(audio: &str, bitrate_kbps: u32) -> String {
    content::work_key(
        STEP,
        audio,
        &format!("mediaconvert-mp3-{bitrate_kbps}k-tp2"),
    )
}

fn waiters_key(audio: &str, bitrate_kbps: u32) -> String {
    format!("transcode-job:{audio}:{bitrate_kbps}k")
}

impl MediaConvertHandler {
    async fn on_upload(&self, up: &EpisodeUploaded, attempt: u32) -> Outcome {
        let (sha, k) = (&up.source.sha256, self.bitrate_kbps);
        let joined = async {
            self.store.step_started(&up.episode_id, STEP).await?;
            if let Some(r) = cached(
                self.store.as_ref(),
                self.blobs.as_ref(),
                &work_key(sha, k),
                &up.episode_id,
            )
            .await?
            {
                return Ok(Some(r));
            }
            wait_for_job(self.store.as_ref(), &waiters_key(sha, k), up).await?;
            Ok::<_, PortError>(None)
        };
        match joined.await {
            Ok(Some(r)) => return finish(self.store.as_ref(), up, Ok((r, true)), attempt).await,
            Ok(None) => {}
            Err(e) => return retry_on_store_error(attempt, &e),
        }
        let spec = TranscodeJobSpec {
            media: up.source.clone(),
            output_base: format!("episodes/_transcode/{sha}-{k}k"),
            bitrate_kbps: k,
            // MediaConvert takes up to 64 ASCII characters; 192 bits of the hash keep it
            // unique per audio.
            idempotency_token: format!("podflow-{}-{k}k", &sha[..48.min(sha.len())]),
            metadata: vec![
                (META_STACK.into(), self.stack.clone()),
                (META_AUDIO.into(), sha.clone()),
                (META_BITRATE.into(), k.to_string()),
            ],
        };
        match self.jobs.create(&spec).await {
            Ok(job) => {
                tracing::info!(episode_id = %up.episode_id, job = %job, "transcode job created");
                Outcome::nothing()
            }
            Err(e) => {
                match retry_or_fail(e, attempt, Duration::from_secs(5), Duration::from_secs(300)) {
                    Ok(retry) => retry,
                    Err(failure) => finish(self.store.as_ref(), up, Err(failure), attempt).await,
                }
            }
        }
    }

    async fn on_change(&self, change: JobChange, attempt: u32) -> Outcome {
        let Some(end) = change.end else {
            return Outcome::nothing();
        };
        let (sha, k) = (&change.audio_sha256, change.bitrate_kbps);
        let waiting = match waiting_episodes(self.store.as_ref(), &waiters_key(sha, k)).await {
            Ok(w) => w,
            Err(e) => return retry_on_store_error(attempt, &e),
        };
        if waiting.is_empty() {
            return Outcome::DeadLetter {
                emit: Vec::new(),
                reason: format!("no episode waits for MediaConvert job {}", change.job_id),
            };
        }
        let result: Result<TranscodeResult, StepFailure> = match end {
            JobEnd::Complete {
                output,
                duration_seconds,
            } => {
                self.keep(&output, duration_seconds, sha, k, &waiting[0])
                    .await
            }
            JobEnd::Error(reason) => Err(StepFailure::Final(reason)),
            JobEnd::Canceled => Err(StepFailure::Final(format!(
                "MediaConvert job {} was canceled",
                change.job_id
            ))),
        };
        let mut outcomes = Vec::new();
        for up in &waiting {
            let mine = match &result {
                Ok(r) => placed(self.blobs.as_ref(), r.clone(), &up.episode_id)
                    .await
                    .map(|placed| (placed, up.episode_id != waiting[0].episode_id))
                    .map_err(StepFailure::Store),
                Err(StepFailure::Final(reason)) => Err(StepFailure::Final(reason.clone())),
                Err(StepFailure::Store(e)) => return retry_on_store_error(attempt, e),
            };
            outcomes.push(finish(self.store.as_ref(), up, mine, attempt).await);
        }
        merge_outcomes(outcomes)
    }

    /// Records MediaConvert's MP3 as the transcode of this audio (hashing it as it streams).
    async fn keep(
        &self,
        output: &str,
        duration_seconds: f64,
        sha: &str,
        bitrate_kbps: u32,
        first: &EpisodeUploaded,
    ) -> Result<TranscodeResult, StepFailure> {
        let key = key_in(output, &self.bucket).ok_or_else(|| {
            StepFailure::Final(format!(
                "MediaConvert wrote {output}, outside s3://{}/",
                self.bucket
            ))
        })?;
        let result = TranscodeResult {
            audio: self.blobs.digest(&key).await?,
            duration_seconds,
            bitrate_kbps,
        };
        let value = serde_json::to_value(&result).map_err(|e| PortError::storage("caching", e))?;
        self.store
            .record_work(&work_key(sha, bitrate_kbps), &first.episode_id, &value)
            .await?;
        Ok(result)
    }
}

#[async_trait]
impl MessageHandler for MediaConvertHandler {
    fn name(&self) -> &'static str {
        "transcode-watcher"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let raw: Option<Value> = serde_json::from_str(&delivery.body).ok();
        if let Some(event) = raw
            .as_ref()
            .filter(|v| v["detail-type"].as_str() == Some(STATE_CHANGE))
        {
            return match job_change(event) {
                Ok(change) => self.on_change(change, delivery.attempt).await,
                Err(reason) => Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason,
                },
            };
        }
        match decode_delivery::<EpisodeUploaded>(delivery) {
            Ok((_, up)) => self.on_upload(&up, delivery.attempt).await,
            Err(outcome) => outcome,
        }
    }

    /// An upload that gives up fails its episode's step; so does a job's end that gives up,
    /// for every episode waiting for the job. A change that is no end (PROGRESSING) is only
    /// dead-lettered: the job's end is still to come.
    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        let change = serde_json::from_str::<Value>(&delivery.body)
            .ok()
            .filter(|v| v["detail-type"].as_str() == Some(STATE_CHANGE))
            .map(|event| job_change(&event));
        match change {
            Some(Ok(change)) if change.end.is_some() => {
                return give_up_waiting(
                    self.store.as_ref(),
                    delivery,
                    &waiters_key(&change.audio_sha256, change.bitrate_kbps),
                    STEP,
                    reason,
                    crate::transcode_failed,
                )
                .await;
            }
            Some(_) => {
                return Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason: reason.to_owned(),
                };
            }
            None => {}
        }
        give_up_step(
            self.store.as_ref(),
            delivery,
            STEP,
            reason,
            Some(crate::transcode_failed),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded event; the documentation's examples write `"code": 000000`, which is not
    /// JSON (see the fixtures' PROVENANCE.md), so leading zeros are dropped first.
    fn fixture(name: &str, audio: &str) -> Value {
        let text = podflow_fakes::fixtures::aws_text(&format!("mediaconvert/{name}"));
        let mut v: Value =
            serde_json::from_str(&text.replace("000000", "0")).expect("fixture is JSON");
        v["detail"]["userMetadata"] = serde_json::json!({
            META_STACK: "podflow", META_AUDIO: audio, META_BITRATE: "128"
        });
        v
    }

    #[test]
    fn complete_error_and_canceled_events_are_read() {
        let done = job_change(&fixture(
            "awsdocs-mediaconvert_ev_status_complete.COMPLETE.doc-verbatim.jsonc",
            "abc",
        ))
        .expect("complete");
        assert_eq!(done.job_id, "1671476818694-phptj0");
        assert_eq!(
            (done.audio_sha256.as_str(), done.bitrate_kbps),
            ("abc", 128)
        );
        assert_eq!(
            done.end,
            Some(JobEnd::Complete {
                output: "s3://DOC-EXAMPLE-BUCKET/file/file.mp4".into(),
                duration_seconds: 30.041
            })
        );
        let error = job_change(&fixture(
            "awsdocs-mediaconvert_ev_status_error.ERROR.json",
            "abc",
        ))
        .expect("error");
        assert_eq!(
            error.end,
            Some(JobEnd::Error(
                "MediaConvert error 1040: Example error message".into()
            ))
        );
        let canceled = job_change(&fixture(
            "awsdocs-mediaconvert_ev_status_canceled.CANCELED.json",
            "abc",
        ))
        .expect("canceled");
        assert_eq!(canceled.end, Some(JobEnd::Canceled));
        for progress in [
            "awsdocs-mediaconvert_ev_status_progressing.PROGRESSING.json",
            "awsdocs-mediaconvert_ev_status_status_update.STATUS_UPDATE.json",
        ] {
            assert_eq!(
                job_change(&fixture(progress, "abc")).expect(progress).end,
                None
            );
        }
    }

    #[test]
    fn jobs_podflow_did_not_create_are_refused() {
        let mut v = fixture("awsdocs-mediaconvert_ev_status_error.ERROR.json", "abc");
        v["detail"]["userMetadata"] = serde_json::json!({});
        let err = job_change(&v).expect_err("foreign job");
        assert!(err.contains("podflow did not create it"), "{err}");
    }

    #[test]
    fn output_paths_must_be_in_our_bucket() {
        assert_eq!(
            key_in("s3://podflow-b/episodes/_transcode/x.mp3", "podflow-b").as_deref(),
            Some("episodes/_transcode/x.mp3")
        );
        assert_eq!(key_in("s3://other/episodes/x.mp3", "podflow-b"), None);
        assert_eq!(key_in("s3://podflow-bb/x.mp3", "podflow-b"), None);
    }
}
