//! The LLM port, and how failures are classified.

use std::time::Duration;

use async_trait::async_trait;
use podflow_events::FailureKind;
use thiserror::Error;

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

/// A failed call, classified by what retrying can do about it.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum LlmError {
    /// Rate limited; `retry_after` when the provider said how long to wait.
    #[error("throttled: {message}")]
    Throttled {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 5xx, timeouts, connection refused, a garbled answer.
    #[error("{0}")]
    Transient(String),
    /// Validation, access denied, unknown model: retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

impl LlmError {
    pub fn kind(&self) -> FailureKind {
        match self {
            LlmError::Throttled { .. } => FailureKind::Throttled,
            LlmError::Transient(_) => FailureKind::Transient,
            LlmError::Permanent(_) => FailureKind::Permanent,
        }
    }

    /// Classifies an HTTP status the way both OpenAI-compatible servers and Bedrock use them.
    pub fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        match status {
            429 => LlmError::Throttled {
                message,
                retry_after,
            },
            408 | 500..=599 => LlmError::Transient(format!("HTTP {status}: {message}")),
            _ => LlmError::Permanent(format!("HTTP {status}: {message}")),
        }
    }
}

/// A chat-completion backend (OpenAI-compatible locally, Bedrock Converse on AWS).
#[async_trait]
pub trait LlmClient: Send + Sync {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(
            LlmError::from_status(429, "slow".into(), None).kind(),
            FailureKind::Throttled
        );
        assert_eq!(
            LlmError::from_status(503, "x".into(), None).kind(),
            FailureKind::Transient
        );
        assert_eq!(
            LlmError::from_status(408, "x".into(), None).kind(),
            FailureKind::Transient
        );
        assert_eq!(
            LlmError::from_status(400, "x".into(), None).kind(),
            FailureKind::Permanent
        );
        assert_eq!(
            LlmError::from_status(403, "x".into(), None).kind(),
            FailureKind::Permanent
        );
        assert_eq!(
            LlmError::from_status(404, "x".into(), None).kind(),
            FailureKind::Permanent
        );
    }
}
