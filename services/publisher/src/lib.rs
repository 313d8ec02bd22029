//! publisher: fans in every step and prompt of an episode and, when each has finished one
//! way or the other, makes the show's files (show notes, Podcasting 2.0 chapters, blog
//! post, social posts, clips and a trailer), estimates the cost, publishes
//! `EpisodeSummarized` and writes `episode-summarized.json`. Its notifier ([`notify`])
//! tells Slack, where proposals of shows that require approval are decided with buttons
//! ([`slack_actions`]).
//!
//! Fan-in reads the episode's state from the store rather than counting events, so
//! duplicated or out-of-order events cannot confuse it. Each distinct outcome gets one
//! revision: the outcome's fingerprint is claimed atomically, and the event id is derived
//! from episode and revision, so a re-delivery re-publishes the same event (which the bus
//! drops) instead of a new one.

pub mod approval;
pub mod cost;
pub mod documents;
pub mod extractive;
pub mod feed;
pub mod files;
pub mod links;
pub mod notify;
pub mod slack;
pub mod slack_actions;
pub mod syndication;
pub mod tags;

use std::sync::Arc;

use async_trait::async_trait;
use podflow_core::{
    BlobStore, ClipCutter, Delivery, EpisodeStore, MessageHandler, Outcome, PortError,
    PromptStatus, StepStatus, StoredRevision, TextEngine,
    content::sha256_hex,
    handling::{give_up_step, retry_on_store_error},
    show::{ShowConfig, ShowLayers},
};
use podflow_events::{
    EpisodeApproved, EpisodeRejected, EpisodeSummarized, EventEnvelope, FailedPrompt, FailedStep,
    PromptOutput, SCHEMA_VERSION, SummaryStatus,
};
use std::time::Duration;

pub const STEP: &str = "publish";

/// The publisher service's handler.
pub struct PublishHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// Cuts clips and the trailer (ffmpeg).
    pub clips: Arc<dyn ClipCutter>,
    pub prices: cost::PriceTable,
    /// Whether the extractive engine fills in outputs: all of them
    /// ([`TextEngine::Extractive`]), those whose prompt failed (`Auto`), or none (`Llm`).
    pub text_engine: TextEngine,
    /// The show's configuration around the stored `podflow.toml` (feed, tags, hosts).
    pub show: ShowLayers,
}

/// Where an episode stands, from the store.
enum Readiness {
    /// Something is still running; its own event will wake the publisher.
    Waiting,
    /// Transcribed, but the dispatcher has not planned the prompts yet. Nothing else is
    /// sure to wake the publisher (the catalog may be empty), so look again shortly.
    AwaitingDispatch,
    /// Nothing more will happen until something is replayed: summarize this.
    Ready(Box<EpisodeSummarized>),
}

