//! The transcriber on AWS: Amazon Transcribe does the work, and this handler reacts to two
//! events — `EpisodeUploaded` starts a job (named from the audio's hash, so a duplicate
//! delivery or a re-upload under another name starts nothing new), and Transcribe's own
//! "Transcribe Job State Change" finishes every episode waiting for that job. No polling.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, JobState, MessageHandler, Outcome, PortError,
    TranscriptionJobSpec, TranscriptionJobs,
    handling::{
        StepFailure, decode_delivery, give_up_step, give_up_waiting, merge_outcomes,
        retry_on_store_error, wait_for_job, waiting_episodes,
    },
};
use podflow_events::{BlobRef, EpisodeUploaded};
use serde_json::Value;

use crate::{STEP, SpeakerNames, TranscriptionResult, cached, finish, keep, with_names, work_key};

/// What Transcribe's events call themselves.
pub const STATE_CHANGE: &str = "Transcribe Job State Change";
/// Every job podflow starts is named `podflow-<audio sha256>` (the template's rule and IAM
/// policy match this prefix).
pub const JOB_PREFIX: &str = "podflow-";
/// The engine's part of the cache key and of the transcript's `engine` field.
const ENGINE: &str = "amazon-transcribe";
/// Most speakers Transcribe is asked to tell apart (its limit is 30; a podcast has few).
const MAX_SPEAKERS: u32 = 10;

/// The job for an audio file.
pub fn job_name(audio_sha256: &str) -> String {
    format!("{JOB_PREFIX}{audio_sha256}")
}

/// Where Transcribe writes a job's output: under `episodes/`, so it never looks like an
/// upload.
pub fn output_key(job: &str) -> String {
    format!("episodes/_transcribe/{job}.json")
}

/// Episodes waiting for a job, kept in the work store under this key.
fn waiters_key(job: &str) -> String {
    format!("transcribe-job:{job}")
}

/// Why a job's state is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Transcribe said it ended.
    StateChange,
    /// An episode joined a job that already existed.
    Upload,
}

pub struct BatchTranscriberHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub jobs: Arc<dyn TranscriptionJobs>,
    pub speakers: SpeakerNames,
}

fn job_failure(e: PortError, attempt: u32) -> Result<Outcome, StepFailure> {
    podflow_core::handling::retry_or_fail(
        e,
        attempt,
        Duration::from_secs(5),
        Duration::from_secs(300),
    )
}

impl BatchTranscriberHandler {
    async fn on_upload(&self, up: &EpisodeUploaded, attempt: u32) -> Outcome {
        let key = work_key(&up.source.sha256, ENGINE);
        let started = async {
            self.store.step_started(&up.episode_id, STEP).await?;
            if let Some(result) = cached(self.store.as_ref(), self.blobs.as_ref(), &key).await? {
                let names = self.speakers.resolve(self.blobs.as_ref()).await?;
                let named = with_names(
                    self.store.as_ref(),
                    self.blobs.as_ref(),
                    &key,
                    &up.episode_id,
                    result,
                    &names,
                )
                .await?;
                return Ok(Err((named, true)));
            }
            let job = job_name(&up.source.sha256);
            wait_for_job(self.store.as_ref(), &waiters_key(&job), up).await?;
            Ok::<_, PortError>(Ok(job))
        };
        let job = match started.await {
            Ok(Ok(job)) => job,
            Ok(Err(reused)) => {
                return finish(self.store.as_ref(), up, Ok(reused), None, attempt).await;
            }
            Err(e) => return retry_on_store_error(attempt, &e),
        };
        let spec = TranscriptionJobSpec {
            name: job.clone(),
            media: up.source.clone(),
            output_key: output_key(&job),
            max_speakers: MAX_SPEAKERS,
        };
        match self.jobs.start(&spec).await {
            Ok(true) => {
                tracing::info!(episode_id = %up.episode_id, job = %job, "transcription job started");
                Outcome::nothing()
            }
            // Already running for this audio: its state change finishes this episode too —
            // unless it ended before this episode joined, then finish now.
            Ok(false) => self.on_job_state(&job, Wake::Upload, attempt).await,
            Err(e) => match job_failure(e, attempt) {
                Ok(retry) => retry,
                Err(failure) => finish(self.store.as_ref(), up, Err(failure), None, attempt).await,
            },
        }
    }

