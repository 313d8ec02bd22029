//! Operating an SQS dead-letter queue: read what is in it (with podflow's reasons) and move
//! messages back to their queue, optionally rewritten (another model for a prompt job).
//!
//! Moving uses SQS's own `StartMessageMoveTask` when every message goes back unchanged; when
//! the operator picks or rewrites messages — or SQS will not start a move task (moto has
//! none) — messages are received, sent to the source queue with their FIFO group and
//! deduplication ids, and only then deleted from the DLQ.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::{
    Client,
    error::ProvideErrorMetadata,
    types::{MessageSystemAttributeName, QueueAttributeName},
};

use podflow_core::{
    DeadLetterMessage, DeadLetterQueue, PickLetter, PortError, ReplayReport, RewriteLetter,
    undelivered,
};

use crate::{
    event_replay::EventRedelivery,
    sdk_failure,
    sqs::{REASON_ATTRIBUTE, sqs_id},
};

/// A message received from the dead-letter queue, with what SQS needs to send it back and
/// delete it.
struct Received {
    letter: DeadLetterMessage,
    dedup_id: Option<String>,
    /// When it was first sent (milliseconds since the epoch).
    sent_at_ms: Option<u64>,
    receipt_handle: String,
}

pub struct SqsDeadLetterQueue {
    client: Client,
    dlq_url: String,
    source_url: String,
    /// SQS drops a FIFO message whose dedup id it saw in the last five minutes: a message
    /// sent more recently than this goes back under a dedup id of its own instead.
    pub dedup_window: Duration,
}

fn failed<E>(
    what: &str,
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    sdk_failure(what, e)
}

