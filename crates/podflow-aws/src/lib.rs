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

/// The SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` when set).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A failed SDK call, classified and described in words: "<what>: <code> (<message>)".
/// (`SdkError` is one type shared by every AWS SDK crate.)
fn sdk_failure<E>(
    what: &str,
    error: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> (Transience, String)
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code();
    let message = error
        .message()
        .map_or_else(|| DisplayErrorContext(error).to_string(), str::to_owned);
    (
        failure_kind(code, status),
        format!("{what}: {} ({message})", code.unwrap_or("no answer")),
    )
}

/// The error code and HTTP status of a failed AWS call, for classifying it.
fn failure_kind(code: Option<&str>, status: Option<u16>) -> Transience {
    let throttled = code.is_some_and(|c| {
        c.contains("Throttl")
            || c == "TooManyRequestsException"
            || c == "RequestLimitExceeded"
            // Transcribe's "too many jobs at once".
            || c == "LimitExceededException"
    });
    match status {
        _ if throttled => Transience::Transient,
        Some(s) if s == 429 || s >= 500 => Transience::Transient,
        // No response at all: a network problem or a timeout.
        None => Transience::Transient,
        Some(_) => Transience::Permanent,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transience {
    Transient,
    Permanent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_5xx_and_network_errors_are_transient() {
        assert_eq!(
            failure_kind(Some("ThrottledException"), Some(400)),
            Transience::Transient
        );
        assert_eq!(failure_kind(None, Some(503)), Transience::Transient);
        assert_eq!(failure_kind(None, None), Transience::Transient);
        assert_eq!(
            failure_kind(Some("NotFound"), Some(404)),
            Transience::Permanent
        );
        assert_eq!(
            failure_kind(Some("AuthorizationError"), Some(403)),
            Transience::Permanent
        );
    }
}
