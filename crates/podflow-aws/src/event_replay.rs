//! Sends a stack's dead-lettered events back, for `podflow dlq replay --events`: podflow's
//! own events onto the podflow bus (PutEvents; every consumer is idempotent), an S3 upload by
//! copying the object onto itself, so that S3 announces it again and ingest takes it as it
//! would have. Events of other AWS services (MediaConvert, Transcribe) cannot be sent again:
//! EventBridge refuses `aws.*` sources from PutEvents.

use aws_config::SdkConfig;
use aws_sdk_s3::types::MetadataDirective;
use podflow_core::{EventPublisher, undelivered};
use podflow_events::EventEnvelope;
use serde_json::Value;

use crate::{eventbridge::EventBridgePublisher, s3::COPY_SOURCE_ESCAPED};

/// Where dead-lettered events go back to.
pub struct EventRedelivery {
    bus: String,
    events: EventBridgePublisher,
    s3: aws_sdk_s3::Client,
}

impl EventRedelivery {
    /// `bus`: the podflow bus's name or ARN (the stack's `PODFLOW_EVENT_BUS`).
    pub fn new(config: &SdkConfig, bus: &str) -> Self {
        Self {
            bus: bus.to_owned(),
            events: EventBridgePublisher::new(config, bus),
            s3: aws_sdk_s3::Client::new(config),
        }
    }

    /// Sends the event a dead letter's `body` carries back: `Ok` says where it went, `Err`
    /// why it cannot go (the letter then stays).
    pub async fn redeliver(&self, body: &str) -> Result<String, String> {
        let event = undelivered::event_of(body)
            .ok_or("it holds no EventBridge event (neither an event nor Lambda's record of one)")?;
        let source = event["source"].as_str().unwrap_or_default();
        let detail_type = event["detail-type"].as_str().unwrap_or_default();
        match (source, detail_type) {
            (source, _) if source.starts_with("podflow.") => {
                let envelope = EventEnvelope::from_json(&event.to_string())
                    .map_err(|e| format!("its event cannot be read: {e}"))?;
                self.events
                    .publish(std::slice::from_ref(&envelope))
                    .await
                    .map_err(|e| e.report())?;
                Ok(format!("{detail_type} put on the bus {}", self.bus))
            }
            ("aws.s3", "Object Created") => self.announce_again(&event).await,
            _ => Err(format!(
                "a {source} \"{detail_type}\" event cannot be sent again (EventBridge takes no \
                 aws.* source from PutEvents); replay the episode's EpisodeUploaded from the \
                 bus's archive instead (docs/runbook.md)"
            )),
        }
    }

    /// Copies the uploaded object onto itself (with a `podflow-replayed` metadata mark, as
    /// S3 copies an object onto itself only when something changes): S3 then sends a new
    /// Object Created event for it.
    async fn announce_again(&self, event: &Value) -> Result<String, String> {
        let detail = &event["detail"];
        let (Some(bucket), Some(key)) = (
            detail["bucket"]["name"].as_str(),
            detail["object"]["key"].as_str(),
        ) else {
            return Err("its Object Created event names no bucket or key".to_owned());
        };
        // Read first: REPLACE keeps only what the copy names, so the object's metadata and
        // headers are named again. An object that cannot be read is not touched.
        let head = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                crate::sdk_failure(&format!("HeadObject s3://{bucket}/{key}"), &e).report()
            })?;
        let mut copy = self
            .s3
            .copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source(format!(
                "{bucket}/{}",
                percent_encoding::utf8_percent_encode(key, COPY_SOURCE_ESCAPED)
            ))
            .metadata_directive(MetadataDirective::Replace)
            .metadata("podflow-replayed", podflow_core::now_ms().to_string());
        for (name, value) in head.metadata().into_iter().flatten() {
            if name != "podflow-replayed" {
                copy = copy.metadata(name, value);
            }
        }
        copy = copy
            .set_content_type(head.content_type().map(str::to_owned))
            .set_cache_control(head.cache_control().map(str::to_owned))
            .set_content_disposition(head.content_disposition().map(str::to_owned))
            .set_content_encoding(head.content_encoding().map(str::to_owned))
            .set_content_language(head.content_language().map(str::to_owned))
            .set_storage_class(head.storage_class().cloned());
        copy.send().await.map_err(|e| {
            crate::sdk_failure(&format!("CopyObject s3://{bucket}/{key} onto itself"), &e).report()
        })?;
        Ok(format!("s3://{bucket}/{key} announced again by S3"))
    }
}
