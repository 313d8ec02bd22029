//! The publisher's fan-in on Lambda: the target of the episode-progress rule. State is read
//! from DynamoDB, the show's files go to S3 and EpisodeSummarized to the bus. Clips are cut
//! by the `ffmpeg` on `PATH` (the FfmpegLayerArn layer puts it in /opt/bin; without it clips
//! are listed in clips.json but not cut, and the reason is in the summary's notes). The
//! notifier is `publisher-notify-lambda`, its own function so that a Slack outage never
//! holds back EpisodeSummarized.
use std::{path::PathBuf, sync::Arc};

use podflow_core::{
    TextEngine,
    show::{ShowConfig, ShowLayers},
};
use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::{AwsWiring, optional_env};
use podflow_media::Ffmpeg;
use publisher::{PublishHandler, cost::PriceTable};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    let prices = optional_env("PODFLOW_PRICES").map(PathBuf::from);
    let handler = PublishHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        clips: Arc::new(Ffmpeg::default()),
        prices: PriceTable::load(prices.as_deref())?,
        text_engine: TextEngine::from_env()?,
        // The show: podflow.toml at the bucket's root, under PODFLOW_SHOW_* / PODFLOW_BASE_URL.
        show: ShowLayers {
            below: ShowConfig::default(),
            above: ShowConfig::from_env(|name| std::env::var(name).ok())?,
        },
    };
    Ok(aws.serve_events(PROMPT_QUEUE, Arc::new(handler)).await?)
}
