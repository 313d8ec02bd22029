//! Faithful fakes of paid services, for tests and benchmarks only.
//!
//! [`FakeLlm`] is a chat server on loopback speaking two wire formats: OpenAI-compatible chat
//! completions (choices, usage, `error.message` bodies, `Retry-After` on 429) and Bedrock
//! Runtime's Converse (`output.message.content[].text`, `usage`, errors as
//! `x-amzn-ErrorType` + `{"message"}`, taken from the fixtures in `fixtures/aws/bedrock`).
//! It enforces per-model quotas the way providers describe them — a token bucket per
//! minute for requests and one for tokens (input + `max_tokens`) — and injects faults from a
//! seeded random source: throttling, 5xx, answers slower than the client's timeout, and
//! malformed bodies. It records what it served so tests can prove nothing ran twice.
//!
//! [`slack::FakeSlack`] is an incoming-webhook endpoint that answers like Slack does (and the
//! `views.open` and response_url endpoints an interactive app calls), and
//! [`mediaconvert::FakeMediaConvert`] serves MediaConvert's CreateJob (moto does not).
//!
//! Test support besides the fakes: [`bus::RecordingBus`] keeps what a handler's effects
//! publish, send and dead-letter, [`logs`] keeps the log lines, [`fixtures`] reads the recorded AWS payloads in
//! `fixtures/aws` (this crate), [`moto::MotoServer`] runs the AWS emulator on loopback, and
//! [`store_contract`] is the behaviour every episode store adapter must have, and [`wer`] and
//! [`diarization`] measure a transcript's words and speakers against the truth, and [`media`]
//! joins audio files for test inputs.

pub mod bus;
pub mod diarization;
pub mod fixtures;
pub mod logs;
pub mod media;
pub mod mediaconvert;
pub mod moto;
pub mod slack;
pub mod store_contract;
pub mod wer;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What the fake does.
#[derive(Debug, Clone)]
pub struct FakeLlmConfig {
    /// How long a normal answer takes.
    pub answer_delay: Duration,
    /// Share of requests answered 429 (on top of quota enforcement).
    pub throttle_rate: f64,
    /// Share answered 503.
    pub server_error_rate: f64,
    /// Share answered only after `slow_delay` (longer than the client waits).
    pub slow_rate: f64,
    pub slow_delay: Duration,
    /// Share answered 200 with a truncated body.
    pub malformed_rate: f64,
    /// Models that do not exist (404, like an unknown model id).
    pub unknown_models: Vec<String>,
    /// Per-model quota: (requests per minute, tokens per minute); none means unlimited.
    pub quota: Option<(u32, u32)>,
    /// The length of a quota "minute" (shorter in benchmarks).
    pub minute: Duration,
    pub seed: u64,
    /// Scripted answers: the first `(needle, answer)` whose needle the user message
    /// contains gives the answer; otherwise the fake echoes the message's first line.
    pub scripted: Vec<(String, String)>,
}

impl Default for FakeLlmConfig {
    fn default() -> Self {
        Self {
            answer_delay: Duration::ZERO,
            throttle_rate: 0.0,
            server_error_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_secs(5),
            malformed_rate: 0.0,
            unknown_models: Vec::new(),
            quota: None,
            minute: Duration::from_secs(60),
            seed: 7,
            scripted: Vec::new(),
        }
    }
}

/// Counters of what the fake saw and did.
#[derive(Debug, Default, Clone)]
pub struct FakeLlmStats {
    pub requests: u64,
    pub throttled: u64,
    pub quota_throttled: u64,
    pub server_errors: u64,
    pub slow: u64,
    pub malformed: u64,
    pub unknown_model: u64,
    /// Successful answers per request (keyed by a hash of the messages).
    pub served: HashMap<String, u32>,
    /// Output tokens reported in the usage of all successful answers.
    pub output_tokens: u64,
}

struct Bucket {
    level: f64,
    capacity: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: u32, minute: Duration) -> Self {
        let capacity = f64::from(per_minute);
        Self {
            level: capacity,
            capacity,
            per_sec: capacity / minute.as_secs_f64(),
            at: Instant::now(),
        }
    }
    fn refill(&mut self) {
        let now = Instant::now();
        self.level = (self.level + now.duration_since(self.at).as_secs_f64() * self.per_sec)
            .min(self.capacity);
        self.at = now;
    }
    /// Seconds until `n` are available (0 when they are now).
    fn wait_for(&mut self, n: f64) -> f64 {
        self.refill();
        let n = n.min(self.capacity);
        if self.level >= n {
            0.0
        } else {
            (n - self.level) / self.per_sec
        }
    }
}

