//! The LLM port, and how HTTP failures are classified.

use std::time::Duration;

use async_trait::async_trait;
use podflow_core::PortError;

/// One chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub system: String,
    pub user: String,
    pub max_tokens: u32,
    pub temperature: f32,
}

/// The model's answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// Classifies an HTTP status the way both OpenAI-compatible servers and Bedrock use them:
/// 429 is a throttle, 408 and 5xx are transient, 401/403/404 name a setup problem (a key,
/// a permission, a model that is not there) and any other refusal is the request's fault.
pub fn status_error(status: u16, message: String, retry_after: Option<Duration>) -> PortError {
    match status {
        429 => PortError::throttled(format!("throttled: {message}"), retry_after),
        408 | 500..=599 => PortError::transient(format!("HTTP {status}: {message}")),
        401 | 403 | 404 => PortError::setup(format!("HTTP {status}: {message}")),
        _ => PortError::input(format!("HTTP {status}: {message}")),
    }
}

/// The most bytes of an answer read from a model: a chat answer is a few to tens of KiB
/// (its `max_tokens` bounds it), so a body past this is refused unread, whatever sent it.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The error for an answer over [`MAX_ANSWER_BYTES`] from `from`: transient, as a garbled
/// answer is (a retry may get a well-formed one; the attempt budget ends a repeat).
pub fn answer_too_large(from: &str) -> PortError {
    PortError::transient(format!(
        "the answer from {from} is larger than {} MiB; refused without reading the rest",
        MAX_ANSWER_BYTES >> 20
    ))
}

/// A chat-completion backend (OpenAI-compatible locally, Bedrock Converse on AWS).
#[async_trait]
pub trait LlmClient: Send + Sync {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, PortError>;
}

#[cfg(test)]
mod tests {
    use podflow_core::ErrorKind;

    use super::*;

    #[test]
    fn statuses_are_classified() {
        let kind = |status| status_error(status, "said".into(), None).kind();
        let wait = Some(Duration::from_secs(3));
        let throttled = status_error(429, "slow".into(), wait);
        assert_eq!(throttled.retry_after(), wait);
        assert!(throttled.to_string().starts_with("throttled: "));
        assert_eq!(kind(503), ErrorKind::Transient);
        assert_eq!(kind(408), ErrorKind::Transient);
        assert_eq!(kind(400), ErrorKind::Input);
        assert_eq!(kind(403), ErrorKind::Setup);
        assert_eq!(kind(404), ErrorKind::Setup);
    }
}
