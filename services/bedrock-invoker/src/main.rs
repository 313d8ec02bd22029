//! The bedrock-invoker service: a local worker on the prompt FIFO queue, or on Lambda the
//! consumer of the SQS FIFO prompt queue (partial batch failures).
use std::{sync::Arc, time::Duration};

use bedrock_invoker::{
    InvokeHandler, RetryPolicy, llm_backend,
    ratelimit::{LimitsConfig, Throttle},
};
use clap::Parser;
use podflow_embedded::{Db, FileBlobStore, QueueSpec, Worker};

#[derive(Parser)]
#[command(about = "podflow bedrock-invoker: runs prompt jobs against the LLM")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
    /// `openai` (any OpenAI-compatible server) or `bedrock` (Converse).
    #[arg(long, env = "PODFLOW_LLM_PROVIDER", default_value = "openai")]
    llm_provider: String,
    #[arg(
        long,
        env = "PODFLOW_LLM_URL",
        default_value = "http://localhost:11434/v1"
    )]
    llm_url: String,
    #[arg(long, env = "PODFLOW_LLM_API_KEY", hide_env_values = true)]
    llm_api_key: Option<String>,
    /// Per-model rate limits and context sizes (TOML).
    #[arg(long, env = "PODFLOW_MODEL_LIMITS")]
    model_limits: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// On Lambda: how many instances drain the queue at once (the event source's maximum
    /// concurrency); each gets this share of every rate limit.
    #[arg(long, env = "PODFLOW_INVOKER_INSTANCES", default_value_t = 1)]
    instances: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    let args = Args::parse();
    if podflow_lambda::wiring::on_lambda() {
        return lambda(args).await;
    }
    let db = Db::open(&args.data_dir)?;
    let spec = QueueSpec::prompts();
    db.declare_queue(&spec)?;
    let limits = LimitsConfig::load_or_default(args.model_limits.as_deref())
        .map_err(|e| anyhow::anyhow!("model limits: {e}"))?;
    let timeout = Duration::from_secs(300);
    let llm = llm_backend(&args.llm_provider, &args.llm_url, args.llm_api_key, timeout)
        .await
        .map_err(anyhow::Error::msg)?;
    let handler = InvokeHandler {
        throttle: Arc::new(Throttle::new(limits, Duration::from_secs(60))),
        store: Arc::new(db.clone()),
        blobs: Arc::new(FileBlobStore::new(&args.data_dir)),
        llm,
        retry: RetryPolicy::default(),
    };
    podflow_embedded::worker::run_until_ctrl_c(vec![Worker::new(
        db,
        spec,
        Arc::new(handler),
        args.concurrency,
    )])
    .await;
    Ok(())
}

/// On Lambda: the prompt queue's SQS batches, state in DynamoDB, outputs in S3, Bedrock.
async fn lambda(args: Args) -> anyhow::Result<()> {
    let aws = podflow_lambda::wiring::AwsWiring::from_env().await?;
    let limits = LimitsConfig::load_or_default(args.model_limits.as_deref())
        .map_err(|e| anyhow::anyhow!("model limits: {e}"))?
        .shared_by(args.instances);
    let llm = llm_backend("bedrock", "", None, Duration::from_secs(120))
        .await
        .map_err(anyhow::Error::msg)?;
    let handler = InvokeHandler {
        throttle: Arc::new(Throttle::new(limits, Duration::from_secs(60))),
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        llm,
        retry: RetryPolicy::default(),
    };
    let effects = aws.queue_effects(podflow_embedded::queue::PROMPT_QUEUE)?;
    podflow_lambda::run_sqs(Arc::new(handler), Arc::new(effects))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
