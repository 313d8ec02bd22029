//! transcode-watcher on Lambda: the target of the EpisodeUploaded and MediaConvert
//! state-change rules. MediaConvert jobs run with `PODFLOW_MEDIACONVERT_ROLE_ARN` and are
//! tagged with `PODFLOW_STACK`, so the stack's rule sees only its own jobs' events.
use std::sync::Arc;

use podflow_aws::mediaconvert::MediaConvertJobs;
use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::{AwsWiring, env, parsed_env};
use transcode_watcher::mediaconvert::MediaConvertHandler;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    let handler = MediaConvertHandler {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        jobs: Arc::new(MediaConvertJobs::new(
            &aws.config,
            &env("PODFLOW_MEDIACONVERT_ROLE_ARN")?,
            &aws.bucket,
        )),
        bucket: aws.bucket.clone(),
        bitrate_kbps: parsed_env("PODFLOW_MP3_BITRATE", 128, "a bitrate in kbit/s")?,
        stack: env("PODFLOW_STACK")?,
    };
    Ok(aws.serve_events(PROMPT_QUEUE, Arc::new(handler)).await?)
}
