//! The AWS adapters a function needs, built from the environment `infra/template.yaml`
//! gives every function.

use std::{sync::Arc, time::Duration};

use aws_config::{
    BehaviorVersion, Region, SdkConfig, environment::EnvironmentVariableCredentialsProvider,
};
use aws_credential_types::provider::SharedCredentialsProvider;
use podflow_aws::{
    dynamodb::DynamoEpisodeStore, eventbridge::EventBridgePublisher, s3::S3BlobStore, sqs::SqsQueue,
};
use podflow_core::{BlobStore, DeliveryCounter, EpisodeStore, MessageHandler, secret::Secret};

use crate::{Effects, EventAttempts};

/// Whether this process runs inside Lambda (the runtime API is only set there).
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum WiringError {
    #[error("{0} is not set; deploy with infra/template.yaml, which sets it for every function")]
    Missing(&'static str),
    #[error(
        "this is a Lambda function's entry point and AWS_LAMBDA_RUNTIME_API is not set; \
         locally, run the service's own binary (or `podflow`) instead"
    )]
    NotOnLambda,
    #[error("{name} is {value:?}, which is not {expected}; fix it in the function's environment")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Why a function stopped: its settings, or the Lambda runtime itself.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Wiring(#[from] WiringError),
    #[error("the Lambda runtime stopped: {0}")]
    Runtime(String),
}

/// A setting the template always gives the function.
pub fn env(name: &'static str) -> Result<String, WiringError> {
    optional_env(name).ok_or(WiringError::Missing(name))
}

/// A setting that may be absent (an empty value counts as absent, as CloudFormation
/// writes an unset parameter as "").
pub fn optional_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A setting that is a secret, or a reference to one (`ssm:NAME`, `secretsmanager:ID`,
/// `file:PATH`):
/// held as a [`Secret`] from the moment it is read, so no log or error can print it.
pub fn secret_env(name: &str) -> Option<Secret> {
    optional_env(name).map(Secret::from)
}

/// A secret setting the template always gives the function.
pub fn required_secret_env(name: &'static str) -> Result<Secret, WiringError> {
    secret_env(name).ok_or(WiringError::Missing(name))
}

/// A number (or other parsed setting) with a default when absent.
pub fn parsed_env<T: std::str::FromStr>(
    name: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, WiringError> {
    parse_setting(name, optional_env(name), default, expected)
}

fn parse_setting<T: std::str::FromStr>(
    name: &'static str,
    value: Option<String>,
    default: T,
    expected: &'static str,
) -> Result<T, WiringError> {
    match value {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| WiringError::Invalid {
            name,
            value,
            expected,
        }),
    }
}

/// The SDK configuration from what Lambda gives every function: `AWS_REGION` and the role's
/// credentials in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`. Built
/// by hand rather than by aws-config's default chain, whose other providers (profile files,
/// SSO, STS web identity, IMDS, ECS) a function never uses and would otherwise carry
/// (cargo-bloat counted 179 KiB of aws-config and 90 KiB of STS code in one function).
/// Clients fill in the rest (HTTPS client, retries, sleep).
pub fn lambda_sdk_config() -> Result<SdkConfig, WiringError> {
    Ok(sdk_config_with(
        Region::new(env("AWS_REGION")?),
        SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
    ))
}

/// [`lambda_sdk_config`]'s configuration from given parts (a test gives its own).
pub fn sdk_config_with(region: Region, credentials: SharedCredentialsProvider) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .build()
}

/// Clients and adapters shared by every invocation of one function instance.
pub struct AwsWiring {
    pub config: SdkConfig,
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// Counts an event's deliveries to a rule target (in the store's table).
    pub deliveries: Arc<dyn DeliveryCounter>,
    /// `PODFLOW_BUCKET`: where uploads and outputs live.
    pub bucket: String,
    bus: String,
}

impl AwsWiring {
    /// Reads `PODFLOW_BUCKET`, `PODFLOW_TABLE` and `PODFLOW_EVENT_BUS`.
    pub fn from_env() -> Result<Self, WiringError> {
        if !on_lambda() {
            return Err(WiringError::NotOnLambda);
        }
        Ok(Self::new(
            lambda_sdk_config()?,
            &env("PODFLOW_BUCKET")?,
            &env("PODFLOW_TABLE")?,
            &env("PODFLOW_EVENT_BUS")?,
            false,
        ))
    }

    /// The adapters over `config`'s account: the bucket, the table and the event bus
    /// (`s3_path_style` for an emulator on loopback, where bucket host names do not resolve).
    pub fn new(
        config: SdkConfig,
        bucket: &str,
        table: &str,
        bus: &str,
        s3_path_style: bool,
    ) -> Self {
        let table = Arc::new(DynamoEpisodeStore::new(&config, table));
        Self {
            store: table.clone(),
            deliveries: table,
            blobs: Arc::new(S3BlobStore::new(&config, bucket, s3_path_style)),
            bucket: bucket.to_owned(),
            config,
            bus: bus.to_owned(),
        }
    }

