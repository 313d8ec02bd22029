//! bedrock-invoker: drains the FIFO prompt queue. Each PromptJob is run once: a job whose
//! prompt already completed at its version is skipped. Failures are classified — throttled
//! and transient ones retry with exponential backoff and full jitter (honouring
//! Retry-After), permanent ones fail at once — and after the last attempt the message goes
//! to the DLQ together with a PromptFailed event that says why.

pub mod llm;
pub mod openai;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use llm::{ChatRequest, LlmClient, LlmError};
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, PromptInput, PromptStatus,
    PromptUpdate, StoreError,
    handling::{backoff, retry_on_store_error},
};
use podflow_events::{EventEnvelope, PromptCompleted, PromptFailed, PromptJob, SCHEMA_VERSION};
/// Retry policy for prompt calls.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

/// The bedrock-invoker service's handler.
pub struct InvokeHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub llm: Arc<dyn LlmClient>,
    pub retry: RetryPolicy,
}

impl InvokeHandler {
    fn failed(job: &PromptJob, attempt: u32, err: &LlmError) -> EventEnvelope {
        EventEnvelope::wrap(&PromptFailed {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: job.episode_id.clone(),
            correlation_id: job.correlation_id.clone(),
            prompt_id: job.prompt_id.clone(),
            prompt_version: job.prompt_version,
            model: job.model.clone(),
            reason: err.to_string(),
            kind: err.kind(),
            attempts: attempt.max(1),
        })
    }

    async fn run(
        &self,
        job: &PromptJob,
        attempt: u32,
    ) -> Result<Result<EventEnvelope, LlmError>, StoreError> {
        let input: PromptInput = match serde_json::from_slice(&self.blobs.get(&job.input).await?) {
            Ok(i) => i,
            Err(e) => {
                return Ok(Err(LlmError::Permanent(format!(
                    "prompt input {} is unreadable: {e}",
                    job.input.key
                ))));
            }
        };
        self.store
            .update_prompt(
                &job.episode_id,
                &job.prompt_id,
                &PromptUpdate::Running { attempt },
            )
            .await?;
        let request = ChatRequest {
            model: job.model.clone(),
            system: input.system,
            user: input.user,
            max_tokens: job.max_tokens,
            temperature: job.temperature,
        };
        let answer = match self.llm.chat(&request).await {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let output = self
            .blobs
            .put(&job.output_key, answer.text.into_bytes())
            .await?;
        self.store
            .update_prompt(
                &job.episode_id,
                &job.prompt_id,
                &PromptUpdate::Completed {
                    attempt,
                    output: output.clone(),
                    input_tokens: answer.input_tokens,
                    output_tokens: answer.output_tokens,
                },
            )
            .await?;
        Ok(Ok(EventEnvelope::wrap(&PromptCompleted {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: job.episode_id.clone(),
            correlation_id: job.correlation_id.clone(),
            prompt_id: job.prompt_id.clone(),
            prompt_version: job.prompt_version,
            model: job.model.clone(),
            output,
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
            attempts: attempt,
        })))
    }
}

#[async_trait]
impl MessageHandler for InvokeHandler {
    fn name(&self) -> &'static str {
        "bedrock-invoker"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let job: PromptJob = match serde_json::from_str::<PromptJob>(&delivery.body) {
            Ok(job) if job.schema_version.split('.').next() == Some("1") => job,
            Ok(job) => {
                return Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason: format!(
                        "PromptJob schema_version `{}` is not supported (this build reads 1.x)",
                        job.schema_version
                    ),
                };
            }
            Err(e) => {
                return Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason: format!("not a PromptJob: {e}"),
                };
            }
        };
        let attempt = delivery.attempt;
        match self.store.prompts(&job.episode_id).await {
            Ok(states) => {
                if states.iter().any(|p| {
                    p.prompt_id == job.prompt_id
                        && p.prompt_version == job.prompt_version
                        && p.status == PromptStatus::Completed
                }) {
                    return Outcome::nothing(); // already done: never run a prompt twice
                }
            }
            Err(e) => return retry_on_store_error(attempt, &e),
        }
        let err = match self.run(&job, attempt).await {
            Err(e) => return retry_on_store_error(attempt, &e),
            Ok(Ok(completed)) => return Outcome::done(vec![completed]),
            Ok(Err(err)) => err,
        };
        let give_up = matches!(err, LlmError::Permanent(_)) || attempt >= self.retry.max_attempts;
        let update = if give_up {
            PromptUpdate::Failed {
                attempt,
                error: err.to_string(),
            }
        } else {
            PromptUpdate::Retrying {
                attempt,
                error: err.to_string(),
            }
        };
        if let Err(e) = self
            .store
            .update_prompt(&job.episode_id, &job.prompt_id, &update)
            .await
        {
            return retry_on_store_error(attempt, &e);
        }
        if give_up {
            tracing::warn!(episode = %job.episode_id, prompt = %job.prompt_id, attempt, error = %err, "prompt failed");
            return Outcome::DeadLetter {
                emit: vec![Self::failed(&job, attempt, &err)],
                reason: err.to_string(),
            };
        }
        let jittered = backoff(
            attempt,
            self.retry.base,
            self.retry.cap,
            rand::random::<f64>(),
        );
        let delay = match &err {
            LlmError::Throttled {
                retry_after: Some(wait),
                ..
            } => jittered.max(*wait),
            _ => jittered,
        };
        Outcome::Retry {
            delay,
            reason: err.to_string(),
        }
    }
}
