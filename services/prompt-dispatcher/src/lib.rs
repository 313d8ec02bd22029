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
    PromptStatus, QueuedJob, StepStatus, TRANSCRIPT_MARKER, TextEngine, approval,
    handling::{decode_delivery, give_up_step, retry_on_store_error},
    language,
    transcript::{Transcript, clock},
};
use podflow_events::{
    BlobRef, EpisodeRejected, EpisodeTranscribed, EventEnvelope, PodflowEvent, PromptJob,
    SCHEMA_VERSION,
};

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

impl EpisodeContext {
    /// The values of the template variables ([`catalog::VARIABLES`]).
    fn values(&self) -> BTreeMap<&'static str, String> {
        let mut values = BTreeMap::new();
        // The transcript travels beside the template (the invoker may have to split it).
        values.insert("transcript", TRANSCRIPT_MARKER.to_owned());
        values.insert("title", self.title.clone());
        values.insert("duration", clock(self.transcript.duration_seconds));
        values.insert("episode_id", self.episode_id.clone());
        values.insert("language", self.transcript.language.clone());
        values.insert(
            "language_name",
            language::display_name(&self.transcript.language),
        );
        values
    }
}

/// How a rejection stands when the dispatcher is asked to re-run its prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Yes,
    /// The publisher has not recorded it yet.
    NotYet,
    Superseded,
    OtherDecision,
    AlreadyRerun,
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

