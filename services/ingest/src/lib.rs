//! ingest: accepts an episode's audio, validates it, derives its `episode_id` from its
//! content, records it idempotently and announces it with `EpisodeUploaded`.
//!
//! Validation happens before anything is stored, so a rejected file leaves nothing behind
//! that could block a later run.

pub mod upload;

use std::{path::Path, sync::Arc};

use podflow_core::{
    BlobStore, EpisodeRecord, EpisodeStore, ErrorKind, MediaProbe, PortError, StepStatus, content,
};
use podflow_events::{BlobRef, EpisodeUploaded, EventEnvelope, SCHEMA_VERSION};
use thiserror::Error;

pub const STEP: &str = "ingest";
/// What podflow accepts, by extension. Video files are accepted for their audio track
/// (recorded video podcasts); one without audio is refused by the probe.
pub const ACCEPTED: &[&str] = &[
    "m4a", "mp3", "wav", "flac", "ogg", "opus", "aac", "mp4", "m4v", "mov", "mkv", "webm",
];

fn accepted_list() -> String {
    ACCEPTED
        .iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lower-cased extension of `name` if podflow accepts it; `shown` names the input in
/// the error.
fn accepted_extension(shown: &str, name: &str) -> Result<String, IngestError> {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    if ACCEPTED.contains(&ext.as_str()) {
        return Ok(ext);
    }
    let ext = if ext.is_empty() {
        "(none)".to_owned()
    } else {
        format!(".{ext}")
    };
    Err(IngestError::Unsupported {
        path: shown.to_owned(),
        ext,
    })
}

/// Why a file was not accepted. Each message names the file and says what to do.
#[derive(Debug, Error)]
pub enum IngestError {
    #[error("{0}: no such file")]
    NotFound(String),
    #[error("{0}: not a regular file; give the path of an audio file")]
    NotAFile(String),
    #[error("{0}: the file is empty (0 bytes); export the episode again")]
    Empty(String),
    #[error("{path}: unsupported file type `{ext}`; podflow accepts {accepted}", accepted = accepted_list())]
    Unsupported { path: String, ext: String },
    #[error("{path}: {why}; podflow accepts audio in {accepted}", accepted = accepted_list())]
    Unreadable { path: String, why: String },
    #[error("s3://{bucket}/…: {problem}; upload it under another name")]
    BadKey {
        bucket: String,
        problem: podflow_events::names::NameError,
    },
    #[error("{0}")]
    Setup(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] PortError),
}

impl IngestError {
    /// True when the input is at fault (exit code 1 with "bad input"), not the machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, IngestError::Setup(_) | IngestError::Store(_))
    }
}

/// The ingest service: validate, store, record, announce.
pub struct IngestService {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub probe: Arc<dyn MediaProbe>,
}

