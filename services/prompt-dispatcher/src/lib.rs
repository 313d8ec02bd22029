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
    BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, PortError, PromptInput,
    PromptStatus, QueuedJob, StepStatus, TRANSCRIPT_MARKER, TextEngine,
    handling::{decode_delivery, give_up_step, retry_on_store_error},
    transcript::{Transcript, clock},
};
use podflow_events::{BlobRef, EpisodeTranscribed, PromptJob, SCHEMA_VERSION};

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
    /// With [`TextEngine::Extractive`] no prompt is sent: the publisher's extractive engine
    /// writes the texts.
    pub text_engine: TextEngine,
}

/// What a prompt is rendered against.
struct EpisodeContext {
    episode_id: String,
    correlation_id: String,
    title: String,
    transcript: Transcript,
}

/// Which prompt version a replay should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVersion {
    /// The version in the catalog now (bundled prompts plus the override directory).
    Latest,
    /// This version, which the catalog must hold now.
    Exactly(u32),
}

/// Why a dead-lettered prompt job cannot be re-rendered for a replay.
#[derive(Debug, thiserror::Error)]
pub enum RerenderError {
    #[error(
        "prompt `{prompt}` is not in the catalog (bundled prompts and PODFLOW_PROMPTS_DIR); replay it without --prompt-version, or add it back"
    )]
    NotInCatalog { prompt: String },
    #[error(
        "the catalog has prompt `{prompt}` at version {have}, not {want}: set `version = {want}` in its file (or in a copy in PODFLOW_PROMPTS_DIR), or pass --prompt-version latest"
    )]
    VersionNotInCatalog {
        prompt: String,
        have: u32,
        want: u32,
    },
    #[error("episode {episode} has no stored transcript to render prompt `{prompt}` against")]
    NoTranscript { episode: String, prompt: String },
    #[error(transparent)]
    Store(#[from] PortError),
}

impl DispatchHandler {
    fn resolve_model(&self, def: &catalog::PromptDefinition) -> String {
        if def.model == "default" {
            self.default_model.clone()
        } else {
            def.model.clone()
        }
    }

    async fn context(
        &self,
        episode_id: &str,
        correlation_id: &str,
        transcript: &BlobRef,
    ) -> Result<EpisodeContext, PortError> {
        let transcript: Transcript = serde_json::from_slice(&self.blobs.get(transcript).await?)
            .map_err(|e| PortError::storage(format!("reading {}", transcript.key), e))?;
        let title = self
            .store
            .episode(episode_id)
            .await?
            .map_or_else(|| episode_id.to_owned(), |r| r.original_name);
        Ok(EpisodeContext {
            episode_id: episode_id.to_owned(),
            correlation_id: correlation_id.to_owned(),
            title,
            transcript,
        })
    }

    /// Renders one catalog prompt for an episode, stores its input and returns the job.
    async fn render(
        &self,
        def: &catalog::PromptDefinition,
        ctx: &EpisodeContext,
    ) -> Result<PromptJob, PortError> {
        let mut values = BTreeMap::new();
        // The transcript travels beside the template (the invoker may have to split it).
        values.insert("transcript", TRANSCRIPT_MARKER.to_owned());
        values.insert("title", ctx.title.clone());
        values.insert("duration", clock(ctx.transcript.duration_seconds));
        values.insert("episode_id", ctx.episode_id.clone());
        let input = PromptInput {
            system: def.system.trim().to_owned(),
            user: catalog::render(def.template.trim(), &values),
            transcript: ctx.transcript.render(def.view),
        };
        let dir = format!("episodes/{}/prompts", ctx.episode_id);
        let bytes =
            serde_json::to_vec(&input).map_err(|e| PortError::storage("prompt input", e))?;
        let input_ref = self
            .blobs
            .put(
                &format!("{dir}/{}.v{}.input.json", def.id, def.version),
                bytes,
            )
            .await?;
        Ok(PromptJob {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: ctx.episode_id.clone(),
            correlation_id: ctx.correlation_id.clone(),
            prompt_id: def.id.clone(),
            prompt_version: def.version,
            model: self.resolve_model(def),
            max_tokens: def.max_tokens,
            temperature: def.temperature,
            input: input_ref,
            output_key: format!("{dir}/{}.md", def.id),
        })
    }

    async fn dispatch(
        &self,
        event_id: &str,
        ev: &EpisodeTranscribed,
    ) -> Result<Vec<QueuedJob>, PortError> {
        let catalog = Catalog::load(self.override_dir.as_deref());
        for problem in &catalog.problems {
            tracing::warn!(%problem, "prompt skipped");
        }
        let ctx = self
            .context(&ev.episode_id, &ev.correlation_id, &ev.transcript)
            .await?;
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
            let job = self.render(def, &ctx).await?;
            jobs.push(QueuedJob {
                queue: self.queue.clone(),
                group_id: format!("{}:{}", ev.episode_id, def.id),
                dedup_id: format!("{}:{}:v{}:{event_id}", ev.episode_id, def.id, def.version),
                body: serde_json::to_string(&job)
                    .map_err(|e| PortError::storage("prompt job", e))?,
            });
            plan.push((def.id.clone(), def.version, job.model));
        }
        self.store.plan_prompts(&ev.episode_id, &plan).await?;
        podflow_core::crash::point("dispatch.after_plan");
        Ok(jobs)
    }

    /// A dead-lettered job rendered again from the catalog as it is now, for a replay after
    /// an operator fixed the prompt (a new version). The model is the catalog's unless the
    /// operator overrides it afterwards.
    pub async fn rerender(
        &self,
        failed: &PromptJob,
        version: ReplayVersion,
    ) -> Result<PromptJob, RerenderError> {
        let catalog = Catalog::load(self.override_dir.as_deref());
        let def =
            catalog
                .prompts
                .get(&failed.prompt_id)
                .ok_or_else(|| RerenderError::NotInCatalog {
                    prompt: failed.prompt_id.clone(),
                })?;
        if let ReplayVersion::Exactly(want) = version
            && want != def.version
        {
            return Err(RerenderError::VersionNotInCatalog {
                prompt: def.id.clone(),
                have: def.version,
                want,
            });
        }
        let transcript = self
            .store
            .artifacts(&failed.episode_id)
            .await?
            .remove("transcript")
            .ok_or_else(|| RerenderError::NoTranscript {
                episode: failed.episode_id.clone(),
                prompt: failed.prompt_id.clone(),
            })?;
        let ctx = self
            .context(&failed.episode_id, &failed.correlation_id, &transcript)
            .await?;
        Ok(self.render(def, &ctx).await?)
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
            let (jobs, note) = if self.text_engine.sends_prompts() {
                let jobs = self.dispatch(&envelope.id, &ev).await?;
                let note = format!("{} prompt job(s) queued", jobs.len());
                (jobs, note)
            } else {
                let note = "no prompts sent: the extractive engine writes the texts".to_owned();
                (Vec::new(), note)
            };
            self.store
                .step_finished(&ev.episode_id, STEP, StepStatus::Done, Some(&note))
                .await?;
            Ok::<_, PortError>(jobs)
        };
        match result.await {
            Ok(jobs) => Outcome::Done {
                emit: Vec::new(),
                jobs,
            },
            Err(e) => retry_on_store_error(delivery.attempt, &e),
        }
    }

    /// The dispatch step fails with the reason; the publisher then summarizes the episode
    /// without prompts.
    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        give_up_step(self.store.as_ref(), delivery, STEP, reason, None).await
    }
}
