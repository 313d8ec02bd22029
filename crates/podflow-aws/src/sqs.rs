//! SQS as podflow's job queue: FIFO jobs with their group and dedup ids, backoff by
//! changing a delivery's visibility, and dead letters with their reason.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::{
    Client,
    types::{MessageAttributeValue, SendMessageBatchRequestEntry},
};
use podflow_core::{DeadLetter, DeliveryControl, JobSender, PortError, QueuedJob};
use sha2::{Digest, Sha256};

use crate::sdk_failure;

/// SendMessageBatch takes at most 10 entries.
const ENTRIES_PER_CALL: usize = 10;
/// SQS's limits on group and dedup ids.
const MAX_ID_CHARS: usize = 128;
/// The message attribute that carries why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "podflow-reason";
/// ... and the id it had on the queue it came from.
pub const SOURCE_ID_ATTRIBUTE: &str = "podflow-source-message-id";

/// The queues one function talks to: jobs go to `queues[job.queue]`; deliveries of
/// `source_url` are delayed there; dead letters go to `dead_letter_url`.
pub struct SqsQueue {
    client: Client,
    /// Queue name as handlers know it (`prompts`) → queue URL.
    queues: BTreeMap<String, String>,
    /// The queue this function consumes (for visibility changes).
    source_url: Option<String>,
    /// Its dead-letter queue (for dead letters sent at once).
    dead_letter_url: Option<String>,
}

impl SqsQueue {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            queues: BTreeMap::new(),
            source_url: None,
            dead_letter_url: None,
        }
    }

    /// Jobs for `name` go to `url`.
    pub fn with_queue(mut self, name: &str, url: &str) -> Self {
        self.queues.insert(name.to_owned(), url.to_owned());
        self
    }

    /// This function consumes `url` (retries are delayed by changing visibility there).
    pub fn consuming(mut self, url: &str) -> Self {
        self.source_url = Some(url.to_owned());
        self
    }

    /// Hopeless messages go to `url` at once, with their reason.
    pub fn dead_letters_to(mut self, url: &str) -> Self {
        self.dead_letter_url = Some(url.to_owned());
        self
    }

    fn url_of(&self, queue: &str) -> Result<&str, PortError> {
        self.queues.get(queue).map(String::as_str).ok_or_else(|| {
            PortError::setup(format!(
                "no URL configured for queue `{queue}` (known: {:?}); set it in the function's environment",
                self.queues.keys().collect::<Vec<_>>()
            ))
        })
    }
}

/// A group or dedup id SQS accepts: up to 128 characters of alphanumerics and punctuation.
/// Longer or odd ids are replaced by their SHA-256, which keeps them unique and stable.
pub fn sqs_id(id: &str) -> String {
    let ok = !id.is_empty() && id.len() <= MAX_ID_CHARS && id.chars().all(|c| c.is_ascii_graphic());
    if ok {
        id.to_owned()
    } else {
        hex::encode(Sha256::digest(id.as_bytes()))
    }
}

fn fail(what: &str, failure: PortError) -> PortError {
    failure.with_fix(&format!(
        "check the queue URL and the function's {what} permission"
    ))
}

#[async_trait]
impl JobSender for SqsQueue {
    async fn send_jobs(&self, jobs: &[QueuedJob]) -> Result<(), PortError> {
        let mut by_queue: BTreeMap<&str, Vec<&QueuedJob>> = BTreeMap::new();
        for job in jobs {
            by_queue.entry(job.queue.as_str()).or_default().push(job);
        }
        for (queue, jobs) in by_queue {
            let url = self.url_of(queue)?;
            let fifo = url.ends_with(".fifo");
            for chunk in jobs.chunks(ENTRIES_PER_CALL) {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, job)| {
                        let mut entry = SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(&job.body);
                        if fifo {
                            entry = entry
                                .message_group_id(sqs_id(&job.group_id))
                                .message_deduplication_id(sqs_id(&job.dedup_id));
                        }
                        entry
                            .build()
                            .map_err(|e| PortError::input(format!("job for {queue}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let output = self
                    .client
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        fail(
                            "sqs:SendMessage",
                            sdk_failure(&format!("SendMessageBatch to {queue}"), &e),
                        )
                    })?;
                // A partial failure fails the whole send: the caller's message is delivered
                // again and the jobs that did go through are dropped by their dedup ids.
                if let Some(failed) = output.failed().first() {
                    let said = format!(
                        "{} of {} job(s) refused by {queue}, e.g. {}: {}",
                        output.failed().len(),
                        chunk.len(),
                        failed.code(),
                        failed.message().unwrap_or("")
                    );
                    return Err(if failed.sender_fault() {
                        PortError::input(said)
                    } else {
                        PortError::transient(said)
                    });
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl DeliveryControl for SqsQueue {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError> {
        let url = self
            .source_url
            .as_deref()
            .ok_or_else(|| PortError::setup("no source queue configured for visibility changes"))?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                fail(
                    "sqs:ChangeMessageVisibility",
                    sdk_failure("ChangeMessageVisibility", &e),
                )
            })
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError> {
        let url = self
            .dead_letter_url
            .as_deref()
            .ok_or_else(|| PortError::setup("no dead-letter queue configured"))?;
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PortError::input(format!("dead letter attribute: {e}")))
        };
        let mut send = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(&letter.body)
            .message_attributes(REASON_ATTRIBUTE, attribute(&letter.reason)?)
            .message_attributes(SOURCE_ID_ATTRIBUTE, attribute(&letter.message_id)?);
        if url.ends_with(".fifo") {
            // The original group keeps a redrive in order; the source id makes a second
            // dead-lettering of the same delivery a no-op.
            send = send
                .message_group_id(sqs_id(letter.group_id.as_deref().unwrap_or("dead-letters")))
                .message_deduplication_id(sqs_id(&letter.message_id));
        }
        send.send().await.map(|_| ()).map_err(|e| {
            fail(
                "sqs:SendMessage",
                sdk_failure("SendMessage to the dead-letter queue", &e),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sqs_would_refuse_become_stable_hashes() {
        assert_eq!(sqs_id("weekly-42:titles:v3"), "weekly-42:titles:v3");
        let long = "x".repeat(200);
        assert_eq!(sqs_id(&long).len(), 64);
        assert_eq!(sqs_id(&long), sqs_id(&long));
        assert_ne!(sqs_id("with space"), "with space");
        assert_eq!(sqs_id("").len(), 64);
    }
}
