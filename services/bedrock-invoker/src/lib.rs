//! bedrock-invoker: drains the FIFO prompt queue. Each PromptJob is run once: a job whose
//! prompt already completed at its version is skipped. Failures are classified: transient
//! ones (5xx, timeouts, garbled answers) retry with exponential backoff and full jitter
//! until the attempt budget is spent; throttles slow the model down (see [`ratelimit`]) and
//! retry without spending an attempt, until the throttling time budget is spent; permanent
//! ones fail at once. A failed prompt goes to the DLQ together with a PromptFailed event
//! that says why.

pub mod bedrock;
pub mod chunking;
pub mod llm;
pub mod openai;
pub mod ratelimit;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use llm::{ChatRequest, ChatResponse, LlmClient};
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, ErrorKind, MessageHandler, Outcome, PortError, PromptInput,
    PromptState, PromptStatus, PromptUpdate,
    content::sha256_hex,
    handling::{backoff, retry_on_store_error},
    secret::Secret,
};
use podflow_events::{
    BlobRef, EventEnvelope, PodflowEvent, PromptCompleted, PromptFailed, PromptJob, SCHEMA_VERSION,
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
    api_key: Option<Secret>,
    timeout: Duration,
) -> Result<Arc<dyn LlmClient>, String> {
    match provider {
        "bedrock" => Ok(Arc::new(bedrock::BedrockConverse::from_env(timeout).await)),
        "openai" => {
            // `/chat/completions` is appended to the URL's path: a query would end up before
            // it, and a key in it would travel in every log line of a proxy.
            if reqwest::Url::parse(url).is_ok_and(|u| u.query().is_some()) {
                return Err(format!(
                    "PODFLOW_LLM_URL ({}) has a query; give the base URL only (e.g. https://host/v1), with the key in PODFLOW_LLM_API_KEY",
                    openai::printable_url(url)
                ));
            }
            if api_key.is_some() && !key_may_travel_to(url) {
                return Err(format!(
                    "PODFLOW_LLM_API_KEY is not sent over plain http to another machine ({}): use an https:// URL, or a server on this machine",
                    openai::printable_url(url)
                ));
            }
            Ok(Arc::new(openai::OpenAiCompatible::new(
                url, api_key, timeout,
            )))
        }
        other => Err(format!(
            "PODFLOW_LLM_PROVIDER `{other}` is not known; use `openai` (any OpenAI-compatible server) or `bedrock`"
        )),
    }
}