/// What is sent to the model for one prompt: the template rendered, with the places the
/// template asked for the transcript recorded (values such as the title are text, even
/// when they hold `{{transcript}}`).
fn prompt_input(def: &catalog::PromptDefinition, ctx: &EpisodeContext) -> PromptInput {
    let (user, transcript_at) =
        catalog::render_marking(def.template.trim(), &ctx.values(), "transcript");
    PromptInput {
        system: def.system.trim().to_owned(),
        user,
        transcript: ctx.transcript.render(def.view),
        transcript_at: Some(transcript_at),
    }
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

    /// A job as the FIFO queue takes it (group and deduplication ids: see the crate doc).
    fn queued(&self, job: &PromptJob, event_id: &str) -> Result<QueuedJob, PortError> {
        Ok(QueuedJob {
            queue: self.queue.clone(),
            group_id: format!("{}:{}", job.episode_id, job.prompt_id),
            dedup_id: format!(
                "{}:{}:v{}:{event_id}",
                job.episode_id, job.prompt_id, job.prompt_version
            ),
            body: serde_json::to_string(job).map_err(|e| PortError::storage("prompt job", e))?,
        })
    }

    /// Renders one catalog prompt for an episode, stores its input and returns the job.
    async fn render(
        &self,
        def: &catalog::PromptDefinition,
        ctx: &EpisodeContext,
    ) -> Result<PromptJob, PortError> {
        let input = prompt_input(def, ctx);
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
            jobs.push(self.queued(&job, event_id)?);
            plan.push((def.id.clone(), def.version, job.model));
        }
        self.store.plan_prompts(&ev.episode_id, &plan).await?;
        podflow_core::crash::point("dispatch.after_plan");
        Ok(jobs)
    }

    /// The prompts a person named when rejecting a proposal, rendered from the catalog
    /// (at the version asked for, else the catalog's) and queued again — completed or not
    /// — on the model asked for, else the catalog's.
    async fn rerun(
        &self,
        event_id: &str,
        rejected: &EpisodeRejected,
    ) -> Result<Vec<QueuedJob>, RerenderError> {
        let catalog = Catalog::load(self.override_dir.as_deref());
        let version = match rejected.prompt_version.as_deref() {
            None | Some("latest") => ReplayVersion::Latest,
            Some(n) => ReplayVersion::Exactly(n.parse().unwrap_or(0)),
        };
        let ctx = self
            .rendering_context(
                &rejected.episode_id,
                &rejected.correlation_id,
                &rejected.rerun.join(", "),
            )
            .await?;
        let mut plan = Vec::new();
        let mut jobs = Vec::new();
        // A prompt named twice runs once (a store transaction refuses two writes to one
        // prompt).
        let mut named = std::collections::HashSet::new();
        for prompt in rejected.rerun.iter().filter(|p| named.insert(p.as_str())) {
            let def = definition(&catalog, prompt, version)?;
            let mut job = self.render(def, &ctx).await?;
            if let Some(model) = &rejected.model {
                job.model.clone_from(model);
            }
            jobs.push(self.queued(&job, event_id)?);
            plan.push((job.prompt_id.clone(), job.prompt_version, job.model.clone()));
        }
        self.store
            .requeue_prompts(&rejected.episode_id, &plan)
            .await?;
        // Once per proposal; the count of these makes the next outcome a new one.
        self.store
            .record_work(
                &approval::rerun_key(&rejected.episode_id, rejected.proposal),
                &rejected.episode_id,
                &serde_json::json!({ "prompts": rejected.rerun, "event": event_id }),
            )
            .await?;
        Ok(jobs)
    }

    /// Whether `rejected` is the decision that stands on the episode's latest proposal (and
    /// its prompts have not been re-run yet): only then do they run again, once.
    async fn rejection_stands(&self, rejected: &EpisodeRejected) -> Result<Standing, PortError> {
        let store = self.store.as_ref();
        let Some((proposal, outcome)) = approval::latest(store, &rejected.episode_id).await? else {
            return Ok(Standing::NotYet);
        };
        if proposal
            .detail
            .get("proposal")
            .and_then(serde_json::Value::as_u64)
            != Some(u64::from(rejected.proposal))
        {
            return Ok(Standing::Superseded);
        }
        let rerun = approval::rerun_key(&rejected.episode_id, rejected.proposal);
        if store.work_result(&rerun).await?.is_some() {
            return Ok(Standing::AlreadyRerun);
        }
        let Some(decision) = approval::decision(store, &rejected.episode_id, &outcome).await?
        else {
            return Ok(Standing::NotYet);
        };
        let this = approval::Decision::Rejected {
            proposal: rejected.proposal,
            note: rejected.note.clone(),
            rerun: rejected.rerun.clone(),
            by: rejected.rejected_by.clone(),
        };
        Ok(
            match serde_json::from_value::<approval::Decision>(decision) {
                Ok(standing) if standing == this => Standing::Yes,
                _ => Standing::OtherDecision,
            },
        )
    }

    async fn handle_rejection(&self, delivery: &Delivery) -> Outcome {
        let (envelope, rejected) = match decode_delivery::<EpisodeRejected>(delivery) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        if rejected.rerun.is_empty() {
            return Outcome::nothing();
        }
        match self.rejection_stands(&rejected).await {
            Ok(Standing::Yes) => {}
            // The publisher records the rejection from the same event: wait for it a little.
            Ok(Standing::NotYet) if delivery.attempt < 5 => {
                return Outcome::Retry {
                    delay: std::time::Duration::from_secs(2),
                    reason: "waiting for the publisher to record the rejection".into(),
                };
            }
            Ok(standing) => {
                tracing::warn!(
                    episode_id = %rejected.episode_id,
                    proposal = rejected.proposal,
                    ?standing,
                    "rejection not acted on: another decision stands, or a newer proposal exists"
                );
                return Outcome::nothing();
            }
            Err(e) => return retry_on_store_error(delivery.attempt, &e),
        }
        match self.rerun(&envelope.id, &rejected).await {
            Ok(jobs) => Outcome::Done {
                emit: Vec::new(),
                jobs,
            },
            Err(RerenderError::Store(e)) => retry_on_store_error(delivery.attempt, &e),
            // The catalog cannot render what the person asked for: said where they look.
            Err(e) => {
                let reason = format!(
                    "proposal {} rejected, but its prompts cannot run again: {e}",
                    rejected.proposal
                );
                let _ = self
                    .store
                    .step_finished(
                        &rejected.episode_id,
                        "approve",
                        StepStatus::Running,
                        Some(&reason),
                    )
                    .await;
                Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason,
                }
            }
        }
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
        let def = definition(&catalog, &failed.prompt_id, version)?;
        let ctx = self
            .rendering_context(
                &failed.episode_id,
                &failed.correlation_id,
                &failed.prompt_id,
            )
            .await?;
        Ok(self.render(def, &ctx).await?)
    }

    /// What the episode's prompts are rendered with, for rendering `prompts` again: its
    /// stored transcript must exist.
    async fn rendering_context(
        &self,
        episode_id: &str,
        correlation_id: &str,
        prompts: &str,
    ) -> Result<EpisodeContext, RerenderError> {
        let transcript = self
            .store
            .artifacts(episode_id)
            .await?
            .remove("transcript")
            .ok_or_else(|| RerenderError::NoTranscript {
                episode: episode_id.to_owned(),
                prompt: prompts.to_owned(),
            })?;
        Ok(self
            .context(episode_id, correlation_id, &transcript)
            .await?)
    }
}

