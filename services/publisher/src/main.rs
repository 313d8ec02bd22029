//! The publisher service (fan-in and notifier): a local worker over the embedded bus, or
//! on Lambda one of its two roles, chosen by `PODFLOW_SERVICE` (`publisher`, the target of
//! the episode-progress rule, or `publisher-notify`, of the announce rule).
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
    if podflow_lambda::wiring::on_lambda() {
        return lambda(args).await;
    }
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

/// On Lambda: the store is DynamoDB, files are in S3, and clips are cut by the `ffmpeg` on
/// `PATH` (the FfmpegLayerArn layer puts it in /opt/bin; without it clips are listed in
/// clips.json but not cut, and the reason is in the summary's notes).
async fn lambda(args: Args) -> anyhow::Result<()> {
    let aws = podflow_lambda::wiring::AwsWiring::from_env().await?;
    let effects = Arc::new(aws.event_effects(podflow_embedded::queue::PROMPT_QUEUE)?);
    let role = std::env::var("PODFLOW_SERVICE").unwrap_or_default();
    let handler: Arc<dyn podflow_core::MessageHandler> = match role.as_str() {
        "publisher" => Arc::new(PublishHandler {
            store: aws.store.clone(),
            blobs: aws.blobs.clone(),
            clips: Arc::new(Ffmpeg),
            prices: PriceTable::load(args.prices.as_deref())?,
        }),
        "publisher-notify" => Arc::new(notify::NotifyHandler {
            store: aws.store.clone(),
            blobs: aws.blobs.clone(),
            notifier: notify::configured_notifier(
                args.slack_webhook_url.as_deref(),
                args.sns_topic_arn.as_deref(),
            )
            .await?,
            link_lifetime: Duration::from_secs(args.link_lifetime_seconds),
        }),
        other => anyhow::bail!(
            "PODFLOW_SERVICE is {other:?}; the publisher runs as `publisher` or \
             `publisher-notify` (infra/template.yaml sets it)"
        ),
    };
    podflow_lambda::run_eventbridge(handler, effects)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