struct Shared {
    config: FakeLlmConfig,
    rng: Mutex<StdRng>,
    stats: Mutex<FakeLlmStats>,
    buckets: Mutex<HashMap<String, (Bucket, Bucket)>>,
}

/// A running fake; stops when the test's runtime ends.
pub struct FakeLlm {
    /// The OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    /// The Bedrock Runtime endpoint (`http://127.0.0.1:PORT`).
    pub bedrock_endpoint: String,
    shared: Arc<Shared>,
}

impl FakeLlm {
    pub async fn start(config: FakeLlmConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
            stats: Mutex::new(FakeLlmStats::default()),
            buckets: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/model/{model}/converse", post(converse))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}/v1");
        let bedrock_endpoint = format!("http://{addr}");
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Ok(Self {
            url,
            bedrock_endpoint,
            shared,
        })
    }

    pub fn stats(&self) -> FakeLlmStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

/// Tokens as the fake counts them: a quarter of the characters of every message, rounded
/// up, plus `max_tokens` (reserved up front, as Bedrock does).
pub fn request_tokens(body: &Value) -> u32 {
    let chars: usize = body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x["content"].as_str())
                .map(|c| c.chars().count())
                .sum()
        })
        .unwrap_or(0);
    (chars as u32).div_ceil(4) + body["max_tokens"].as_u64().unwrap_or(0) as u32
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "code": kind}})),
    )
        .into_response()
}

fn bump(shared: &Shared, f: impl FnOnce(&mut FakeLlmStats)) {
    if let Ok(mut s) = shared.stats.lock() {
        f(&mut s);
    }
}

/// What the fake decided to do with a request, before speaking either wire format.
enum Decision {
    Answer { slow: bool },
    Throttle { retry_after: Option<f64> },
    ServerError,
    Malformed,
    UnknownModel,
}

/// Quotas, then injected faults, in that order (a real provider rejects over-quota calls
/// before doing anything else).
fn decide(shared: &Shared, model: &str, tokens: u32) -> Decision {
    let cfg = &shared.config;
    bump(shared, |s| s.requests += 1);
    if cfg.unknown_models.iter().any(|m| m == model) {
        bump(shared, |s| s.unknown_model += 1);
        return Decision::UnknownModel;
    }
    if let Some((rpm, tpm)) = cfg.quota {
        let tokens = f64::from(tokens);
        let wait = {
            let mut all = shared.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let (req, tok) = all
                .entry(model.to_owned())
                .or_insert_with(|| (Bucket::new(rpm, cfg.minute), Bucket::new(tpm, cfg.minute)));
            let wait = req.wait_for(1.0).max(tok.wait_for(tokens));
            if wait == 0.0 {
                req.level -= 1.0;
                tok.level -= tokens.min(tok.capacity);
            }
            wait
        };
        if wait > 0.0 {
            bump(shared, |s| s.quota_throttled += 1);
            return Decision::Throttle {
                retry_after: Some(wait),
            };
        }
    }
    let roll: f64 = shared.rng.lock().map(|mut r| r.random()).unwrap_or(1.0);
    let mut edge = cfg.throttle_rate;
    if roll < edge {
        bump(shared, |s| s.throttled += 1);
        return Decision::Throttle { retry_after: None };
    }
    edge += cfg.server_error_rate;
    if roll < edge {
        bump(shared, |s| s.server_errors += 1);
        return Decision::ServerError;
    }
    edge += cfg.malformed_rate;
    if roll < edge {
        bump(shared, |s| s.malformed += 1);
        return Decision::Malformed;
    }
    edge += cfg.slow_rate;
    let slow = roll < edge;
    if slow {
        // Counted now: the client gives up before the answer is sent.
        bump(shared, |s| s.slow += 1);
    }
    Decision::Answer { slow }
}