    /// [`AwsWiring::rule_target_effects`] with `PODFLOW_EVENT_DLQ_URL`,
    /// `PODFLOW_EVENT_MAX_DELIVERIES` and, when the function has one,
    /// `PODFLOW_PROMPT_QUEUE_URL`.
    fn event_effects(&self, job_queue: &str) -> Result<Effects, WiringError> {
        Ok(self.rule_target_effects(
            job_queue,
            &env("PODFLOW_EVENT_DLQ_URL")?,
            optional_env("PODFLOW_PROMPT_QUEUE_URL").as_deref(),
            parsed_env("PODFLOW_EVENT_MAX_DELIVERIES", 0u32, "a whole number")?,
        ))
    }

    /// For an EventBridge rule target: events to the bus, jobs named `job_queue` to
    /// `job_queue_url` (when the function sends any), hopeless events to `event_dlq_url`,
    /// and the last of `max_deliveries` deliveries of an event (1 + the function's
    /// asynchronous retries; 0 to not count) given up on.
    pub fn rule_target_effects(
        &self,
        job_queue: &str,
        event_dlq_url: &str,
        job_queue_url: Option<&str>,
        max_deliveries: u32,
    ) -> Effects {
        let mut queue = SqsQueue::new(&self.config).dead_letters_to(event_dlq_url);
        if let Some(url) = job_queue_url {
            queue = queue.with_queue(job_queue, url);
        }
        let queue = Arc::new(queue);
        Effects {
            events: Arc::new(EventBridgePublisher::new(&self.config, &self.bus)),
            jobs: queue.clone(),
            control: Some(queue),
            max_receives: None,
            record_budget: None,
            metrics: Some(Arc::new(crate::metrics::StdoutMetrics)),
            event_attempts: (max_deliveries > 0).then(|| EventAttempts {
                counter: self.deliveries.clone(),
                max: max_deliveries,
            }),
        }
    }

    /// [`AwsWiring::consumer_effects`] with `PODFLOW_PROMPT_QUEUE_URL`,
    /// `PODFLOW_PROMPT_DLQ_URL` and `PODFLOW_PROMPT_MAX_RECEIVE_COUNT`.
    fn queue_effects(&self, job_queue: &str) -> Result<Effects, WiringError> {
        Ok(self.consumer_effects(
            job_queue,
            &env("PODFLOW_PROMPT_QUEUE_URL")?,
            &env("PODFLOW_PROMPT_DLQ_URL")?,
            parsed_env("PODFLOW_PROMPT_MAX_RECEIVE_COUNT", 0u32, "a whole number")?,
        ))
    }

    /// For the consumer of the queue `job_queue` at `url`: retries delayed there, hopeless
    /// jobs to `dlq_url`, the last of `max_receives` receives (the queue's redrive policy;
    /// 0 for none) given up on.
    pub fn consumer_effects(
        &self,
        job_queue: &str,
        url: &str,
        dlq_url: &str,
        max_receives: u32,
    ) -> Effects {
        let queue = Arc::new(
            SqsQueue::new(&self.config)
                .with_queue(job_queue, url)
                .consuming(url)
                .dead_letters_to(dlq_url),
        );
        Effects {
            events: Arc::new(EventBridgePublisher::new(&self.config, &self.bus)),
            jobs: queue.clone(),
            control: Some(queue),
            max_receives: Some(max_receives).filter(|max| *max > 0),
            record_budget: None,
            metrics: Some(Arc::new(crate::metrics::StdoutMetrics)),
            event_attempts: None,
        }
    }

    /// Runs `handler` as an EventBridge rule target (see [`AwsWiring::event_effects`]) until
    /// Lambda ends the process.
    pub async fn serve_events(
        &self,
        job_queue: &str,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<(), ServeError> {
        let effects = Arc::new(self.event_effects(job_queue)?);
        crate::run_eventbridge(handler, effects)
            .await
            .map_err(|e| ServeError::Runtime(e.to_string()))
    }

    /// Runs `handler` as the consumer of the SQS queue `job_queue` (see
    /// [`AwsWiring::queue_effects`]) until Lambda ends the process.
    /// Each record is started only while `record_budget` (its longest run) is left before
    /// the invocation's deadline.
    pub async fn serve_queue(
        &self,
        job_queue: &str,
        handler: Arc<dyn MessageHandler>,
        record_budget: Duration,
    ) -> Result<(), ServeError> {
        let effects = Arc::new(Effects {
            record_budget: Some(record_budget),
            ..self.queue_effects(job_queue)?
        });
        crate::run_sqs(handler, effects)
            .await
            .map_err(|e| ServeError::Runtime(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_is_parsed_or_defaults_and_a_bad_one_names_itself() {
        assert_eq!(parse_setting("N", None, 7u32, "a count"), Ok(7));
        assert_eq!(
            parse_setting("N", Some(" 12 ".into()), 7u32, "a count"),
            Ok(12)
        );
        let err = parse_setting(
            "PODFLOW_INVOKER_INSTANCES",
            Some("two".into()),
            1u32,
            "a count",
        )
        .expect_err("not a number");
        let text = err.to_string();
        assert!(text.contains("PODFLOW_INVOKER_INSTANCES"), "{text}");
        assert!(text.contains("\"two\""), "{text}");
    }
}
