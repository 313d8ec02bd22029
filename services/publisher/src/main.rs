//! The publisher service locally: two workers over the embedded bus, the fan-in (the show's
//! files, EpisodeSummarized) and the notifier (Slack or SNS). On Lambda,
//! `publisher-lambda` runs one of the two per function.
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
    /// A webhook URL, or `ssm:NAME` / `secretsmanager:ID` naming one.
    #[arg(long, env = "PODFLOW_SLACK_WEBHOOK_URL", hide_env_values = true)]
    slack_webhook_url: Option<String>,
    /// Notify an SNS topic instead of Slack.
    #[arg(long, env = "PODFLOW_SNS_TOPIC_ARN")]
    sns_topic_arn: Option<String>,
    /// How long links in notifications stay valid (pre-signed URLs on S3: at most 7 days).
    #[arg(long, env = "PODFLOW_LINK_LIFETIME_SECONDS", default_value_t = 7 * 24 * 3600)]
    link_lifetime_seconds: u64,
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
        notifier: notify::configured_notifier(
            args.slack_webhook_url.as_deref(),
            args.sns_topic_arn.as_deref(),
            podflow_aws::sdk_config,
        )
        .await?,
        link_lifetime: Duration::from_secs(args.link_lifetime_seconds),
    };
    podflow_embedded::worker::run_until_ctrl_c(vec![
        Worker::new(db.clone(), publish, Arc::new(handler), 1),
        Worker::new(db, notify_spec, Arc::new(notifier), 1),
    ])
    .await;
    Ok(())
}