/// Sleeps for the answer time and records a served answer; returns the reply text.
async fn answer(shared: &Shared, slow: bool, messages: &Value, user: &str) -> String {
    let cfg = &shared.config;
    tokio::time::sleep(if slow {
        cfg.slow_delay
    } else {
        cfg.answer_delay
    })
    .await;
    let text = cfg
        .scripted
        .iter()
        .find(|(needle, _)| user.contains(needle.as_str()))
        .map_or_else(
            || format!("FAKE ANSWER to: {}", user.lines().next().unwrap_or("")),
            |(_, answer)| answer.clone(),
        );
    if !slow {
        let key = hex::encode(Sha256::digest(messages.to_string().as_bytes()));
        let tokens = u64::from(answer_tokens(&text));
        bump(shared, |s| {
            *s.served.entry(key).or_default() += 1;
            s.output_tokens += tokens;
        });
    }
    text
}

/// Output tokens of an answer, estimated like the input.
fn answer_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4)
}

fn truncated_json() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (
        StatusCode::OK,
        headers,
        "{\"id\":\"x\",\"choices\":[{\"mess",
    )
        .into_response()
}

/// OpenAI-compatible `POST /v1/chat/completions`.
async fn chat(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("").to_owned();
    let slow = match decide(&shared, &model, request_tokens(&body)) {
        Decision::UnknownModel => {
            return error(
                StatusCode::NOT_FOUND,
                "model_not_found",
                &format!("The model `{model}` does not exist"),
            );
        }
        Decision::Throttle { retry_after } => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "Rate limit reached for requests",
            );
            if let Some(v) =
                retry_after.and_then(|w| HeaderValue::from_str(&format!("{w:.3}")).ok())
            {
                response.headers_mut().insert("retry-after", v);
            }
            return response;
        }
        Decision::ServerError => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "The server is overloaded, try again later",
            );
        }
        Decision::Malformed => return truncated_json(),
        Decision::Answer { slow } => slow,
    };
    let user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|x| x["role"] == "user"))
        .and_then(|x| x["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let text = answer(&shared, slow, &body["messages"], &user).await;
    let prompt_tokens = (user.chars().count() as u32).div_ceil(4);
    Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": answer_tokens(&text), "total_tokens": prompt_tokens + answer_tokens(&text)}
    }))
    .into_response()
}

/// A Bedrock error: status, `x-amzn-ErrorType` and a `{"message"}` body, as the service sends.
fn bedrock_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (status, Json(json!({"message": message}))).into_response();
    let header = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    if let Ok(v) = HeaderValue::from_str(&header) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

/// Tokens of a Converse request, counted like [`request_tokens`].
pub fn converse_tokens(body: &Value) -> u32 {
    let texts = |v: &Value| -> usize {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .flat_map(|m| {
                        m["content"]
                            .as_array()
                            .cloned()
                            .unwrap_or_else(|| vec![m.clone()])
                    })
                    .filter_map(|c| c["text"].as_str().map(|t| t.chars().count()))
                    .sum()
            })
            .unwrap_or(0)
    };
    ((texts(&body["messages"]) + texts(&body["system"])) as u32).div_ceil(4)
        + body["inferenceConfig"]["maxTokens"].as_u64().unwrap_or(0) as u32
}

/// Bedrock Runtime `POST /model/{modelId}/converse`.
async fn converse(
    State(shared): State<Arc<Shared>>,
    Path(model): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let slow = match decide(&shared, &model, converse_tokens(&body)) {
        Decision::UnknownModel => {
            return bedrock_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                "The provided model identifier is invalid.",
            );
        }
        Decision::Throttle { .. } => {
            return bedrock_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            );
        }
        Decision::ServerError => {
            return bedrock_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "Service is unavailable. Try again later.",
            );
        }
        Decision::Malformed => return truncated_json(),
        Decision::Answer { slow } => slow,
    };
    let user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|x| x["role"] == "user"))
        .and_then(|x| x["content"][0]["text"].as_str())
        .unwrap_or("")
        .to_owned();
    let text = answer(&shared, slow, &body["messages"], &user).await;
    let input_tokens = (user.chars().count() as u32).div_ceil(4);
    Json(json!({
        "metrics": {"latencyMs": shared.config.answer_delay.as_millis() as u64},
        "output": {"message": {"content": [{"text": text}], "role": "assistant"}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": input_tokens, "outputTokens": answer_tokens(&text), "totalTokens": input_tokens + answer_tokens(&text)}
    }))
    .into_response()
}
