//! prompt-dispatcher: EpisodeTranscribed → one PromptJob per catalog prompt on the FIFO
//! prompt queue. The rendered prompt travels as a stored blob, never inline.
//!
//! Queue identity (why a prompt never runs twice, while prompts run in parallel):
//! - message group = `episode:prompt` — one prompt's retries stay ordered, and different
//!   prompts (and so different models) are never blocked behind each other;
//! - deduplication id = `episode:prompt:version:triggering event id` — a duplicate delivery
//!   of the same event is dropped by the queue, while a later re-run still gets through;
//!   the invoker's state check then skips anything already completed.

pub mod catalog;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use catalog::Catalog;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, PromptInput, PromptStatus,
    QueuedJob, StepStatus, StoreError, TRANSCRIPT_MARKER,
    handling::{decode_delivery, retry_on_store_error},
    transcript::{Transcript, clock},
};
use podflow_events::{EpisodeTranscribed, PromptJob, SCHEMA_VERSION};

pub const STEP: &str = "dispatch";

/// The prompt-dispatcher service's handler.
pub struct DispatchHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// User prompts that add to or replace the bundled ones.
    pub override_dir: Option<PathBuf>,
    /// What `model = "default"` means.
    pub default_model: String,
    /// The queue PromptJobs go to.
    pub queue: String,
}

impl DispatchHandler {
    async fn dispatch(
        &self,
        event_id: &str,
        ev: &EpisodeTranscribed,
    ) -> Result<Vec<QueuedJob>, StoreError> {
        let catalog = Catalog::load(self.override_dir.as_deref());
        for problem in &catalog.problems {
            tracing::warn!(%problem, "prompt skipped");
        }
        let transcript: Transcript = serde_json::from_slice(&self.blobs.get(&ev.transcript).await?)
            .map_err(|e| StoreError::new(format!("reading {}", ev.transcript.key), e))?;
        let title = self
            .store
            .episode(&ev.episode_id)
            .await?
            .map_or_else(|| ev.episode_id.clone(), |r| r.original_name);
        let done: BTreeMap<String, u32> = self
            .store
            .prompts(&ev.episode_id)
            .await?
            .into_iter()
            .filter(|p| p.status == PromptStatus::Completed)
            .map(|p| (p.prompt_id, p.prompt_version))
            .collect();

        let mut plan = Vec::new();
        let mut jobs = Vec::new();
        for def in catalog.prompts.values() {
            if done.get(&def.id) == Some(&def.version) {
                continue; // already produced at this version: never run twice
            }
            let model = if def.model == "default" {
                self.default_model.clone()
            } else {
                def.model.clone()
            };
            let mut values = BTreeMap::new();
            // The transcript travels beside the template (the invoker may have to split it).
            values.insert("transcript", TRANSCRIPT_MARKER.to_owned());
            values.insert("title", title.clone());
            values.insert("duration", clock(transcript.duration_seconds));
            values.insert("episode_id", ev.episode_id.clone());
            let input = PromptInput {
                system: def.system.trim().to_owned(),
                user: catalog::render(def.template.trim(), &values),
                transcript: transcript.render(def.view),
            };
            let dir = format!("episodes/{}/prompts", ev.episode_id);
            let bytes =
                serde_json::to_vec(&input).map_err(|e| StoreError::new("prompt input", e))?;
            let input_ref = self
                .blobs
                .put(
                    &format!("{dir}/{}.v{}.input.json", def.id, def.version),
                    bytes,
                )
                .await?;
            let job = PromptJob {
                schema_version: SCHEMA_VERSION.into(),
                episode_id: ev.episode_id.clone(),
                correlation_id: ev.correlation_id.clone(),
                prompt_id: def.id.clone(),
                prompt_version: def.version,
                model: model.clone(),
                max_tokens: def.max_tokens,
                temperature: def.temperature,
                input: input_ref,
                output_key: format!("{dir}/{}.md", def.id),
            };
            jobs.push(QueuedJob {
                queue: self.queue.clone(),
                group_id: format!("{}:{}", ev.episode_id, def.id),
                dedup_id: format!("{}:{}:v{}:{event_id}", ev.episode_id, def.id, def.version),
                body: serde_json::to_string(&job).map_err(|e| StoreError::new("prompt job", e))?,
            });
            plan.push((def.id.clone(), def.version, model));
        }
        self.store.plan_prompts(&ev.episode_id, &plan).await?;
        Ok(jobs)
    }
}

#[async_trait]
impl MessageHandler for DispatchHandler {
    fn name(&self) -> &'static str {
        "prompt-dispatcher"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let (envelope, ev) = match decode_delivery::<EpisodeTranscribed>(delivery) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        let result = async {
            self.store.step_started(&ev.episode_id, STEP).await?;
            let jobs = self.dispatch(&envelope.id, &ev).await?;
            let note = format!("{} prompt job(s) queued", jobs.len());
            self.store
                .step_finished(&ev.episode_id, STEP, StepStatus::Done, Some(&note))
                .await?;
            Ok::<_, StoreError>(jobs)
        };
        match result.await {
            Ok(jobs) => Outcome::Done {
                emit: Vec::new(),
                jobs,
            },
            Err(e) => retry_on_store_error(delivery.attempt, &e),
        }
    }
}
