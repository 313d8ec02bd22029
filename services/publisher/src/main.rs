//! The publisher service as a standalone local worker over the embedded bus.
use std::sync::Arc;

use clap::Parser;
use podflow_embedded::{Db, FileBlobStore, QueueSpec, Worker};
use publisher::PublishHandler;

#[derive(Parser)]
#[command(about = "podflow publisher: fan-in and EpisodeSummarized")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    let args = Args::parse();
    let db = Db::open(&args.data_dir)?;
    let spec = QueueSpec::inbox("publisher");
    db.declare_queue(&spec)?;
    let handler = PublishHandler {
        store: Arc::new(db.clone()),
        blobs: Arc::new(FileBlobStore::new(&args.data_dir)),
    };
    podflow_embedded::worker::run_until_ctrl_c(Worker::new(db, spec, Arc::new(handler), 1)).await;
    Ok(())
}
