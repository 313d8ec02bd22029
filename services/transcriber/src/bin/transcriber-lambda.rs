//! transcriber on Lambda: the target of the EpisodeUploaded and Transcribe state-change
//! rules. Amazon Transcribe does the work (`PODFLOW_TRANSCRIBE_LANGUAGE`, default en-US),
//! with speaker labels, outputs in the episode bucket. (Locally the `transcriber` binary
//! runs whisper.cpp; this entry point links none of it.)
use std::sync::Arc;

use podflow_aws::transcribe::TranscribeJobs;
use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::{AwsWiring, optional_env};
use transcriber::batch::BatchTranscriberHandler;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    let language = optional_env("PODFLOW_TRANSCRIBE_LANGUAGE").unwrap_or_else(|| "en-US".into());
    let handler = BatchTranscriberHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        jobs: Arc::new(TranscribeJobs::new(&aws.config, &aws.bucket, &language)),
    };
    Ok(aws.serve_events(PROMPT_QUEUE, Arc::new(handler)).await?)
}