/// Whether a bearer token may go to `url`: over https, or over plain http only to this
/// machine (where nobody on the network can read it on the way).
fn key_may_travel_to(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Retry policy for prompt calls.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts that failed for real (5xx, timeouts, garbled answers) before the prompt
    /// fails; throttled deliveries do not count.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// How long a prompt may stay throttled, from the first throttle, before it fails.
    pub throttle_budget: Duration,
    /// The longest one LLM call takes (the client's timeout): no call starts with less
    /// than this left before the delivery's deadline.
    pub call_time: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            throttle_budget: Duration::from_secs(30 * 60),
            call_time: Duration::from_secs(60),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
    /// One call, after waiting for the model's rate limits. With a deadline, neither the
    /// wait nor the call may run past it: the call is then deferred (a throttle with the
    /// wait as its retry-after), and the job returns to the queue with that delay.
    async fn call(
        &self,
        request: ChatRequest,
        deadline: Option<Instant>,
    ) -> Result<ChatResponse, PortError> {
        let model = request.model.as_str();
        let tokens =
            estimate_tokens(&request.system) + estimate_tokens(&request.user) + request.max_tokens;
        let latest_start = deadline.map(|d| d.checked_sub(self.retry.call_time).unwrap_or(d));
        if latest_start.is_some_and(|at| at <= Instant::now()) {
            return Err(PortError::throttled(
                format!(
                    "deferred: less than {} s left in this invocation for a call to {model}",
                    self.retry.call_time.as_secs()
                ),
                Some(Duration::ZERO),
            ));
        }
        let waited = match self
            .throttle
            .acquire_before(model, tokens, latest_start)
            .await
        {
            Ok(waited) => waited,
            Err(wait) => {
                return Err(PortError::throttled(
                    format!(
                        "deferred: {model}'s rate limit asks for a {} s wait, past this invocation's deadline",
                        wait.as_secs()
                    ),
                    Some(wait),
                ));
            }
        };
        if waited > Duration::from_millis(100) {
            tracing::debug!(model, waited_ms = waited.as_millis() as u64, "rate limit");
        }
        let answer = self.llm.chat(&request).await;
        match &answer {
            Ok(_) => self.throttle.answered(model),
            Err(e) if matches!(e.kind(), ErrorKind::Throttled { .. }) => {
                self.throttle.throttled(model)
            }
            Err(_) => {}
        }
        answer
    }

    /// The prompt's answer: one call when the transcript fits the model's context; otherwise
    /// map-reduce — notes on each part of the transcript (stored by content, so a retry does
    /// not redo finished parts), then the prompt over the notes. Nothing is truncated.
    async fn answer(
        &self,
        job: &PromptJob,
        input: &PromptInput,
        deadline: Option<Instant>,
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
                let request = ChatRequest {
                    model: job.model.clone(),
                    system: MAP_SYSTEM.to_owned(),
                    user,
                    max_tokens: MAP_MAX_TOKENS,
                    temperature: 0.2,
                };
                match self.call(request, deadline).await {
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
        let request = ChatRequest {
            model: job.model.clone(),
            system: input.system.clone(),
            user: input.user_with(&transcript),
            max_tokens: job.max_tokens,
            temperature: job.temperature,
        };
        Ok(self.call(request, deadline).await.map(|a| ChatResponse {
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
        deadline: Option<Instant>,
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
        let answer = match self.answer(job, &input, deadline).await? {
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

    /// The job's prompt as the store has it.
    async fn state_of(&self, job: &PromptJob) -> Result<Option<PromptState>, PortError> {
        Ok(self
            .store
            .prompts(&job.episode_id)
            .await?
            .into_iter()
            .find(|p| p.prompt_id == job.prompt_id))
    }

    /// The announcement of the job's prompt if the store says it completed already.
    fn completed_before(job: &PromptJob, state: Option<&PromptState>) -> Option<EventEnvelope> {
        let done = state.filter(|p| {
            p.prompt_version == job.prompt_version && p.status == PromptStatus::Completed
        })?;
        Some(Self::completed(
            job,
            done.output.clone()?,
            (done.input_tokens, done.output_tokens),
            done.attempts,
        ))
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

    /// `PromptCompleted`, with an id of the prompt, its version, the model and the output:
    /// announcing the same completion again gives the same event, which the local bus
    /// stores once, while a re-run (a rejected proposal's prompt) is a new event.
    fn completed(
        job: &PromptJob,
        output: BlobRef,
        (input_tokens, output_tokens): (u32, u32),
        attempts: u32,
    ) -> EventEnvelope {
        let run = podflow_core::content::sha256_hex(
            format!("{}:{}", job.model, output.sha256).as_bytes(),
        );
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
            "{}:prompt:{}:v{}:{}:completed",
            job.episode_id,
            job.prompt_id,
            job.prompt_version,
            &run[..12]
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
        let job = match job_of(delivery, self.blobs.bucket()) {
            Ok(job) => job,
            Err(dead_letter) => return dead_letter,
        };
        let state = match self.state_of(&job).await {
            Ok(state) => state,
            Err(e) => return retry_on_store_error(delivery.attempt, &e),
        };
        // Already done: never run a prompt twice, but announce it again from the store; the
        // first announcement may have been lost after the store write.
        if let Some(completed) = Self::completed_before(&job, state.as_ref()) {
            return Outcome::done(vec![completed]);
        }
        // Throttled deliveries are not attempts: this is attempt (deliveries - throttles).
        let throttles = state.as_ref().map_or(0, |s| s.throttles);
        let attempt = delivery.attempt.saturating_sub(throttles).max(1);
        let err = match self.run(&job, attempt, delivery.deadline).await {
            Err(e) => return retry_on_store_error(attempt, &e),
            Ok(Ok(completed)) => return Outcome::done(vec![completed]),
            Ok(Err(err)) => err,
        };
        if matches!(err.kind(), ErrorKind::Throttled { .. }) {
            let since = state
                .and_then(|s| s.throttled_since_ms)
                .unwrap_or_else(now_ms);
            let throttled_for = Duration::from_millis(now_ms().saturating_sub(since).max(0) as u64);
            if throttled_for >= self.retry.throttle_budget {
                let err = PortError::throttled(
                    format!(
                        "still throttled after {} min (the throttling budget, PODFLOW_PROMPT_THROTTLE_BUDGET): {}",
                        throttled_for.as_secs() / 60,
                        err.report()
                    ),
                    None,
                );
                return self.fail(&job, attempt, &err).await;
            }
            let update = PromptUpdate::Throttled {
                attempt: attempt.saturating_sub(1),
                error: err.report(),
            };
            if let Err(retry) = self.update(&job, &update, attempt).await {
                return retry;
            }
            let wait = backoff(
                throttles + 1,
                self.retry.base,
                self.retry.cap,
                rand::random::<f64>(),
            );
            return Outcome::Retry {
                delay: err.retry_after().map_or(wait, |asked| wait.max(asked)),
                reason: err.report(),
            };
        }
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
        let job = match job_of(delivery, self.blobs.bucket()) {
            Ok(job) => job,
            Err(dead_letter) => return dead_letter,
        };
        match self.state_of(&job).await {
            Ok(state) => match Self::completed_before(&job, state.as_ref()) {
                Some(completed) => Outcome::done(vec![completed]),
                None => {
                    let throttles = state.as_ref().map_or(0, |s| s.throttles);
                    let attempt = delivery.attempt.saturating_sub(throttles).max(1);
                    // The queue may not know why the earlier attempts failed (on SQS it
                    // never does); the prompt's record does.
                    let reason = match state.as_ref().and_then(|s| s.last_error.as_deref()) {
                        Some(last) if !reason.contains("last error") => {
                            format!("{reason}; last error: {last}")
                        }
                        _ => reason.to_owned(),
                    };
                    self.fail(&job, attempt, &PortError::transient(reason))
                        .await
                }
            },
            Err(e) => retry_on_store_error(delivery.attempt, &e),
        }
    }
}

/// Why a queued message is refused before anything is read or written. Anyone who can
/// send to the queue can forge a job, so its keys are held to the episode it names: the
/// invoker never reads or overwrites another episode's objects, or another bucket's.
#[derive(Debug, thiserror::Error)]
pub enum JobRefused {
    #[error("not a PromptJob: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("PromptJob schema_version {0} is not supported (this build reads 1.x)")]
    Version(String),
    #[error("PromptJob breaks its schema: {0}")]
    Schema(String),
    #[error("not a PromptJob: {0}")]
    NotAJob(#[source] serde_json::Error),
    #[error(
        "PromptJob for episode {episode}: {field} {key} is outside `{prefix}`; refused without reading or writing anything"
    )]
    OutsideEpisode {
        episode: String,
        field: &'static str,
        key: String,
        prefix: String,
    },
    #[error(
        "PromptJob for episode {episode}: its input is in bucket {found}, not this stack's ({home}); refused without reading or writing anything"
    )]
    ForeignBucket {
        episode: String,
        found: String,
        home: String,
    },
}

/// The job a message body carries, checked: its schema (ids and keys shaped as
/// `podflow_events::names` says), its input and output under
/// `episodes/<episode_id>/prompts/`, and its input in `home_bucket` (the blob store's).
pub fn parse_job(body: &str, home_bucket: Option<&str>) -> Result<PromptJob, JobRefused> {
    let raw: serde_json::Value = serde_json::from_str(body).map_err(JobRefused::NotJson)?;
    let version = raw
        .get("schema_version")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if version.split('.').next() != Some("1") {
        return Err(JobRefused::Version(podflow_events::names::shown(version)));
    }
    if let Some(schema) = podflow_events::schema::validator(PromptJob::DETAIL_TYPE) {
        let errors: Vec<String> = schema
            .iter_errors(&raw)
            .take(5)
            .map(|e| format!("{e} at `{}`", e.instance_path))
            .collect();
        if !errors.is_empty() {
            return Err(JobRefused::Schema(errors.join("; ")));
        }
    }
    let job: PromptJob = serde_json::from_value(raw).map_err(JobRefused::NotAJob)?;
    let prefix = format!("episodes/{}/prompts/", job.episode_id);
    for (field, key) in [
        ("output_key", &job.output_key),
        ("input key", &job.input.key),
    ] {
        if !key.starts_with(&prefix) || podflow_events::names::check_key(key).is_err() {
            return Err(JobRefused::OutsideEpisode {
                episode: job.episode_id.clone(),
                field,
                key: podflow_events::names::shown(key),
                prefix,
            });
        }
    }
    if job.input.bucket.as_deref() != home_bucket {
        let name =
            |b: Option<&str>| b.map_or_else(|| "(none: local)".to_owned(), |b| format!("`{b}`"));
        return Err(JobRefused::ForeignBucket {
            episode: job.episode_id.clone(),
            found: name(job.input.bucket.as_deref()),
            home: name(home_bucket),
        });
    }
    Ok(job)
}

/// The job a delivery carries, or the dead letter that says why it carries none (nothing
/// is emitted: a refused job's episode and prompt are not to be trusted).
fn job_of(delivery: &Delivery, home_bucket: Option<&str>) -> Result<PromptJob, Outcome> {
    parse_job(&delivery.body, home_bucket).map_err(|refused| {
        tracing::warn!(message = %delivery.message_id, reason = %refused, "prompt job refused");
        Outcome::DeadLetter {
            emit: Vec::new(),
            reason: refused.to_string(),
        }
    })
}

#[cfg(test)]
mod key_tests {
    #[test]
    fn a_bearer_token_goes_only_over_https_or_to_this_machine() {
        for ok in [
            "https://api.example.com/v1",
            "http://localhost:11434/v1",
            "http://127.0.0.1:8080/v1",
            "http://[::1]:8080/v1",
        ] {
            assert!(super::key_may_travel_to(ok), "{ok}");
        }
        for refused in [
            "http://api.example.com/v1",
            "http://10.0.0.5:11434/v1",
            "http://localhost.evil.com/v1",
            "http://127.0.0.1@evil.com/v1",
            "ftp://x",
        ] {
            assert!(!super::key_may_travel_to(refused), "{refused}");
        }
    }

    #[tokio::test]
    async fn a_url_with_a_query_is_refused_without_repeating_it() {
        let refused = super::llm_backend(
            "openai",
            "https://llm.example.com/v1?api-key=SECRET",
            None,
            std::time::Duration::from_secs(1),
        )
        .await
        .err()
        .expect("refused");
        assert!(refused.contains("has a query"), "{refused}");
        assert!(refused.contains("https://llm.example.com/v1"), "{refused}");
        assert!(!refused.contains("SECRET"), "{refused}");
    }
}
