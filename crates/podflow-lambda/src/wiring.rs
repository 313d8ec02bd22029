//! The AWS adapters a function needs, built from the environment `infra/template.yaml`
//! gives every function.

use std::sync::Arc;

use aws_config::SdkConfig;
use podflow_aws::{
    dynamodb::DynamoEpisodeStore, eventbridge::EventBridgePublisher, s3::S3BlobStore, sqs::SqsQueue,
};
use podflow_core::{BlobStore, EpisodeStore};

use crate::Effects;

/// Whether this process runs inside Lambda (the runtime API is only set there).
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("{0} is not set; deploy with infra/template.yaml, which sets it for every function")]
    Missing(&'static str),
}

fn env(name: &'static str) -> Result<String, WiringError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(WiringError::Missing(name))
}

/// Clients and adapters shared by every invocation of one function instance.
pub struct AwsWiring {
    pub config: SdkConfig,
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// `PODFLOW_BUCKET`: where uploads and outputs live.
    pub bucket: String,
    bus: String,
}

impl AwsWiring {
    /// Reads `PODFLOW_BUCKET`, `PODFLOW_TABLE` and `PODFLOW_EVENT_BUS`.
    pub async fn from_env() -> Result<Self, WiringError> {
        let config = podflow_aws::sdk_config().await;
        let bucket = env("PODFLOW_BUCKET")?;
        let table = env("PODFLOW_TABLE")?;
        let bus = env("PODFLOW_EVENT_BUS")?;
        Ok(Self {
            store: Arc::new(DynamoEpisodeStore::new(&config, &table)),
            blobs: Arc::new(S3BlobStore::new(&config, &bucket, false)),
            bucket,
            config,
            bus,
        })
    }

    /// For an EventBridge rule target: events to the bus, jobs named `job_queue` to
    /// `PODFLOW_PROMPT_QUEUE_URL` (when the function has one), hopeless events to
    /// `PODFLOW_EVENT_DLQ_URL`.
    pub fn event_effects(&self, job_queue: &str) -> Result<Effects, WiringError> {
        let mut queue = SqsQueue::new(&self.config).dead_letters_to(&env("PODFLOW_EVENT_DLQ_URL")?);
        if let Ok(url) = env("PODFLOW_PROMPT_QUEUE_URL") {
            queue = queue.with_queue(job_queue, &url);
        }
        let queue = Arc::new(queue);
        Ok(Effects {
            events: Arc::new(EventBridgePublisher::new(&self.config, &self.bus)),
            jobs: queue.clone(),
            control: Some(queue),
        })
    }

    /// For the prompt queue's consumer: retries delayed on `PODFLOW_PROMPT_QUEUE_URL`,
    /// hopeless jobs to `PODFLOW_PROMPT_DLQ_URL`.
    pub fn queue_effects(&self, job_queue: &str) -> Result<Effects, WiringError> {
        let url = env("PODFLOW_PROMPT_QUEUE_URL")?;
        let queue = Arc::new(
            SqsQueue::new(&self.config)
                .with_queue(job_queue, &url)
                .consuming(&url)
                .dead_letters_to(&env("PODFLOW_PROMPT_DLQ_URL")?),
        );
        Ok(Effects {
            events: Arc::new(EventBridgePublisher::new(&self.config, &self.bus)),
            jobs: queue.clone(),
            control: Some(queue),
        })
    }
}
