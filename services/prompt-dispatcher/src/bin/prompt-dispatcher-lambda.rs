//! prompt-dispatcher on Lambda: the target of the EventBridge rule for EpisodeTranscribed;
//! jobs go to the SQS FIFO prompt queue. (Locally the `prompt-dispatcher` binary runs the
//! same handler over the embedded bus; keeping the two entry points apart keeps local-only
//! code out of the deployment package.)
use std::{path::PathBuf, sync::Arc};

use podflow_core::TextEngine;
use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::{AwsWiring, env, optional_env};
use prompt_dispatcher::DispatchHandler;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    let handler = DispatchHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        override_dir: optional_env("PODFLOW_PROMPTS_DIR").map(PathBuf::from),
        default_model: env("PODFLOW_LLM_MODEL")?,
        queue: PROMPT_QUEUE.into(),
        text_engine: TextEngine::from_env()?,
    };
    Ok(aws.serve_events(PROMPT_QUEUE, Arc::new(handler)).await?)
}
