//! The publisher's notifier on Lambda: the target of the announce rule (EpisodeTranscoded,
//! EpisodeSummarized). Posts to the Slack webhook in `PODFLOW_SLACK_WEBHOOK_URL` (a URL, or
//! `ssm:NAME` / `secretsmanager:ID` / `file:PATH`, read once at start) or to `PODFLOW_SNS_TOPIC_ARN`, with
//! links valid for `PODFLOW_LINK_LIFETIME_SECONDS`: stable links through the link function
//! (`PODFLOW_LINK_BASE_URL`, signed with `PODFLOW_LINK_SECRET`), else pre-signed ones.
use std::{sync::Arc, time::Duration};

use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::{AwsWiring, optional_env, parsed_env, secret_env};
use publisher::{
    links::{ShareLinks, configured_stable_links},
    notify::{NotifyHandler, configured_notifier},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    let notifier = configured_notifier(
        secret_env("PODFLOW_SLACK_WEBHOOK_URL").as_ref(),
        optional_env("PODFLOW_SNS_TOPIC_ARN").as_deref(),
        async || aws.config.clone(),
    )
    .await?;
    let stable = configured_stable_links(
        &aws.bucket,
        optional_env("PODFLOW_LINK_BASE_URL").as_deref(),
        secret_env("PODFLOW_LINK_SECRET").as_ref(),
        async || aws.config.clone(),
    )
    .await?;
    let handler = NotifyHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        notifier,
        links: ShareLinks {
            lifetime: Duration::from_secs(parsed_env(
                "PODFLOW_LINK_LIFETIME_SECONDS",
                7 * 24 * 3600,
                "a number of seconds",
            )?),
            stable,
        },
        show: podflow_core::show::ShowLayers {
            below: podflow_core::show::ShowConfig::default(),
            above: podflow_core::show::ShowConfig::from_env(|name| std::env::var(name).ok())?,
        },
    };
    Ok(aws.serve_events(PROMPT_QUEUE, Arc::new(handler)).await?)
}