impl PublishHandler {
    async fn readiness(&self, episode_id: &str) -> Result<Readiness, PortError> {
        let Some(record) = self.store.episode(episode_id).await? else {
            return Ok(Readiness::Waiting);
        };
        let steps = self.store.steps(episode_id).await?;
        let status_of = |name: &str| steps.iter().find(|s| s.step == name).map(|s| s.status);
        let failed_step = |name: &str| FailedStep {
            step: name.into(),
            reason: steps
                .iter()
                .find(|s| s.step == name)
                .and_then(|s| s.note.clone())
                .unwrap_or_else(|| "failed".into()),
        };
        let mut failed_steps = Vec::new();
        for name in ["transcode", "transcribe"] {
            match status_of(name) {
                None | Some(StepStatus::Running) => return Ok(Readiness::Waiting),
                Some(StepStatus::Failed) => failed_steps.push(failed_step(name)),
                Some(StepStatus::Done) => {}
            }
        }
        let transcribed = status_of("transcribe") == Some(StepStatus::Done);
        match status_of("dispatch") {
            Some(StepStatus::Failed) => failed_steps.push(failed_step("dispatch")),
            Some(StepStatus::Done) => {}
            _ if transcribed => return Ok(Readiness::AwaitingDispatch),
            _ => {}
        }
        let prompts = self.store.prompts(episode_id).await?;
        if prompts.iter().any(|p| !p.status.is_terminal()) {
            return Ok(Readiness::Waiting);
        }
        let outputs: Vec<PromptOutput> = prompts
            .iter()
            .filter(|p| p.status == PromptStatus::Completed)
            .filter_map(|p| {
                Some(PromptOutput {
                    prompt_id: p.prompt_id.clone(),
                    prompt_version: p.prompt_version,
                    model: p.model.clone(),
                    output: p.output.clone()?,
                })
            })
            .collect();
        let failed_prompts: Vec<FailedPrompt> = prompts
            .iter()
            .filter(|p| p.status == PromptStatus::Failed)
            .map(|p| FailedPrompt {
                prompt_id: p.prompt_id.clone(),
                prompt_version: p.prompt_version,
                model: p.model.clone(),
                reason: p.last_error.clone().unwrap_or_else(|| "failed".into()),
            })
            .collect();
        let artifacts = self.store.artifacts(episode_id).await?;
        let status = if failed_steps.is_empty() && failed_prompts.is_empty() {
            SummaryStatus::Complete
        } else {
            SummaryStatus::Partial
        };
        Ok(Readiness::Ready(Box::new(EpisodeSummarized {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: episode_id.to_owned(),
            correlation_id: record.correlation_id,
            revision: 0,
            status,
            audio: artifacts.get("audio").cloned(),
            transcript: artifacts.get("transcript").cloned(),
            subtitles_srt: artifacts.get("subtitles_srt").cloned(),
            subtitles_vtt: artifacts.get("subtitles_vtt").cloned(),
            outputs,
            failed_prompts,
            failed_steps,
            files: Vec::new(),
            cost: None,
        })))
    }

    async fn publish(
        &self,
        episode_id: &str,
        transcribed_event: bool,
    ) -> Result<Outcome, PortError> {
        let summary = match self.readiness(episode_id).await? {
            Readiness::AwaitingDispatch if transcribed_event => {
                return Ok(Outcome::Retry {
                    delay: Duration::from_millis(500),
                    reason: "waiting for the dispatcher".into(),
                });
            }
            Readiness::AwaitingDispatch => return Ok(Outcome::nothing()),
            Readiness::Waiting => return Ok(Outcome::nothing()),
            Readiness::Ready(summary) => summary,
        };
        let (show, problems) = self.show.resolve(self.blobs.as_ref()).await?;
        approval::publish_or_propose(self, summary, &show, problems).await
    }

    /// Records a person's decision carried by `envelope`, if it is one. Returns the outcome
    /// when the delivery ends here: a decision that cannot be taken (a proposal no longer the
    /// latest, decided otherwise) is logged and noted, never dead-lettered — the person who
    /// sent it was refused with the same reason.
    async fn take_decision(&self, envelope: &EventEnvelope, attempt: u32) -> Option<Outcome> {
        let recorded = match envelope.detail_type.as_str() {
            "EpisodeApproved" => match envelope.decode::<EpisodeApproved>() {
                Ok(approved) => approval::record_approval(self.store.as_ref(), &approved).await,
                Err(e) => {
                    return Some(Outcome::DeadLetter {
                        emit: Vec::new(),
                        reason: e.to_string(),
                    });
                }
            },
            "EpisodeRejected" => match envelope.decode::<EpisodeRejected>() {
                Ok(rejected) => approval::record_rejection(self.store.as_ref(), &rejected).await,
                Err(e) => {
                    return Some(Outcome::DeadLetter {
                        emit: Vec::new(),
                        reason: e.to_string(),
                    });
                }
            },
            _ => return None,
        };
        match recorded {
            Ok(Ok(())) => None,
            Ok(Err(refusal)) => {
                tracing::warn!(event = %envelope.id, reason = %refusal, "decision not taken");
                Some(Outcome::nothing())
            }
            Err(e) => Some(retry_on_store_error(attempt, &e)),
        }
    }

