//! The link function on Lambda (a function URL): opens the stable links the notifier writes,
//! redirecting each to a URL pre-signed at that moment, so a link works for its whole
//! promised lifetime whatever the lifetime of the credentials that sign. Reads the secret
//! `PODFLOW_LINK_SECRET` (`secretsmanager:ID`, once at start) and the bucket
//! `PODFLOW_BUCKET`.
use std::sync::Arc;

use podflow_aws::s3::S3BlobStore;
use podflow_lambda::wiring::{env, lambda_sdk_config, required_secret_env};
use publisher::links::{link_secret, open_link};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    podflow_core::telemetry::init("info");
    let config = lambda_sdk_config()?;
    let setting = required_secret_env("PODFLOW_LINK_SECRET")?;
    let secret = link_secret(&setting, async || config.clone()).await?;
    let blobs = Arc::new(S3BlobStore::new(&config, &env("PODFLOW_BUCKET")?, false));
    podflow_lambda::run_function_url(move |query| {
        let (blobs, secret) = (blobs.clone(), secret.clone());
        async move { open_link(blobs.as_ref(), &secret, &query).await.into_http() }
    })
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}
