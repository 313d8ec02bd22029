//! bedrock-invoker: drains the FIFO prompt queue. Each PromptJob is run once: a job whose
//! prompt already completed at its version is skipped. Failures are classified — throttled
//! and transient ones retry with exponential backoff and full jitter (honouring
//! Retry-After), permanent ones fail at once — and after the last attempt the message goes
//! to the DLQ together with a PromptFailed event that says why.

pub mod bedrock;
pub mod chunking;
pub mod llm;
pub mod openai;
pub mod ratelimit;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use llm::{ChatRequest, ChatResponse, LlmClient};
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, PortError, PromptInput,
    PromptStatus, PromptUpdate,
    content::sha256_hex,
    handling::{backoff, retry_on_store_error},
};
use podflow_events::{
    BlobRef, EventEnvelope, PromptCompleted, PromptFailed, PromptJob, SCHEMA_VERSION,
};
use ratelimit::{Throttle, estimate_tokens};

/// The map step of map-reduce over a long transcript.
const MAP_SYSTEM: &str =
    "You take notes on one part of a podcast transcript for a later writing step.";
const MAP_INSTRUCTIONS: &str = "Take detailed notes on this part of a podcast transcript: every topic, fact, name and number, who said what, and the [HH:MM:SS] times where they appear. Notes only, no introduction.";
const MAP_MAX_TOKENS: u32 = 700;

/// Builds the configured LLM backend: `openai` (any OpenAI-compatible server at `url`) or
/// `bedrock` (Converse, with AWS credentials and region from the environment).
pub async fn llm_backend(
    provider: &str,
    url: &str,
    api_key: Option<String>,
    timeout: Duration,
) -> Result<Arc<dyn LlmClient>, String> {
    match provider {
        "bedrock" => Ok(Arc::new(bedrock::BedrockConverse::from_env(timeout).await)),
        "openai" => Ok(Arc::new(openai::OpenAiCompatible::new(
            url, api_key, timeout,
        ))),
        other => Err(format!(
            "PODFLOW_LLM_PROVIDER `{other}` is not known; use `openai` (any OpenAI-compatible server) or `bedrock`"
        )),
    }
}

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
    pub throttle: Arc<Throttle>,
    pub retry: RetryPolicy,
}

impl InvokeHandler {
    /// One call, after waiting for the model's rate limits.
    async fn call(
        &self,
        model: &str,
        system: &str,
        user: &str,
        max_tokens: u32,
        temperature: f32,
    ) -> Result<ChatResponse, PortError> {
        let tokens = estimate_tokens(system) + estimate_tokens(user) + max_tokens;
        let waited = self.throttle.acquire(model, tokens).await;
        if waited > Duration::from_millis(100) {
            tracing::debug!(model, waited_ms = waited.as_millis() as u64, "rate limit");
        }
        let request = ChatRequest {
            model: model.to_owned(),
            system: system.to_owned(),
            user: user.to_owned(),
            max_tokens,
            temperature,
        };
        self.llm.chat(&request).await
    }

