//! ingest on Lambda: the target of the rule for S3 "Object Created" events under
//! `incoming/`. Uploads are hashed in S3 where they are, recorded in DynamoDB and announced
//! on the podflow bus. (Locally the `ingest` binary takes files from the command line.)
use std::sync::Arc;

use ingest::{IngestService, upload::UploadHandler};
use podflow_events::routing::PROMPT_QUEUE;
use podflow_lambda::wiring::AwsWiring;
use podflow_media::Ffmpeg;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let aws = AwsWiring::from_env()?;
    let service = IngestService {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        // Never called for S3 objects (nothing is probed on Lambda).
        probe: Arc::new(Ffmpeg::default()),
    };
    let handler = UploadHandler {
        service: Arc::new(service),
    };
    Ok(aws.serve_events(PROMPT_QUEUE, Arc::new(handler)).await?)
}
