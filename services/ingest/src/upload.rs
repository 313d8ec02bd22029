//! Uploads to the bucket, as S3 announces them: EventBridge "Object Created" events (what
//! `infra/template.yaml` routes to ingest) and classic S3 notifications (`Records[].s3`,
//! as a bucket notification delivers them through SQS or to Lambda directly).

use std::sync::Arc;

use async_trait::async_trait;
use podflow_core::{Delivery, MessageHandler, Outcome};
use serde_json::Value;

use crate::{IngestError, IngestService, accepted_extension, accepted_list};

/// Where uploads go. Everything podflow writes lives under `episodes/`, so an output can
/// never start a new episode.
pub const UPLOAD_PREFIX: &str = "incoming/";
/// Amazon Transcribe takes files up to 2 GB; a larger upload could never be transcribed.
pub const MAX_UPLOAD_BYTES: u64 = 2_000_000_000;

/// An object that arrived in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Upload {
    pub bucket: String,
    /// The object key as stored (URL-decoded where the event encoded it).
    pub key: String,
    /// The size the event reports, if it does.
    pub size: Option<u64>,
}

impl S3Upload {
    /// The last path component: the episode's original file name.
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

impl std::fmt::Display for S3Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// What an event said, as far as ingest cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    Uploads(Vec<S3Upload>),
    /// An S3 event that is not an upload (a deletion, a restore): nothing to do.
    Other(String),
}

/// Reads the uploads an S3 event announces. An error says what the event was missing.
pub fn uploads_in(raw: &Value) -> Result<UploadEvent, String> {
    if let Some(records) = raw.get("Records").and_then(Value::as_array) {
        return notification_uploads(records);
    }
    match (raw["source"].as_str(), raw["detail-type"].as_str()) {
        (Some("aws.s3"), Some("Object Created")) => {
            let detail = &raw["detail"];
            let bucket = detail["bucket"]["name"]
                .as_str()
                .ok_or("an Object Created event without detail.bucket.name")?;
            let key = detail["object"]["key"]
                .as_str()
                .ok_or("an Object Created event without detail.object.key")?;
            Ok(UploadEvent::Uploads(vec![S3Upload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: detail["object"]["size"].as_u64(),
            }]))
        }
        (Some("aws.s3"), Some(blank)) if blank.trim().is_empty() => Ok(UploadEvent::Other(
            "an S3 event with an empty detail-type".to_owned(),
        )),
        (Some("aws.s3"), Some(other)) => Ok(UploadEvent::Other(other.to_owned())),
        (source, detail_type) => Err(format!(
            "not an S3 event (source {source:?}, detail-type {detail_type:?}); check the rule \
             that targets ingest"
        )),
    }
}

fn notification_uploads(records: &[Value]) -> Result<UploadEvent, String> {
    let mut uploads = Vec::new();
    let mut others = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let name = record["eventName"].as_str().unwrap_or("");
        if record["eventSource"].as_str() != Some("aws:s3") {
            return Err(format!(
                "record {i} is not an S3 record (eventSource {:?})",
                record["eventSource"]
            ));
        }
        if !name.starts_with("ObjectCreated:") {
            // Named in the log line that says why nothing was done.
            others.push(if name.trim().is_empty() {
                format!("record {i} without an eventName")
            } else {
                name.to_owned()
            });
            continue;
        }
        let s3 = &record["s3"];
        let bucket = s3["bucket"]["name"]
            .as_str()
            .ok_or_else(|| format!("record {i} has no s3.bucket.name"))?;
        let key = s3["object"]["key"]
            .as_str()
            .ok_or_else(|| format!("record {i} has no s3.object.key"))?;
        uploads.push(S3Upload {
            bucket: bucket.to_owned(),
            key: decode_notification_key(key)
                .ok_or_else(|| format!("record {i}: key `{key}` is not valid URL-encoded UTF-8"))?,
            size: s3["object"]["size"].as_u64(),
        });
    }
    if uploads.is_empty() && !others.is_empty() {
        return Ok(UploadEvent::Other(others.join(", ")));
    }
    Ok(UploadEvent::Uploads(uploads))
}

/// S3 notifications URL-encode object keys the way HTML forms do: `+` for a space, `%XX`
/// for other bytes (`red flower+1.m4a` arrives as `red+flower%2B1.m4a`).
pub fn decode_notification_key(key: &str) -> Option<String> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// Refuses an upload podflow cannot use, before anything is read or recorded.
pub fn check(upload: &S3Upload) -> Result<(), IngestError> {
    // The key goes into the event as it is, and the schemas allow no control character,
    // `.`/`..` segment or more than 1024 bytes: refused here, with the key quoted escaped.
    podflow_events::names::check_key(&upload.key).map_err(|problem| IngestError::BadKey {
        bucket: upload.bucket.clone(),
        problem,
    })?;
    let shown = upload.to_string();
    if !upload.key.starts_with(UPLOAD_PREFIX) {
        return Err(IngestError::Unreadable {
            path: shown,
            why: format!("uploads belong under `{UPLOAD_PREFIX}` in the bucket"),
        });
    }
    accepted_extension(&shown, upload.file_name())?;
    match upload.size {
        Some(0) => Err(IngestError::Empty(shown)),
        Some(n) if n > MAX_UPLOAD_BYTES => Err(IngestError::Unreadable {
            path: shown,
            why: format!(
                "{n} bytes is more than the {MAX_UPLOAD_BYTES} Amazon Transcribe accepts; \
                 export at a lower bitrate ({} are fine)",
                accepted_list()
            ),
        }),
        _ => Ok(()),
    }
}

