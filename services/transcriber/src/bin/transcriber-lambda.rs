//! transcriber on Lambda: the target of the EpisodeUploaded and Transcribe state-change
//! rules. Amazon Transcribe does the work, with speaker labels, outputs in the episode
//! bucket, in `PODFLOW_TRANSCRIBE_LANGUAGE`: `auto` (Transcribe identifies it), one of its
//! codes (`de-DE`) or a two-letter language (`de`); default en-US. (Locally the `transcriber` binary
//! runs whisper.cpp; this entry point links none of it.)
use std::sync::Arc;

use anyhow::Context;
use podflow_aws::transcribe::{TranscribeJobs, TranscribeLanguage};
use podflow_core::show::{ShowConfig, ShowLayers};
use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::{AwsWiring, optional_env};
use transcriber::{SpeakerNames, batch::BatchTranscriberHandler};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    // A bad value stops the function at start, with the reason in its log, rather than
    // failing every episode.
    let language: TranscribeLanguage = optional_env("PODFLOW_TRANSCRIBE_LANGUAGE")
        .as_deref()
        .unwrap_or("en-US")
        .parse()
        .context("PODFLOW_TRANSCRIBE_LANGUAGE")?;
    let handler = BatchTranscriberHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        jobs: Arc::new(TranscribeJobs::new(&aws.config, &aws.bucket, language)),
        // Speakers are named after the show's hosts (podflow.toml at the bucket's root,
        // PODFLOW_SHOW_HOSTS), or PODFLOW_SPEAKERS.
        speakers: SpeakerNames {
            given: optional_env("PODFLOW_SPEAKERS")
                .map(|v| podflow_core::show::names(&v))
                .unwrap_or_default(),
            show: ShowLayers {
                below: ShowConfig::default(),
                above: ShowConfig::from_env(|name| std::env::var(name).ok())?,
            },
        },
    };
    Ok(aws.serve_events(PROMPT_QUEUE, Arc::new(handler)).await?)
}
