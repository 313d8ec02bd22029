//! The ingest service locally: validates and records files, publishing EpisodeUploaded on
//! the embedded bus for the other services' workers. On Lambda: the target of the rule for
//! S3 "Object Created" events under `incoming/`.
use std::sync::Arc;

use clap::Parser;
use ingest::{IngestService, upload::UploadHandler};
use podflow_embedded::{Db, Ffmpeg, FileBlobStore};

#[derive(Parser)]
#[command(about = "podflow ingest: accept episode audio files")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    // On Lambda there are no arguments: uploads arrive as events.
    if podflow_lambda::wiring::on_lambda() {
        return lambda().await;
    }
    let args = Args::parse();
    let db = Db::open(&args.data_dir)?;
    let service = IngestService {
        store: Arc::new(db.clone()),
        blobs: Arc::new(FileBlobStore::new(&args.data_dir)),
        probe: Arc::new(Ffmpeg),
    };
    for file in &args.files {
        let event = service.ingest_file(file).await?;
        db.publish(std::slice::from_ref(&event))?;
        println!("{}", event.episode_id().unwrap_or_default());
    }
    Ok(())
}

/// On Lambda: uploads are hashed in S3 where they are, recorded in DynamoDB, and announced
/// on the podflow bus.
async fn lambda() -> anyhow::Result<()> {
    let aws = podflow_lambda::wiring::AwsWiring::from_env().await?;
    let service = IngestService {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        // Never called for S3 objects (nothing is probed on Lambda).
        probe: Arc::new(Ffmpeg),
    };
    let handler = UploadHandler {
        service: Arc::new(service),
    };
    let effects = aws.event_effects(podflow_embedded::queue::PROMPT_QUEUE)?;
    podflow_lambda::run_eventbridge(Arc::new(handler), Arc::new(effects))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