/// The catalog's definition of `prompt`, at `version` when one is asked for.
fn definition<'a>(
    catalog: &'a Catalog,
    prompt: &str,
    version: ReplayVersion,
) -> Result<&'a catalog::PromptDefinition, RerenderError> {
    let def = catalog
        .prompts
        .get(prompt)
        .ok_or_else(|| RerenderError::NotInCatalog {
            prompt: prompt.to_owned(),
        })?;
    match version {
        ReplayVersion::Exactly(want) if want != def.version => {
            Err(RerenderError::VersionNotInCatalog {
                prompt: def.id.clone(),
                have: def.version,
                want,
            })
        }
        _ => Ok(def),
    }
}

#[async_trait]
impl MessageHandler for DispatchHandler {
    fn name(&self) -> &'static str {
        "prompt-dispatcher"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let rejection = EventEnvelope::from_json(&delivery.body)
            .is_ok_and(|e| e.detail_type == EpisodeRejected::DETAIL_TYPE);
        if rejection {
            return self.handle_rejection(delivery).await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context(language: &str) -> EpisodeContext {
        EpisodeContext {
            episode_id: "ep-1".into(),
            correlation_id: "c".into(),
            title: "folge-12.wav".into(),
            transcript: Transcript {
                language: language.into(),
                duration_seconds: 754.0,
                engine: "ctranslate2".into(),
                model: "base".into(),
                segments: Vec::new(),
            },
        }
    }

    #[test]
    fn prompts_are_told_the_transcripts_language() {
        let catalog = Catalog::load(None);
        let summary = &catalog.prompts["summary"];
        let german = catalog::render(&summary.template, &context("de").values());
        assert!(
            german.contains("Write in\nGerman (de), the language"),
            "{german}"
        );
        // Every variable a template may use has a value.
        let values = context("de").values();
        for var in catalog::VARIABLES {
            assert!(values.contains_key(var), "{var}");
        }
        // A language outside ISO 639-1 (Whisper's `haw`) is named by its code.
        let hawaiian =
            catalog::render("{{language_name}} ({{language}})", &context("haw").values());
        assert_eq!(hawaiian, "haw (haw)");
    }

    #[test]
    fn a_title_holding_template_markers_is_sent_as_text() {
        let mut ctx = context("en");
        ctx.title = "{{transcript}}.mp3 {{title}} {{language".into();
        ctx.transcript.segments = vec![podflow_core::transcript::TranscriptSegment {
            start: 0.0,
            end: 2.0,
            speaker: None,
            text: "WORDS-SAID-ONCE".into(),
            words: Vec::new(),
        }];
        let catalog = Catalog::load(None);
        for def in catalog.prompts.values() {
            let input = prompt_input(def, &ctx);
            let sent = input.user_with(&input.transcript);
            let slots = catalog::template_variables(&def.template)
                .iter()
                .filter(|v| *v == "transcript")
                .count();
            assert_eq!(
                sent.matches("WORDS-SAID-ONCE").count(),
                slots,
                "{}: {sent}",
                def.id
            );
            if catalog::template_variables(&def.template)
                .iter()
                .any(|v| v == "title")
            {
                assert!(
                    sent.contains("{{transcript}}.mp3 {{title}} {{language"),
                    "{}: {sent}",
                    def.id
                );
            }
        }
    }
}
