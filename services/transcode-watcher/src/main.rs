//! The transcode-watcher service locally: a worker over the embedded bus making the podcast
//! MP3 with ffmpeg. On Lambda, `transcode-watcher-lambda` drives MediaConvert instead.
use std::sync::Arc;

use clap::Parser;
use podflow_embedded::{Db, Ffmpeg, FileBlobStore, QueueSpec, Worker};
use transcode_watcher::TranscodeHandler;

#[derive(Parser)]
#[command(about = "podflow transcode-watcher: EpisodeUploaded → podcast MP3")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
    #[arg(long, env = "PODFLOW_MP3_BITRATE", default_value_t = 128)]
    bitrate_kbps: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    let args = Args::parse();
    let db = Db::open(&args.data_dir)?;
    let spec = QueueSpec::inbox("transcode-watcher");
    db.declare_queue(&spec)?;
    let handler = TranscodeHandler {
        store: Arc::new(db.clone()),
        blobs: Arc::new(FileBlobStore::new(&args.data_dir)),
        transcoder: Arc::new(Ffmpeg),
        bitrate_kbps: args.bitrate_kbps,
    };
    podflow_embedded::worker::run_until_ctrl_c(vec![Worker::new(db, spec, Arc::new(handler), 2)])
        .await;
    Ok(())
}