/// ingest as an EventBridge rule target: every upload of an event becomes an
/// `EpisodeUploaded`. A bad upload is dead-lettered with its reason (the object stays in
/// the bucket); a storage failure retries the event, which is safe since ingest is
/// idempotent.
pub struct UploadHandler {
    pub service: Arc<IngestService>,
}

#[async_trait]
impl MessageHandler for UploadHandler {
    fn name(&self) -> &'static str {
        "ingest"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let raw: Value = match serde_json::from_str(&delivery.body) {
            Ok(v) => v,
            Err(e) => {
                return Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason: format!("the event is not JSON ({e})"),
                };
            }
        };
        let uploads = match uploads_in(&raw) {
            Ok(UploadEvent::Uploads(u)) => u,
            Ok(UploadEvent::Other(what)) => {
                tracing::info!(event = %what, "not an upload; nothing to do");
                return Outcome::nothing();
            }
            Err(reason) => {
                return Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason,
                };
            }
        };
        let mut emit = Vec::new();
        let mut refused = Vec::new();
        for upload in &uploads {
            match self.service.ingest_object(upload).await {
                Ok(event) => emit.push(event),
                Err(e) if e.is_bad_input() => {
                    let reason = podflow_core::report(&e);
                    tracing::warn!(upload = %upload, error = %reason, "upload refused");
                    refused.push(reason);
                }
                Err(e) => {
                    return Outcome::Retry {
                        delay: std::time::Duration::from_secs(5),
                        reason: format!("{upload}: {}", podflow_core::report(&e)),
                    };
                }
            }
        }
        if refused.is_empty() {
            Outcome::done(emit)
        } else {
            Outcome::DeadLetter {
                emit,
                reason: refused.join("; "),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Value {
        podflow_fakes::fixtures::aws_json(path)
    }

    fn uploads(v: &Value) -> Vec<S3Upload> {
        match uploads_in(v).expect("parses") {
            UploadEvent::Uploads(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn eventbridge_object_created_gives_the_object() {
        let v = fixture(
            "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectCreatedEvent.json",
        );
        assert_eq!(
            uploads(&v),
            [S3Upload {
                bucket: "example-bucket".into(),
                key: "IMG_m7fzo3.jpg".into(),
                size: Some(184_662),
            }]
        );
    }

    #[test]
    fn other_s3_events_are_not_uploads() {
        for (file, what) in [
            (
                "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectDeletedEvent.json",
                "Object Deleted",
            ),
            (
                "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectExpiredEvent.json",
                "Object Deleted",
            ),
        ] {
            assert_eq!(
                uploads_in(&fixture(file)),
                Ok(UploadEvent::Other(what.into())),
                "{file}"
            );
        }
        let scheduled = fixture("eventbridge/rust-runtime_example-eventbridge-schedule.json");
        let err = uploads_in(&scheduled).expect_err("not S3");
        assert!(err.contains("not an S3 event"), "{err}");
    }

    #[test]
    fn notification_keys_are_url_decoded() {
        let v = fixture("s3-notification/rust-runtime_example-s3-event.json");
        assert_eq!(uploads(&v)[0].key, "Happy Face.jpg");
        // Recorded against AWS: `a@b` arrives as `a%40b`.
        let recorded = fixture("s3-notification/localstack_snapshot_sqs_test_key_encoding.json");
        let text = recorded.to_string();
        assert!(text.contains("a%40b"), "fixture changed");
        assert_eq!(decode_notification_key("a%40b").as_deref(), Some("a@b"));
        assert_eq!(
            decode_notification_key("incoming/This+is+a+picture%2B1.m4a").as_deref(),
            Some("incoming/This is a picture+1.m4a")
        );
        assert_eq!(decode_notification_key("bad%FF%FE"), None);
    }

    #[test]
    fn notifications_inside_sqs_bodies_parse_the_same() {
        let v = fixture("s3-notification/powertools-python_s3SqsEvent.json");
        let body = v["Records"][0]["body"].as_str().expect("an SQS body");
        let inner: Value = serde_json::from_str(body).expect("the body is the S3 event");
        let found = uploads(&inner);
        assert!(!found.is_empty());
        assert!(
            found
                .iter()
                .all(|u| !u.bucket.is_empty() && !u.key.contains('%'))
        );
    }

    #[test]
    fn uploads_are_checked_by_key_type_and_size() {
        let up = |key: &str, size: Option<u64>| S3Upload {
            bucket: "b".into(),
            key: key.into(),
            size,
        };
        assert!(check(&up("incoming/show 12.m4a", Some(10))).is_ok());
        assert!(check(&up("incoming/show.MP3", None)).is_ok());
        let refused = [
            (
                up("episodes/x/audio.mp3", Some(10)),
                "belong under `incoming/`",
            ),
            (
                up("incoming/notes.txt", Some(10)),
                "unsupported file type `.txt`",
            ),
            (up("incoming/noext", Some(10)), "`(none)`"),
            (up("incoming/empty.m4a", Some(0)), "empty"),
            (
                up("incoming/huge.wav", Some(3_000_000_000)),
                "Amazon Transcribe",
            ),
        ];
        for (upload, words) in refused {
            let e = check(&upload).expect_err("refused");
            assert!(e.is_bad_input());
            let text = e.to_string();
            assert!(text.contains(&format!("s3://b/{}", upload.key)), "{text}");
            assert!(text.contains(words), "{text}");
        }
    }
}
