//! The publisher service (fan-in and notifier) as a standalone local worker over the
//! embedded bus.
use std::{sync::Arc, time::Duration};

use clap::Parser;
use podflow_embedded::{Db, Ffmpeg, FileBlobStore, QueueSpec, Worker};
use publisher::{PublishHandler, cost::PriceTable, notify};

#[derive(Parser)]
#[command(about = "podflow publisher: fan-in, the show's files, EpisodeSummarized, Slack")]
struct Args {
    #[arg(long, env = "PODFLOW_DATA_DIR", default_value = "./podflow-data")]
    data_dir: std::path::PathBuf,
    /// A TOML price table that replaces bundled prices by name.
    #[arg(long, env = "PODFLOW_PRICES")]
    prices: Option<std::path::PathBuf>,
    #[arg(long, env = "PODFLOW_SLACK_WEBHOOK_URL", hide_env_values = true)]
    slack_webhook_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_embedded::telemetry::init("info");
    let args = Args::parse();
    let db = Db::open(&args.data_dir)?;
    let blobs = Arc::new(FileBlobStore::new(&args.data_dir));
    let publish = QueueSpec::inbox("publisher");
    let notify_spec = QueueSpec::inbox("publisher-notify");
    db.declare_queue(&publish)?;
    db.declare_queue(&notify_spec)?;
    let handler = PublishHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        clips: Arc::new(Ffmpeg),
        prices: PriceTable::load(args.prices.as_deref())?,
    };
    let notifier = notify::NotifyHandler {
        store: Arc::new(db.clone()),
        blobs,
        notifier: notify::notifier_from(args.slack_webhook_url.as_deref())?,
        link_lifetime: Duration::from_secs(7 * 24 * 3600),
    };
    podflow_embedded::worker::run_until_ctrl_c(vec![
        Worker::new(db.clone(), publish, Arc::new(handler), 1),
        Worker::new(db, notify_spec, Arc::new(notifier), 1),
    ])
    .await;
    Ok(())
}
