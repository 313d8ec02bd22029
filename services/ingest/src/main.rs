//! The ingest service locally: validates and records files, publishing EpisodeUploaded on
//! the embedded bus for the other services' workers. On Lambda, `ingest-lambda` takes S3
//! uploads instead.
use std::sync::Arc;

use clap::Parser;
use ingest::IngestService;
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