    /// Finishes the episodes waiting for `job` if it has ended (asking Transcribe, not
    /// trusting the event alone).
    async fn on_job_state(&self, job: &str, wake: Wake, attempt: u32) -> Outcome {
        let waiting = match waiting_episodes(self.store.as_ref(), &waiters_key(job)).await {
            Ok(w) => w,
            Err(e) => return retry_on_store_error(attempt, &e),
        };
        let Some(first) = waiting.first() else {
            return Outcome::DeadLetter {
                emit: Vec::new(),
                reason: format!("no episode waits for transcription job {job}"),
            };
        };
        let result: Result<(TranscriptionResult, bool), StepFailure> =
            match self.jobs.state(job).await {
                // Its state change will come.
                Ok(JobState::Running) if wake == Wake::Upload => return Outcome::nothing(),
                // The event came before the job reads as ended: ask again shortly.
                Ok(JobState::Running) => {
                    return Outcome::Retry {
                        delay: Duration::from_secs(30),
                        reason: format!("transcription job {job} has not ended yet"),
                    };
                }
                Ok(JobState::Failed(reason)) => Err(StepFailure::Final(format!(
                    "Amazon Transcribe failed on {}: {reason}",
                    first.original_name
                ))),
                Ok(JobState::Completed { language }) => self
                    .read_output(job, first, language.as_deref())
                    .await
                    .map(|r| (r, false)),
                Err(e) => match job_failure(e, attempt) {
                    Ok(retry) => return retry,
                    Err(failure) => Err(failure),
                },
            };
        let names = match &result {
            Ok(_) => match self.speakers.resolve(self.blobs.as_ref()).await {
                Ok(names) => names,
                Err(e) => return retry_on_store_error(attempt, &e),
            },
            Err(_) => Vec::new(),
        };
        let mut outcomes = Vec::new();
        for (i, up) in waiting.iter().enumerate() {
            let mine = match &result {
                Ok((r, _)) if i == 0 => Ok((r.clone(), false)),
                Ok((r, _)) => crate::relocate(self.blobs.as_ref(), r.clone(), &up.episode_id)
                    .await
                    .map(|r| (r, true))
                    .map_err(StepFailure::Store),
                Err(StepFailure::Final(reason)) => Err(StepFailure::Final(reason.clone())),
                Err(StepFailure::Store(e)) => return retry_on_store_error(attempt, e),
            };
            let mine = match mine {
                Ok((r, reused)) => with_names(
                    self.store.as_ref(),
                    self.blobs.as_ref(),
                    &work_key(&up.source.sha256, ENGINE),
                    &up.episode_id,
                    r,
                    &names,
                )
                .await
                .map(|r| (r, reused))
                .map_err(StepFailure::Store),
                Err(e) => Err(e),
            };
            outcomes.push(finish(self.store.as_ref(), up, mine, None, attempt).await);
        }
        merge_outcomes(outcomes)
    }

    /// Reads Transcribe's output JSON, normalises it and keeps it for the first episode;
    /// `language` is the job's, for an output that does not name its own.
    async fn read_output(
        &self,
        job: &str,
        first: &EpisodeUploaded,
        language: Option<&str>,
    ) -> Result<TranscriptionResult, StepFailure> {
        let key = work_key(&first.source.sha256, ENGINE);
        // A finished result (an earlier delivery of this event) is not made again.
        if let Some(result) = cached(self.store.as_ref(), self.blobs.as_ref(), &key).await? {
            return Ok(result);
        }
        let output = BlobRef {
            bucket: first.source.bucket.clone(),
            key: output_key(job),
            // Not known before reading; the store reads by bucket and key alone.
            size: 0,
            sha256: String::new(),
        };
        let bytes = self.blobs.get(&output).await?;
        let json = String::from_utf8_lossy(&bytes);
        let transcript =
            podflow_aws::transcribe_output::parse_for_job(&json, language).map_err(|e| {
                StepFailure::Final(format!("Amazon Transcribe's output for {job}: {e}"))
            })?;
        keep(
            self.store.as_ref(),
            self.blobs.as_ref(),
            &key,
            first,
            &transcript,
        )
        .await
    }
}

#[async_trait]
impl MessageHandler for BatchTranscriberHandler {
    fn name(&self) -> &'static str {
        "transcriber"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let raw: Option<Value> = serde_json::from_str(&delivery.body).ok();
        let state_change = raw
            .as_ref()
            .filter(|v| v["detail-type"].as_str() == Some(STATE_CHANGE));
        if let Some(event) = state_change {
            return match event["detail"]["TranscriptionJobName"].as_str() {
                Some(job) if job.starts_with(JOB_PREFIX) => {
                    self.on_job_state(job, Wake::StateChange, delivery.attempt)
                        .await
                }
                other => Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason: format!(
                        "a {STATE_CHANGE} event for job {other:?}, which podflow did not start"
                    ),
                },
            };
        }
        match decode_delivery::<EpisodeUploaded>(delivery) {
            Ok((_, up)) => self.on_upload(&up, delivery.attempt).await,
            Err(outcome) => outcome,
        }
    }

    /// An upload that gives up fails its episode's step; so does a job's state change (the
    /// rule passes only a job's end), for every episode waiting for the job.
    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        let job = serde_json::from_str::<Value>(&delivery.body)
            .ok()
            .filter(|v| v["detail-type"].as_str() == Some(STATE_CHANGE))
            .and_then(|v| {
                v["detail"]["TranscriptionJobName"]
                    .as_str()
                    .map(str::to_owned)
            });
        if let Some(job) = job {
            return give_up_waiting(
                self.store.as_ref(),
                delivery,
                &waiters_key(&job),
                STEP,
                reason,
                crate::transcription_failed,
            )
            .await;
        }
        give_up_step(
            self.store.as_ref(),
            delivery,
            STEP,
            reason,
            Some(crate::transcription_failed),
        )
        .await
    }
}
