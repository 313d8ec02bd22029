//! The bedrock-invoker service locally: a worker on the embedded prompt FIFO queue calling an
//! OpenAI-compatible server or Bedrock. On Lambda, `bedrock-invoker-lambda` drains the SQS
//! FIFO prompt queue with the same handler.
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    let args = Args::parse();
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