    /// Makes the files (with a person's edits, when approved) and publishes the revision:
    /// `EpisodeSummarized`, `episode-summarized.json` and the feed.
    pub(crate) async fn publish_revision(
        &self,
        mut summary: Box<EpisodeSummarized>,
        show: &ShowConfig,
        edits: Option<&files::Edits>,
        mut problems: Vec<String>,
    ) -> Result<Outcome, PortError> {
        let episode_id = summary.episode_id.clone();
        let episode_id = episode_id.as_str();
        let made = files::make(self, &mut summary, show, edits, files::Stage::Publish).await?;
        problems.extend(made.problems);
        for problem in &problems {
            tracing::warn!(episode_id, %problem, "publisher");
        }
        // The fingerprint covers everything but the revision.
        let fingerprint = sha256_hex(
            serde_json::to_string(&summary)
                .unwrap_or_default()
                .as_bytes(),
        );
        // A revision already recorded for this outcome is announced again, with its own
        // envelope and id: the first announcement may have been lost after the write.
        let envelope_for = |revision: u32| {
            let mut summary = (*summary).clone();
            summary.revision = revision;
            let mut envelope = EventEnvelope::wrap(&summary);
            envelope.id = format!("{episode_id}:summary:r{revision}");
            envelope
        };
        let StoredRevision {
            revision, envelope, ..
        } = self
            .store
            .record_revision(episode_id, &fingerprint, &envelope_for)
            .await?;
        podflow_core::crash::point("publisher.after_revision");
        let body =
            serde_json::to_vec_pretty(&envelope).map_err(|e| PortError::storage("summary", e))?;
        self.blobs
            .put(
                &format!("episodes/{episode_id}/episode-summarized.json"),
                body,
            )
            .await?;
        self.store.step_started(episode_id, STEP).await?;
        // The feed follows the revision: it lists every episode, so it is not part of
        // this episode's fingerprint.
        if let Some(why) = syndication::rebuild_feed(self, show).await? {
            tracing::warn!(episode_id, reason = %why, "feed.xml not written");
            problems.push(format!("feed.xml not written: {why}"));
        }
        let mut note = format!("revision {revision}");
        if !problems.is_empty() {
            note.push_str(&format!("; {}", problems.join("; ")));
        }
        self.store
            .step_finished(episode_id, STEP, StepStatus::Done, Some(&note))
            .await?;
        Ok(Outcome::done(vec![envelope]))
    }
}

#[async_trait]
impl MessageHandler for PublishHandler {
    fn name(&self) -> &'static str {
        "publisher"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let envelope = match EventEnvelope::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => {
                return Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason: e.to_string(),
                };
            }
        };
        let Some(episode_id) = envelope.episode_id().map(str::to_owned) else {
            return Outcome::DeadLetter {
                emit: Vec::new(),
                reason: format!(
                    "event {} names no episode_id (or one not shaped like an episode id)",
                    envelope.id
                ),
            };
        };
        let major_ok = envelope
            .detail
            .get("schema_version")
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.split('.').next() == Some("1"));
        if !major_ok {
            return Outcome::DeadLetter {
                emit: Vec::new(),
                reason: format!(
                    "event {} ({}): unsupported schema_version; this build reads 1.x",
                    envelope.id, envelope.detail_type
                ),
            };
        }
        if let Some(refused) = self.take_decision(&envelope, delivery.attempt).await {
            return refused;
        }
        match self
            .publish(&episode_id, envelope.detail_type == "EpisodeTranscribed")
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => retry_on_store_error(delivery.attempt, &e),
        }
    }

    /// The publish step fails with the reason (shown by `podflow status`); the next event
    /// of the episode, or a replay, publishes again.
    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        give_up_step(self.store.as_ref(), delivery, STEP, reason, None).await
    }
}
