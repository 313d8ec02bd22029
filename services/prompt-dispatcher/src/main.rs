//! The prompt-dispatcher service locally: a worker over the embedded bus turning
//! EpisodeTranscribed into prompt jobs. On Lambda, `prompt-dispatcher-lambda` runs the same
//! handler.
use std::sync::Arc;

use clap::Parser;
use podflow_embedded::{Db, FileBlobStore, QueueSpec, Worker, queue::PROMPT_QUEUE};
use prompt_dispatcher::DispatchHandler;

#[derive(Parser)]
#[command(about = "podflow prompt-dispatcher: EpisodeTranscribed → prompt jobs")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
    #[arg(long, env = "PODFLOW_PROMPTS_DIR")]
    prompts_dir: Option<std::path::PathBuf>,
    #[arg(long, env = "PODFLOW_LLM_MODEL", default_value = "llama3.2")]
    default_model: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    let args = Args::parse();
    let db = Db::open(&args.data_dir)?;
    let spec = QueueSpec::inbox("prompt-dispatcher");
    db.declare_queue(&spec)?;
    db.declare_queue(&QueueSpec::prompts())?;
    let handler = DispatchHandler {
        store: Arc::new(db.clone()),
        blobs: Arc::new(FileBlobStore::new(&args.data_dir)),
        override_dir: args.prompts_dir,
        default_model: args.default_model,
        queue: PROMPT_QUEUE.into(),
    };
    podflow_embedded::worker::run_until_ctrl_c(vec![Worker::new(db, spec, Arc::new(handler), 2)])
        .await;
    Ok(())
}