    /// The prompt's answer: one call when the transcript fits the model's context; otherwise
    /// map-reduce — notes on each part of the transcript (stored by content, so a retry does
    /// not redo finished parts), then the prompt over the notes. Nothing is truncated.
    async fn answer(
        &self,
        job: &PromptJob,
        input: &PromptInput,
    ) -> Result<Result<ChatResponse, PortError>, PortError> {
        let context = self.throttle.limits(&job.model).context_tokens;
        let fixed = estimate_tokens(&input.system) + estimate_tokens(&input.user) + job.max_tokens;
        let overhead =
            estimate_tokens(MAP_SYSTEM) + estimate_tokens(MAP_INSTRUCTIONS) + MAP_MAX_TOKENS;
        if fixed >= context || overhead >= context {
            return Ok(Err(PortError::input(format!(
                "prompt {} v{} does not fit model {} ({context} context tokens) even without the transcript; raise context_tokens in PODFLOW_MODEL_LIMITS or lower max_tokens",
                job.prompt_id, job.prompt_version, job.model
            ))));
        }
        let (mut tokens_in, mut tokens_out) = (0u32, 0u32);
        let mut material = input.transcript.clone();
        let mut condensed = false;
        // Each pass shrinks the material about tenfold; three cover any episode.
        for _ in 0..3 {
            if fixed + estimate_tokens(&material) <= context {
                break;
            }
            let chunks = chunking::split_for_context(&material, context - overhead);
            let mut notes = Vec::with_capacity(chunks.len());
            for (i, chunk) in chunks.iter().enumerate() {
                let key = format!(
                    "{}.notes/{}.md",
                    job.output_key,
                    &sha256_hex(chunk.as_bytes())[..16]
                );
                let stored = BlobRef {
                    bucket: job.input.bucket.clone(),
                    key: key.clone(),
                    size: 0,
                    sha256: String::new(),
                };
                if let Ok(bytes) = self.blobs.get(&stored).await {
                    notes.push(String::from_utf8_lossy(&bytes).into_owned());
                    continue;
                }
                let user = format!(
                    "{MAP_INSTRUCTIONS}\n\nPart {} of {}:\n\n{chunk}",
                    i + 1,
                    chunks.len()
                );
                match self
                    .call(&job.model, MAP_SYSTEM, &user, MAP_MAX_TOKENS, 0.2)
                    .await
                {
                    Ok(a) => {
                        tokens_in += a.input_tokens;
                        tokens_out += a.output_tokens;
                        self.blobs.put(&key, a.text.clone().into_bytes()).await?;
                        notes.push(a.text);
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            material = notes.join("\n\n");
            condensed = true;
        }
        let transcript = if condensed {
            format!(
                "(The transcript was too long to send whole; these are notes on it, part by part, in order.)\n\n{material}"
            )
        } else {
            material
        };
        let user = input.user_with(&transcript);
        Ok(self
            .call(
                &job.model,
                &input.system,
                &user,
                job.max_tokens,
                job.temperature,
            )
            .await
            .map(|a| ChatResponse {
                text: a.text,
                input_tokens: a.input_tokens + tokens_in,
                output_tokens: a.output_tokens + tokens_out,
            }))
    }

    fn failed(job: &PromptJob, attempt: u32, err: &PortError) -> EventEnvelope {
        EventEnvelope::wrap(&PromptFailed {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: job.episode_id.clone(),
            correlation_id: job.correlation_id.clone(),
            prompt_id: job.prompt_id.clone(),
            prompt_version: job.prompt_version,
            model: job.model.clone(),
            reason: err.report(),
            kind: err.failure_kind(),
            attempts: attempt.max(1),
        })
    }

    async fn run(
        &self,
        job: &PromptJob,
        attempt: u32,
    ) -> Result<Result<EventEnvelope, PortError>, PortError> {
        let input: PromptInput = match serde_json::from_slice(&self.blobs.get(&job.input).await?) {
            Ok(i) => i,
            Err(e) => {
                return Ok(Err(PortError::input(format!(
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
        let answer = match self.answer(job, &input).await? {
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
        podflow_core::crash::point("invoker.after_completed");
        Ok(Ok(Self::completed(
            job,
            output,
            (answer.input_tokens, answer.output_tokens),
            attempt,
        )))
    }

    /// The announcement of the job's prompt if the store says it completed already.
    async fn completed_before(&self, job: &PromptJob) -> Result<Option<EventEnvelope>, PortError> {
        let states = self.store.prompts(&job.episode_id).await?;
        Ok(states
            .iter()
            .find(|p| {
                p.prompt_id == job.prompt_id
                    && p.prompt_version == job.prompt_version
                    && p.status == PromptStatus::Completed
            })
            .and_then(|done| {
                Some(Self::completed(
                    job,
                    done.output.clone()?,
                    (done.input_tokens, done.output_tokens),
                    done.attempts,
                ))
            }))
    }

    /// Records a change of the job's prompt; a store that fails retries the delivery.
    async fn update(
        &self,
        job: &PromptJob,
        update: &PromptUpdate,
        attempt: u32,
    ) -> Result<(), Outcome> {
        self.store
            .update_prompt(&job.episode_id, &job.prompt_id, update)
            .await
            .map_err(|e| retry_on_store_error(attempt, &e))
    }

    /// Ends the prompt as failed: recorded, announced with `PromptFailed`, dead-lettered.
    async fn fail(&self, job: &PromptJob, attempt: u32, err: &PortError) -> Outcome {
        let update = PromptUpdate::Failed {
            attempt,
            error: err.report(),
        };
        if let Err(retry) = self.update(job, &update, attempt).await {
            return retry;
        }
        tracing::warn!(episode = %job.episode_id, prompt = %job.prompt_id, attempt, error = %err.report(), "prompt failed");
        Outcome::DeadLetter {
            emit: vec![Self::failed(job, attempt, err)],
            reason: err.report(),
        }
    }

    /// `PromptCompleted`, with an id of the prompt and its version: announcing the same
    /// completion again gives the same event, which the local bus stores once.
    fn completed(
        job: &PromptJob,
        output: BlobRef,
        (input_tokens, output_tokens): (u32, u32),
        attempts: u32,
    ) -> EventEnvelope {
        let mut envelope = EventEnvelope::wrap(&PromptCompleted {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: job.episode_id.clone(),
            correlation_id: job.correlation_id.clone(),
            prompt_id: job.prompt_id.clone(),
            prompt_version: job.prompt_version,
            model: job.model.clone(),
            output,
            input_tokens,
            output_tokens,
            attempts: attempts.max(1),
        });
        envelope.id = format!(
            "{}:prompt:{}:v{}:completed",
            job.episode_id, job.prompt_id, job.prompt_version
        );
        envelope
    }
}

#[async_trait]
impl MessageHandler for InvokeHandler {
    fn name(&self) -> &'static str {
        "bedrock-invoker"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let job = match job_of(delivery) {
            Ok(job) => job,
            Err(dead_letter) => return dead_letter,
        };
        let attempt = delivery.attempt;
        // Already done: never run a prompt twice, but announce it again from the store; the
        // first announcement may have been lost after the store write.
        match self.completed_before(&job).await {
            Ok(Some(completed)) => return Outcome::done(vec![completed]),
            Ok(None) => {}
            Err(e) => return retry_on_store_error(attempt, &e),
        }
        let err = match self.run(&job, attempt).await {
            Err(e) => return retry_on_store_error(attempt, &e),
            Ok(Ok(completed)) => return Outcome::done(vec![completed]),
            Ok(Err(err)) => err,
        };
        if !err.is_retryable() || attempt >= self.retry.max_attempts {
            return self.fail(&job, attempt, &err).await;
        }
        let update = PromptUpdate::Retrying {
            attempt,
            error: err.report(),
        };
        if let Err(retry) = self.update(&job, &update, attempt).await {
            return retry;
        }
        let jittered = backoff(
            attempt,
            self.retry.base,
            self.retry.cap,
            rand::random::<f64>(),
        );
        let delay = err
            .retry_after()
            .map_or(jittered, |wait| jittered.max(wait));
        Outcome::Retry {
            delay,
            reason: err.report(),
        }
    }

    /// A job whose receives are used up fails its prompt with `PromptFailed`, unless the
    /// prompt completed after all (then that is announced).
    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        let job = match job_of(delivery) {
            Ok(job) => job,
            Err(dead_letter) => return dead_letter,
        };
        match self.completed_before(&job).await {
            Ok(Some(completed)) => Outcome::done(vec![completed]),
            Ok(None) => {
                self.fail(&job, delivery.attempt, &PortError::transient(reason))
                    .await
            }
            Err(e) => retry_on_store_error(delivery.attempt, &e),
        }
    }
}

/// The job a delivery carries, or the dead letter that says why it carries none.
fn job_of(delivery: &Delivery) -> Result<PromptJob, Outcome> {
    let dead_letter = |reason| Outcome::DeadLetter {
        emit: Vec::new(),
        reason,
    };
    match serde_json::from_str::<PromptJob>(&delivery.body) {
        Ok(job) if job.schema_version.split('.').next() == Some("1") => Ok(job),
        Ok(job) => Err(dead_letter(format!(
            "PromptJob schema_version `{}` is not supported (this build reads 1.x)",
            job.schema_version
        ))),
        Err(e) => Err(dead_letter(format!("not a PromptJob: {e}"))),
    }
}