/// Why a message is in the dead-letter queue: podflow's own reason attribute, else what
/// EventBridge (its error attributes) or Lambda (an on-failure record as the body) said.
/// `None` when the queue moved it after its last receive, which says nothing.
fn reason(m: &aws_sdk_sqs::types::Message) -> Option<String> {
    let attribute = |name: &str| {
        m.message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    attribute(REASON_ATTRIBUTE)
        .or_else(|| undelivered::eventbridge_reason(attribute))
        .or_else(|| undelivered::LambdaFailure::read(m.body()?).map(|f| f.reason()))
}

impl SqsDeadLetterQueue {
    pub fn new(config: &SdkConfig, dlq_url: &str, source_url: &str) -> Self {
        Self {
            client: Client::new(config),
            dlq_url: dlq_url.to_owned(),
            source_url: source_url.to_owned(),
            dedup_window: Duration::from_secs(5 * 60),
        }
    }

    /// Receives every message (hidden for `hold` while we work on them).
    async fn receive_all(&self, hold: Duration) -> Result<Vec<Received>, PortError> {
        let mut out: Vec<Received> = Vec::new();
        loop {
            let got = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(i32::try_from(hold.as_secs()).unwrap_or(i32::MAX))
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| failed("ReceiveMessage from the dead-letter queue", &e))?;
            let messages = got.messages();
            if messages.is_empty() {
                return Ok(out);
            }
            for m in messages {
                let attr = |name: MessageSystemAttributeName| {
                    m.attributes().and_then(|a| a.get(&name)).cloned()
                };
                let letter = DeadLetterMessage {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    source_queue: self.source_url.clone(),
                    body: m.body().unwrap_or_default().to_owned(),
                    group_id: attr(MessageSystemAttributeName::MessageGroupId),
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    reason: reason(m),
                };
                if out.iter().any(|r| r.letter.message_id == letter.message_id) {
                    return Ok(out);
                }
                out.push(Received {
                    letter,
                    dedup_id: attr(MessageSystemAttributeName::MessageDeduplicationId),
                    sent_at_ms: attr(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|t| t.parse().ok()),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                });
            }
        }
    }

    async fn release(&self, letters: &[Received]) -> Result<(), PortError> {
        for l in letters {
            self.client
                .change_message_visibility()
                .queue_url(&self.dlq_url)
                .receipt_handle(&l.receipt_handle)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(|e| failed("ChangeMessageVisibility", &e))?;
        }
        Ok(())
    }

    async fn queue_arn(&self, url: &str) -> Result<String, PortError> {
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| failed("GetQueueAttributes", &e))?;
        attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| {
                PortError::storage("GetQueueAttributes", format!("{url} has no QueueArn"))
            })
    }

    /// Sends the events of the letters `pick` picks (all without it) back with `to`, and
    /// deletes each one that went; one that cannot go (or be deleted) stays, with the
    /// reason. Letters are held for 15 minutes while this runs.
    pub async fn redeliver(
        &self,
        pick: Option<&PickLetter<'_>>,
        to: &EventRedelivery,
    ) -> Result<ReplayReport, PortError> {
        let received = self.receive_all(Duration::from_secs(15 * 60)).await?;
        let mut report = ReplayReport::default();
        let mut untouched = Vec::new();
        for r in received {
            if pick.is_some_and(|pick| !pick(&r.letter)) {
                untouched.push(r);
                continue;
            }
            let went = match to.redeliver(&r.letter.body).await {
                Ok(went) => went,
                Err(why) => {
                    report.refused.push((r.letter.message_id.clone(), why));
                    untouched.push(r);
                    continue;
                }
            };
            tracing::info!(message_id = r.letter.message_id, went, "event sent back");
            let deleted = self
                .client
                .delete_message()
                .queue_url(&self.dlq_url)
                .receipt_handle(&r.receipt_handle)
                .send()
                .await;
            match deleted {
                Ok(_) => report.moved.push(r.letter.message_id),
                // Sent but still here: a second replay sends it again, which every
                // consumer absorbs.
                Err(e) => report.refused.push((
                    r.letter.message_id.clone(),
                    format!(
                        "sent back ({went}) but not deleted: {}",
                        failed("DeleteMessage from the dead-letter queue", &e).report()
                    ),
                )),
            }
        }
        // Best effort: what is not released shows again when its hold ends.
        if let Err(e) = self.release(&untouched).await {
            tracing::warn!(error = %e.report(), "letters not released; they show again in 15 minutes");
        }
        Ok(report)
    }

    /// Asks SQS to move every message back; `None` when it will not (no move tasks on this
    /// endpoint, as on moto; no permission; a failure) — moving one by one always works.
    async fn start_move_task(&self) -> Result<Option<String>, PortError> {
        let source = self.queue_arn(&self.dlq_url).await?;
        let destination = self.queue_arn(&self.source_url).await?;
        match self
            .client
            .start_message_move_task()
            .source_arn(source)
            .destination_arn(destination)
            .send()
            .await
        {
            Ok(task) => Ok(task.task_handle().map(str::to_owned)),
            Err(e) => {
                let said = sdk_failure("StartMessageMoveTask", &e);
                tracing::info!(reason = %said, "no move task; moving messages one by one");
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    fn location(&self) -> String {
        format!("the dead-letter queue {}", self.dlq_url)
    }

    async fn list(&self) -> Result<Vec<DeadLetterMessage>, PortError> {
        let received = self.receive_all(Duration::from_secs(30)).await?;
        self.release(&received).await?;
        Ok(received.into_iter().map(|r| r.letter).collect())
    }

    /// With no pick and no rewrite, SQS's move task does the work when available; else
    /// messages are received, sent back with their FIFO group and deduplication ids, and
    /// only then deleted from the DLQ.
    async fn replay(
        &self,
        pick: Option<&PickLetter<'_>>,
        rewrite: Option<&RewriteLetter<'_>>,
    ) -> Result<ReplayReport, PortError> {
        if pick.is_none()
            && rewrite.is_none()
            && let Some(handle) = self.start_move_task().await?
        {
            return Ok(ReplayReport {
                move_task: Some(handle),
                ..ReplayReport::default()
            });
        }
        let received = self.receive_all(Duration::from_secs(120)).await?;
        let mut report = ReplayReport::default();
        let mut untouched = Vec::new();
        let fifo = self.source_url.ends_with(".fifo");
        let now_ms = u64::try_from(podflow_core::now_ms()).unwrap_or(0);
        for r in received {
            if pick.is_some_and(|pick| !pick(&r.letter)) {
                untouched.push(r);
                continue;
            }
            let body = match rewrite.map_or_else(|| Ok(r.letter.body.clone()), |w| w(&r.letter)) {
                Ok(body) => body,
                Err(why) => {
                    report.refused.push((r.letter.message_id.clone(), why));
                    untouched.push(r);
                    continue;
                }
            };
            let mut send = self
                .client
                .send_message()
                .queue_url(&self.source_url)
                .message_body(body);
            if fifo {
                let recent = r.sent_at_ms.is_none_or(|sent| {
                    now_ms.saturating_sub(sent)
                        < u64::try_from(self.dedup_window.as_millis()).unwrap_or(u64::MAX)
                });
                let dedup = match (&r.dedup_id, recent) {
                    (Some(original), false) => original.clone(),
                    // Inside SQS's window the original id would be dropped as a duplicate;
                    // this one is still stable, so replaying twice sends once.
                    _ => sqs_id(&format!("replay:{}", r.letter.message_id)),
                };
                send = send
                    .message_group_id(
                        r.letter
                            .group_id
                            .clone()
                            .unwrap_or_else(|| "replayed".into()),
                    )
                    .message_deduplication_id(dedup);
            }
            send.send()
                .await
                .map_err(|e| failed("SendMessage back to the source queue", &e))?;
            // Deleted only once it is safely back: a crash in between sends it twice, and
            // the dedup id absorbs that.
            self.client
                .delete_message()
                .queue_url(&self.dlq_url)
                .receipt_handle(&r.receipt_handle)
                .send()
                .await
                .map_err(|e| failed("DeleteMessage from the dead-letter queue", &e))?;
            report.moved.push(r.letter.message_id);
        }
        self.release(&untouched).await?;
        Ok(report)
    }
}
