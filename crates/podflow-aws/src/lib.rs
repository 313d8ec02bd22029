//! AWS adapters for podflow's ports: [`s3::S3BlobStore`] (blobs and pre-signed links),
//! [`dynamodb::DynamoEpisodeStore`] (episode state: conditional writes, atomic counters),
//! [`eventbridge::EventBridgePublisher`] (events, PutEvents in batches),
//! [`sqs::SqsQueue`] (FIFO jobs, backoff by visibility, dead letters),
//! [`dlq::SqsDeadLetterQueue`] (listing and replaying a dead-letter queue),
//! [`sns::SnsNotifier`] (notifications to an SNS topic), [`mediaconvert::MediaConvertJobs`]
//! (audio-only MP3 jobs, over MediaConvert's REST API), [`transcribe::TranscribeJobs`]
//! (Amazon Transcribe jobs with speaker labels), [`transcribe_output`] (their output JSON as a
//! transcript) and [`secrets`] (a setting read
//! from SSM Parameter Store or Secrets Manager). Tested against moto server on loopback
//! (`tests/moto.rs`).
//!
//! Each adapter takes an `aws_config::SdkConfig`, so Lambda functions load it once from
//! the environment and tests point it at the emulator. MediaConvert, SNS, SSM and Secrets
//! Manager are called through signed HTTPS requests of podflow's own (`signed`: one
//! operation each, where an SDK client would add its whole API to the function's size).

pub mod dlq;
pub mod dynamodb;
pub mod event_replay;
pub mod eventbridge;
pub mod mediaconvert;
pub mod s3;
pub mod secrets;
mod signed;
pub mod sns;
pub mod sqs;
pub mod transcribe;
pub mod transcribe_output;

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use podflow_core::{ErrorKind, PortError};

/// The SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` when set).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A failed SDK call as a [`PortError`]: classified by its code and status, described as
/// "<what>: <code> (<message>)". (`SdkError` is one type shared by every AWS SDK crate.)
fn sdk_failure<E>(
    what: &str,
    error: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> PortError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code();
    let message = error
        .message()
        .map_or_else(|| DisplayErrorContext(error).to_string(), str::to_owned);
    PortError::new(
        failure_kind(code, status),
        format!("{what}: {} ({message})", code.unwrap_or("no answer")),
    )
}

/// What retrying can do about a failed AWS call, from its error code and HTTP status.
fn failure_kind(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    let throttled = code.is_some_and(|c| {
        c.contains("Throttl")
            || c == "TooManyRequestsException"
            || c == "RequestLimitExceeded"
            // Transcribe's "too many jobs at once".
            || c == "LimitExceededException"
    });
    let denied = code.is_some_and(|c| {
        c.contains("AccessDenied") || c.contains("Unauthorized") || c == "AuthorizationError"
    });
    match status {
        _ if throttled => ErrorKind::Throttled { retry_after: None },
        Some(429) => ErrorKind::Throttled { retry_after: None },
        Some(s) if s >= 500 => ErrorKind::Transient,
        // No response at all: a network problem or a timeout.
        None => ErrorKind::Transient,
        Some(401 | 403) => ErrorKind::Setup,
        Some(404) => ErrorKind::NotFound,
        Some(_) if denied => ErrorKind::Setup,
        Some(_) => ErrorKind::Input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_5xx_network_errors_and_refusals_are_told_apart() {
        assert_eq!(
            failure_kind(Some("ThrottledException"), Some(400)),
            ErrorKind::Throttled { retry_after: None }
        );
        assert_eq!(
            failure_kind(None, Some(429)),
            ErrorKind::Throttled { retry_after: None }
        );
        assert_eq!(failure_kind(None, Some(503)), ErrorKind::Transient);
        assert_eq!(failure_kind(None, None), ErrorKind::Transient);
        assert_eq!(
            failure_kind(Some("NotFound"), Some(404)),
            ErrorKind::NotFound
        );
        assert_eq!(
            failure_kind(Some("ValidationError"), Some(400)),
            ErrorKind::Input
        );
        assert_eq!(
            failure_kind(Some("AuthorizationError"), Some(403)),
            ErrorKind::Setup
        );
        assert_eq!(
            failure_kind(Some("AccessDeniedException"), Some(400)),
            ErrorKind::Setup
        );
    }
}
