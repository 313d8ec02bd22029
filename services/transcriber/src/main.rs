//! The transcriber service locally: a worker over the embedded bus transcribing with
//! whisper.cpp or CTranslate2. On Lambda, `transcriber-lambda` hands the work to Amazon Transcribe.
use std::sync::Arc;

use clap::Parser;
use podflow_embedded::{Db, FileBlobStore, QueueSpec, Worker};
use transcriber::{
    TranscriberHandler,
    engine::{EngineKind, LocalEngine},
};

#[derive(Parser)]
#[command(about = "podflow transcriber: EpisodeUploaded → transcript and subtitles")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
    /// The local speech engine (default: ctranslate2 where built in, else whisper.cpp).
    #[arg(long, env = "PODFLOW_WHISPER_ENGINE", value_enum)]
    engine: Option<EngineKind>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    let args = Args::parse();
    let db = Db::open(&args.data_dir)?;
    let spec = QueueSpec::inbox("transcriber");
    db.declare_queue(&spec)?;
    let handler = TranscriberHandler {
        store: Arc::new(db.clone()),
        blobs: Arc::new(FileBlobStore::new(&args.data_dir)),
        engine: Arc::new(LocalEngine::new(
            args.engine.unwrap_or_else(EngineKind::default_kind),
            std::env::var_os("PODFLOW_WHISPER_MODEL").map(Into::into),
            args.data_dir.join("models"),
        )?),
    };
    podflow_embedded::worker::run_until_ctrl_c(vec![Worker::new(db, spec, Arc::new(handler), 1)])
        .await;
    Ok(())
}
