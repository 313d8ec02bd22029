//! S3 as podflow's blob store.

use std::{path::PathBuf, time::Duration};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::{Client, presigning::PresigningConfig, primitives::ByteStream};
use podflow_core::{BlobStore, PortError};
use podflow_events::BlobRef;
use sha2::{Digest, Sha256};

/// What a CopySource key escapes: everything but unreserved characters and `/`.
pub(crate) const COPY_SOURCE_ESCAPED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');

/// SigV4 pre-signed URLs live at most 7 days.
const MAX_LINK_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Blobs as objects in one bucket.
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    scratch: PathBuf,
}

impl S3BlobStore {
    /// `path_style`: address the bucket in the path (emulators, some S3-compatible stores).
    pub fn new(config: &SdkConfig, bucket: &str, path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        Self {
            client: Client::from_conf(s3),
            bucket: bucket.to_owned(),
            // Lambda's only writable place.
            scratch: std::env::temp_dir().join("podflow-scratch"),
        }
    }

    fn blob(&self, key: &str, size: u64, sha256: String) -> BlobRef {
        BlobRef {
            bucket: Some(self.bucket.clone()),
            key: key.to_owned(),
            size,
            sha256,
        }
    }

    fn bucket_of<'a>(&'a self, blob: &'a BlobRef) -> &'a str {
        blob.bucket.as_deref().unwrap_or(&self.bucket)
    }
}

fn s3_error(what: String, e: impl std::error::Error + 'static) -> PortError {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    PortError::storage(what, podflow_core::report(&e))
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<BlobRef, PortError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_error(format!("writing s3://{}/{key}", self.bucket), e))?;
        Ok(self.blob(key, size, sha256))
    }

    async fn copy(&self, blob: &BlobRef, key: &str) -> Result<BlobRef, PortError> {
        // CopySource is `bucket/key`, URL-encoded. One request copies up to 5 GB, far above
        // the MP3s and transcripts that are copied.
        let source = format!(
            "{}/{}",
            self.bucket_of(blob),
            percent_encoding::utf8_percent_encode(&blob.key, COPY_SOURCE_ESCAPED)
        );
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(source)
            .send()
            .await
            .map_err(|e| {
                s3_error(
                    format!(
                        "copying s3://{}/{} to s3://{}/{key}",
                        self.bucket_of(blob),
                        blob.key,
                        self.bucket
                    ),
                    e,
                )
            })?;
        Ok(self.blob(key, blob.size, blob.sha256.clone()))
    }

    async fn put_hashed_file(
        &self,
        key: &str,
        file: &std::path::Path,
        sha256: &str,
        size: u64,
    ) -> Result<BlobRef, PortError> {
        let body = ByteStream::from_path(file)
            .await
            .map_err(|e| s3_error(format!("reading {}", file.display()), e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| s3_error(format!("writing s3://{}/{key}", self.bucket), e))?;
        // Like the local store, the file is moved, not copied.
        let _ = tokio::fs::remove_file(file).await;
        Ok(self.blob(key, size, sha256.to_owned()))
    }

    async fn get(&self, blob: &BlobRef) -> Result<Vec<u8>, PortError> {
        let what = || format!("reading s3://{}/{}", self.bucket_of(blob), blob.key);
        let object = self
            .client
            .get_object()
            .bucket(self.bucket_of(blob))
            .key(&blob.key)
            .send()
            .await
            .map_err(|e| s3_error(what(), e))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| s3_error(what(), e))?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn digest(&self, key: &str) -> Result<BlobRef, PortError> {
        let what = || format!("reading s3://{}/{key}", self.bucket);
        let mut object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            // Classified, so a missing object (404) reads as one.
            .map_err(|e| crate::sdk_failure(&what(), &e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = object.body.next().await {
            let chunk = chunk.map_err(|e| s3_error(what(), e))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        Ok(self.blob(key, size, hex::encode(hasher.finalize())))
    }

    fn local_path(&self, _blob: &BlobRef) -> Option<PathBuf> {
        None
    }

    fn scratch_path(&self, name: &str) -> PathBuf {
        // A fresh Lambda sandbox's /tmp is empty. If this fails, writing the file will
        // fail too, with the path in its message.
        let _ = std::fs::create_dir_all(&self.scratch);
        self.scratch
            .join(format!("{}-{name}", uuid::Uuid::new_v4()))
    }

    async fn share_url(&self, blob: &BlobRef, valid_for: Duration) -> Result<String, PortError> {
        let what = || format!("pre-signing s3://{}/{}", self.bucket_of(blob), blob.key);
        let config = PresigningConfig::expires_in(valid_for.min(MAX_LINK_LIFETIME))
            .map_err(|e| s3_error(what(), e))?;
        let request = self
            .client
            .get_object()
            .bucket(self.bucket_of(blob))
            .key(&blob.key)
            .presigned(config)
            .await
            .map_err(|e| s3_error(what(), e))?;
        Ok(request.uri().to_owned())
    }

    fn bucket(&self) -> Option<&str> {
        Some(&self.bucket)
    }
}
