//! The transcode-watcher service: a local worker over the embedded bus (ffmpeg), or on
//! Lambda the target of the EpisodeUploaded and MediaConvert state-change rules.
use std::sync::Arc;

use clap::Parser;
use podflow_embedded::{Db, Ffmpeg, FileBlobStore, QueueSpec, Worker};
use transcode_watcher::{TranscodeHandler, mediaconvert::MediaConvertHandler};

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
    if podflow_lambda::wiring::on_lambda() {
        return lambda(args.bitrate_kbps).await;
    }
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

/// On Lambda: MediaConvert jobs with `PODFLOW_MEDIACONVERT_ROLE_ARN`, tagged with
/// `PODFLOW_STACK` so the stack's rule sees only its own jobs' events.
async fn lambda(bitrate_kbps: u32) -> anyhow::Result<()> {
    let aws = podflow_lambda::wiring::AwsWiring::from_env().await?;
    let setting = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{name} is not set; deploy with infra/template.yaml"))
    };
    let handler = MediaConvertHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        jobs: Arc::new(podflow_aws::mediaconvert::MediaConvertJobs::new(
            &aws.config,
            &setting("PODFLOW_MEDIACONVERT_ROLE_ARN")?,
            &aws.bucket,
        )),
        bucket: aws.bucket.clone(),
        bitrate_kbps,
        stack: setting("PODFLOW_STACK")?,
    };
    let effects = aws.event_effects(podflow_embedded::queue::PROMPT_QUEUE)?;
    podflow_lambda::run_eventbridge(Arc::new(handler), Arc::new(effects))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
