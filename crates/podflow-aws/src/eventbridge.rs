//! EventBridge PutEvents as podflow's event publisher.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::{Client, types::PutEventsRequestEntry};
use podflow_core::{EventPublisher, PortError, handling::backoff};
use podflow_events::EventEnvelope;

use crate::sdk_failure;

/// PutEvents takes at most 10 entries a call.
const ENTRIES_PER_CALL: usize = 10;
/// ... and at most 256 KB an entry (detail, detail-type, source and resources together).
const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Publishes to one bus. Entries EventBridge refuses (throttling, internal failures) are
/// sent again, alone, with backoff; what still fails after the last attempt is an error,
/// so the message that produced the events is delivered again rather than lost.
pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
    attempts: u32,
}

impl EventBridgePublisher {
    pub fn new(config: &SdkConfig, bus_name: &str) -> Self {
        Self {
            client: Client::new(config),
            bus_name: bus_name.to_owned(),
            attempts: 4,
        }
    }

    fn entry(&self, event: &EventEnvelope) -> Result<PutEventsRequestEntry, PortError> {
        let detail = event.detail.to_string();
        let size = detail.len()
            + event.detail_type.len()
            + event.source.len()
            + event.resources.iter().map(String::len).sum::<usize>();
        if size > MAX_ENTRY_BYTES {
            return Err(PortError::input(format!(
                "event {} ({}) is {size} bytes; EventBridge takes {MAX_ENTRY_BYTES}: large payloads must travel as blob pointers",
                event.id, event.detail_type
            )));
        }
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&event.source)
            .detail_type(&event.detail_type)
            .detail(detail)
            .set_resources((!event.resources.is_empty()).then(|| event.resources.clone()))
            .build())
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), PortError> {
        let entries = events
            .iter()
            .map(|e| self.entry(e))
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in entries.chunks(ENTRIES_PER_CALL) {
            let mut pending: Vec<PutEventsRequestEntry> = chunk.to_vec();
            let mut last_error = String::new();
            for attempt in 0..self.attempts {
                if attempt > 0 {
                    tokio::time::sleep(backoff(
                        attempt,
                        Duration::from_millis(100),
                        Duration::from_secs(5),
                        rand::random::<f64>(),
                    ))
                    .await;
                }
                let sent = self
                    .client
                    .put_events()
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await;
                let output = match sent {
                    Ok(output) => output,
                    Err(e) => {
                        let failure = sdk_failure(&format!("PutEvents to {}", self.bus_name), &e);
                        if failure.is_retryable() {
                            last_error = failure.to_string();
                            continue;
                        }
                        return Err(failure.with_fix(
                            "check PODFLOW_EVENT_BUS and the function's events:PutEvents permission",
                        ));
                    }
                };
                // Results line up with the entries sent; failed ones carry an error code.
                let refused: Vec<(PutEventsRequestEntry, String)> = pending
                    .into_iter()
                    .zip(output.entries())
                    .filter_map(|(entry, result)| {
                        result.error_code().map(|code| {
                            let why = format!("{code}: {}", result.error_message().unwrap_or(""));
                            (entry, why)
                        })
                    })
                    .collect();
                if let Some((_, why)) = refused.first() {
                    last_error = format!(
                        "{} entr(ies) refused by {}, e.g. {why}",
                        refused.len(),
                        self.bus_name
                    );
                }
                pending = refused.into_iter().map(|(entry, _)| entry).collect();
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(PortError::transient(format!(
                    "{} event(s) not published after {} attempts: {last_error}",
                    pending.len(),
                    self.attempts
                )));
            }
        }
        Ok(())
    }
}