impl IngestService {
    /// Ingests a local file and returns the `EpisodeUploaded` event to publish.
    pub async fn ingest_file(&self, file: &Path) -> Result<EventEnvelope, IngestError> {
        let shown = shown_path(file);
        let meta = match tokio::fs::metadata(file).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IngestError::NotFound(shown));
            }
            Err(source) => {
                return Err(IngestError::Io {
                    path: shown,
                    source,
                });
            }
        };
        if !meta.is_file() {
            return Err(IngestError::NotAFile(shown));
        }
        let ext = accepted_extension(
            &shown,
            &file.file_name().unwrap_or_default().to_string_lossy(),
        )?;
        if meta.len() == 0 {
            return Err(IngestError::Empty(shown));
        }
        let info = self.probe.probe(file).await.map_err(|e| match e.kind() {
            ErrorKind::Input => IngestError::Unreadable {
                path: shown.clone(),
                why: e.report(),
            },
            _ => IngestError::Setup(e.report()),
        })?;
        // Our own copy, hashed as it is made (one read of the user's file): later steps
        // must not depend on the user's file staying put.
        let original_name = file.file_name().map_or_else(
            || "episode".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        // Named by the extension, not the user's name: the store prefixes a unique id, and
        // a name near the 255 bytes a file name may have would no longer fit.
        let scratch = self.blobs.scratch_path(&format!("upload.{ext}"));
        if let Some(parent) = scratch.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| IngestError::Io {
                    path: parent.display().to_string(),
                    source,
                })?;
        }
        let (sha256, size) =
            podflow_media::copy_hashing(file, &scratch)
                .await
                .map_err(|source| IngestError::Io {
                    path: shown.clone(),
                    source,
                })?;
        let episode_id = content::episode_id(&original_name, &sha256);
        let known = self.store.episode(&episode_id).await;
        if !matches!(known, Ok(None)) {
            // Ingested before (the stored copy stands), or the store failed (a retry copies
            // again): this copy is not needed.
            let _ = tokio::fs::remove_file(&scratch).await;
        }
        let record = match known? {
            Some(record) => record,
            None => {
                let source = self
                    .blobs
                    .put_hashed_file(&format!("incoming/{sha256}.{ext}"), &scratch, &sha256, size)
                    .await?;
                self.record(&episode_id, &original_name, source).await?
            }
        };
        self.announce(record, Some(info.duration_seconds)).await
    }

    /// Ingests an object uploaded to the bucket (on AWS), where it stays: it is checked by
    /// its key and size, then hashed as a stream to derive the episode id.
    pub async fn ingest_object(
        &self,
        upload: &upload::S3Upload,
    ) -> Result<EventEnvelope, IngestError> {
        upload::check(upload)?;
        let source = self.blobs.digest(&upload.key).await?;
        if source.size == 0 {
            return Err(IngestError::Empty(upload.to_string()));
        }
        let original_name = upload.file_name().to_owned();
        let episode_id = content::episode_id(&original_name, &source.sha256);
        let record = match self.store.episode(&episode_id).await? {
            Some(record) => record,
            None => self.record(&episode_id, &original_name, source).await?,
        };
        // No ffprobe on Lambda: the transcoder and transcriber learn the duration.
        self.announce(record, None).await
    }

    async fn record(
        &self,
        episode_id: &str,
        original_name: &str,
        source: BlobRef,
    ) -> Result<EpisodeRecord, IngestError> {
        let record = EpisodeRecord {
            episode_id: episode_id.to_owned(),
            correlation_id: uuid_like(&source.sha256),
            original_name: original_name.to_owned(),
            source,
            created_at_ms: podflow_core::now_ms(),
        };
        self.store.upsert_episode(&record).await?;
        podflow_core::crash::point("ingest.after_record");
        Ok(record)
    }

    /// Marks the step done and builds the `EpisodeUploaded` to publish (again, on a re-run:
    /// every consumer is idempotent).
    async fn announce(
        &self,
        record: EpisodeRecord,
        duration_seconds: Option<f64>,
    ) -> Result<EventEnvelope, IngestError> {
        let episode_id = record.episode_id;
        self.store.step_started(&episode_id, STEP).await?;
        self.store
            .step_finished(&episode_id, STEP, StepStatus::Done, None)
            .await?;
        Ok(EventEnvelope::wrap(&EpisodeUploaded {
            schema_version: SCHEMA_VERSION.into(),
            episode_id,
            correlation_id: record.correlation_id,
            source: record.source,
            original_name: record.original_name,
            duration_seconds,
        }))
    }
}

/// A path as an error names it: as given, or quoted and escaped when it holds a control
/// character (a newline in a file name must not split the one-line error).
fn shown_path(path: &Path) -> String {
    let text = path.display().to_string();
    if text.chars().any(char::is_control) {
        format!("{text:?}")
    } else {
        text
    }
}

/// A correlation id that is stable for the same audio (so logs of re-runs line up).
fn uuid_like(sha256: &str) -> String {
    let h = sha256.get(..32).unwrap_or(sha256);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
