//! bedrock-invoker on Lambda: the consumer of the SQS FIFO prompt queue (partial batch
//! failures), state in DynamoDB, outputs in S3, prompts run by Bedrock Converse.
//! `PODFLOW_INVOKER_INSTANCES` is the event source's maximum concurrency: each instance
//! takes that share of every rate limit in `PODFLOW_MODEL_LIMITS` (or the defaults).
use std::{path::PathBuf, sync::Arc, time::Duration};

use bedrock_invoker::{
    InvokeHandler, RetryPolicy,
    bedrock::BedrockConverse,
    ratelimit::{LimitsConfig, Throttle},
};
use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::{AwsWiring, optional_env, parsed_env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    let limits_file = optional_env("PODFLOW_MODEL_LIMITS").map(PathBuf::from);
    let limits = LimitsConfig::load_or_default(limits_file.as_deref())
        .map_err(|e| anyhow::anyhow!("model limits: {e}"))?
        .shared_by(parsed_env(
            "PODFLOW_INVOKER_INSTANCES",
            1,
            "a whole number",
        )?);
    let retry = RetryPolicy {
        throttle_budget: Duration::from_secs(
            60 * parsed_env("PODFLOW_PROMPT_THROTTLE_BUDGET", 30u64, "whole minutes")?,
        ),
        ..RetryPolicy::default()
    };
    // A record is started only with one call's time (and a margin to record its outcome)
    // left, so a batch never runs into the function's timeout.
    let record_budget = retry.call_time + Duration::from_secs(10);
    let handler = InvokeHandler {
        throttle: Arc::new(Throttle::new(limits, Duration::from_secs(60))),
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        llm: Arc::new(BedrockConverse::from_conf(
            aws_sdk_bedrockruntime::config::Builder::from(&aws.config),
            retry.call_time,
        )),
        retry,
    };
    Ok(aws
        .serve_queue(PROMPT_QUEUE, Arc::new(handler), record_budget)
        .await?)
}
