//! The transcriber service: a local worker over the embedded bus (whisper.cpp), or on
//! Lambda the target of the EpisodeUploaded and Transcribe state-change rules (Amazon
//! Transcribe does the work).
use std::sync::Arc;

use clap::Parser;
use podflow_embedded::{Db, FileBlobStore, QueueSpec, Worker};
use transcriber::{TranscriberHandler, batch::BatchTranscriberHandler, whisper::WhisperEngine};

#[derive(Parser)]
#[command(about = "podflow transcriber: EpisodeUploaded → transcript and subtitles")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    if podflow_lambda::wiring::on_lambda() {
        return lambda().await;
    }
    let args = Args::parse();
    let db = Db::open(&args.data_dir)?;
    let spec = QueueSpec::inbox("transcriber");
    db.declare_queue(&spec)?;
    let handler = TranscriberHandler {
        store: Arc::new(db.clone()),
        blobs: Arc::new(FileBlobStore::new(&args.data_dir)),
        engine: Arc::new(WhisperEngine::new(
            std::env::var_os("PODFLOW_WHISPER_MODEL").map(Into::into),
            args.data_dir.join("models"),
        )),
    };
    podflow_embedded::worker::run_until_ctrl_c(vec![Worker::new(db, spec, Arc::new(handler), 1)])
        .await;
    Ok(())
}

/// On Lambda: Amazon Transcribe (`PODFLOW_TRANSCRIBE_LANGUAGE`, default en-US) with speaker
/// labels, outputs in the episode bucket.
async fn lambda() -> anyhow::Result<()> {
    let aws = podflow_lambda::wiring::AwsWiring::from_env().await?;
    let language =
        std::env::var("PODFLOW_TRANSCRIBE_LANGUAGE").unwrap_or_else(|_| "en-US".to_owned());
    let handler = BatchTranscriberHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        jobs: Arc::new(podflow_aws::transcribe::TranscribeJobs::new(
            &aws.config,
            &aws.bucket,
            &language,
        )),
    };
    let effects = aws.event_effects(podflow_embedded::queue::PROMPT_QUEUE)?;
    podflow_lambda::run_eventbridge(Arc::new(handler), Arc::new(effects))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
