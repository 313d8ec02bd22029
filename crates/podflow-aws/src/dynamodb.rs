//! [`EpisodeStore`] over one DynamoDB table (`pk`, `sk` strings), the AWS twin of the
//! SQLite store. Idempotency comes from conditional writes, counters are atomic `ADD`s,
//! and the summary revision is claimed with a condition on the revision it read.
//!
//! Items (`EP#<episode>` partitions hold everything about one episode):
//! | pk | sk | what |
//! |---|---|---|
//! | `EP#<id>` | `EPISODE` | the episode record |
//! | `EP#<id>` | `STEP#<step>` | a step's status, attempts, times, note |
//! | `EP#<id>` | `PROMPT#<prompt>` | a planned prompt and how it is going |
//! | `EP#<id>` | `ARTIFACT#<name>` | a named output |
//! | `EP#<id>` | `WORKLOG#<kind>` | how often work of a kind was executed (counter) |
//! | `EP#<id>` | `REVISION` | the latest claimed summary revision and its fingerprint |
//! | `EP#<id>` | `REVISION#<000001>` | a revision's summary envelope |
//! | `WORK#<key>` | `RESULT` | the result of expensive work, by content key |
//! | `DELIVERY#<consumer>#<event id>` | `COUNT` | deliveries of an event to a function (expires after two days) |
//!
//! Long because the `EpisodeStore` port is: one conditional-write recipe per method, each
//! the DynamoDB twin of the SQLite statement in `podflow-embedded`'s store.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::{
    Client,
    error::SdkError,
    types::{AttributeValue, Put, TransactWriteItem, Update},
};
use podflow_core::{
    DeliveryCounter, EnvelopeFor, EpisodeRecord, EpisodeStore, PortError, PromptState,
    PromptStatus, PromptUpdate, StepState, StepStatus, StoredRevision, now_ms,
};
use podflow_events::{BlobRef, EventEnvelope};

use crate::sdk_failure;

type Item = HashMap<String, AttributeValue>;

/// The most items one TransactWriteItems call takes.
const TRANSACTION_ITEMS: usize = 100;

/// How often a claim is retried when another publisher claimed in between.
const CLAIM_ATTEMPTS: u32 = 8;

pub struct DynamoEpisodeStore {
    client: Client,
    table: String,
}

impl DynamoEpisodeStore {
    /// A prompt's item as freshly queued.
    fn queued_prompt(&self, episode_id: &str, prompt: &(String, u32, String)) -> Item {
        let (prompt_id, version, model) = prompt;
        HashMap::from([
            ("pk".to_owned(), s(&ep(episode_id))),
            ("sk".to_owned(), s(&format!("PROMPT#{prompt_id}"))),
            ("prompt_id".to_owned(), s(prompt_id)),
            ("prompt_version".to_owned(), n(version)),
            ("model".to_owned(), s(model)),
            ("status".to_owned(), s("queued")),
            ("attempts".to_owned(), n(0)),
            ("input_tokens".to_owned(), n(0)),
            ("output_tokens".to_owned(), n(0)),
            ("updated_at".to_owned(), n(now_ms())),
        ])
    }

    /// Puts each prompt as queued unless one is completed at the same version: each put
    /// stands alone, so a redelivered plan keeps what already finished.
    async fn plan_prompts_keeping_completed(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
    ) -> Result<(), PortError> {
        for prompt in prompts {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(self.queued_prompt(episode_id, prompt)))
                .condition_expression(
                    "attribute_not_exists(pk) OR #status <> :completed OR prompt_version <> :version",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":completed", s("completed"))
                .expression_attribute_values(":version", n(prompt.1))
                .send()
                .await;
            match put {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(self.failed("PutItem prompt", &e)),
            }
        }
        Ok(())
    }

    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            client: Client::new(config),
            table: table.to_owned(),
        }
    }

    fn failed<E>(
        &self,
        what: &str,
        e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> PortError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let failure = sdk_failure(what, e);
        PortError::new(failure.kind(), format!("DynamoDB table {}", self.table)).because(failure)
    }

    /// Writes the envelope of a claimed revision that has none, once: of two racing
    /// deliveries the second finds the first's.
    async fn complete_revision(
        &self,
        episode_id: &str,
        revision: u32,
        envelope_for: &EnvelopeFor<'_>,
    ) -> Result<StoredRevision, PortError> {
        let envelope = envelope_for(revision);
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&ep(episode_id)))
            .key("sk", s(&format!("REVISION#{revision:06}")))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(envelope)")
            .update_expression("SET envelope = :e")
            .expression_attribute_values(":e", s(&to_json(&envelope, "summary")?))
            .send()
            .await;
        match written {
            Ok(_) => Ok(StoredRevision {
                revision,
                envelope,
                new: true,
            }),
            Err(e) if is_condition_failure(&e) => {
                match self.summary(episode_id, Some(revision)).await? {
                    Some(envelope) => Ok(StoredRevision {
                        revision,
                        envelope,
                        new: false,
                    }),
                    None => Err(PortError::storage(
                        format!("DynamoDB table {}", self.table),
                        format!("summary revision {revision} of {episode_id} has no item"),
                    )),
                }
            }
            Err(e) => Err(self.failed("UpdateItem summary", &e)),
        }
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, PortError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map(|o| o.item)
            .map_err(|e| self.failed("GetItem", &e))
    }

    /// Every item of a partition whose sort key starts with `prefix`, in sort-key order.
    async fn query(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.failed("Query", &e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn ep(episode_id: &str) -> String {
    format!("EP#{episode_id}")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::storage("DynamoDB item", format!("stored {what} is unreadable: {e}"))
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn json_of<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
    what: &str,
) -> Result<Option<T>, PortError> {
    text(item, name)
        .map(|t| serde_json::from_str(t).map_err(|e| corrupt(what, e)))
        .transpose()
}

fn to_json(value: &impl serde::Serialize, what: &str) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| corrupt(what, e))
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    matches!(
        e.code(),
        Some("ConditionalCheckFailedException") | Some("TransactionCanceledException")
    )
}

#[async_trait]
impl EpisodeStore for DynamoEpisodeStore {
    async fn upsert_episode(&self, record: &EpisodeRecord) -> Result<bool, PortError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&ep(&record.episode_id)))
            .item("sk", s("EPISODE"))
            .item("record", s(&to_json(record, "episode")?))
            .item("created_at", n(record.created_at_ms))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.failed("PutItem episode", &e)),
        }
    }

    async fn episode(&self, episode_id: &str) -> Result<Option<EpisodeRecord>, PortError> {
        match self.get(&ep(episode_id), "EPISODE").await? {
            Some(item) => json_of(&item, "record", "episode"),
            None => Ok(None),
        }
    }

    /// A scan: listing every episode is an operator's question (`podflow status`), asked
    /// rarely, so no index is kept for it.
    async fn episodes(&self) -> Result<Vec<EpisodeRecord>, PortError> {
        let mut records: Vec<EpisodeRecord> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :episode")
                .expression_attribute_values(":episode", s("EPISODE"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.failed("Scan", &e))?;
            for item in page.items.unwrap_or_default() {
                records.extend(json_of::<EpisodeRecord>(&item, "record", "episode")?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        records.sort_by(|a, b| {
            (a.created_at_ms, &a.episode_id).cmp(&(b.created_at_ms, &b.episode_id))
        });
        Ok(records)
    }

    async fn step_started(&self, episode_id: &str, step: &str) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&ep(episode_id)))
            .key("sk", s(&format!("STEP#{step}")))
            .update_expression(
                "SET #status = :running, started_at = :now, step = :step REMOVE finished_at, note ADD attempts :one",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":step", s(step))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("UpdateItem step", &e))
    }

    async fn step_finished(
        &self,
        episode_id: &str,
        step: &str,
        status: StepStatus,
        note: Option<&str>,
    ) -> Result<(), PortError> {
        let now = now_ms();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&ep(episode_id)))
            .key("sk", s(&format!("STEP#{step}")))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":step", s(step))
            .expression_attribute_values(":one", n(1));
        let set = "SET #status = :status, finished_at = :now, step = :step, \
                   attempts = if_not_exists(attempts, :one), started_at = if_not_exists(started_at, :now)";
        update = match note {
            Some(note) => update
                .update_expression(format!("{set}, note = :note"))
                .expression_attribute_values(":note", s(note)),
            None => update.update_expression(format!("{set} REMOVE note")),
        };
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("UpdateItem step", &e))
    }

    async fn steps(&self, episode_id: &str) -> Result<Vec<StepState>, PortError> {
        let mut steps: Vec<StepState> = self
            .query(&ep(episode_id), "STEP#")
            .await?
            .iter()
            .map(|item| StepState {
                step: text(item, "step").unwrap_or_default().to_owned(),
                status: StepStatus::parse(text(item, "status").unwrap_or_default()),
                attempts: number(item, "attempts").unwrap_or(0),
                started_at_ms: number(item, "started_at").unwrap_or(0),
                finished_at_ms: number(item, "finished_at"),
                note: text(item, "note").map(str::to_owned),
            })
            .collect();
        steps.sort_by_key(|s| s.started_at_ms);
        Ok(steps)
    }

    async fn work_result(&self, key: &str) -> Result<Option<serde_json::Value>, PortError> {
        match self.get(&format!("WORK#{key}"), "RESULT").await? {
            Some(item) => json_of(&item, "result", "work result"),
            None => Ok(None),
        }
    }

    async fn record_work(
        &self,
        key: &str,
        episode_id: &str,
        result: &serde_json::Value,
    ) -> Result<(), PortError> {
        let kind = key.split(':').next().unwrap_or(key);
        // The result and its log entry are written together or not at all.
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&format!("WORK#{key}")))
            .item("sk", s("RESULT"))
            .item("result", s(&result.to_string()))
            .item("episode_id", s(episode_id))
            .item("created_at", n(now_ms()))
            .build()
            .map_err(|e| corrupt("work result", e))?;
        let count = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&ep(episode_id)))
            .key("sk", s(&format!("WORKLOG#{kind}")))
            .update_expression("ADD executions :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| corrupt("work log", e))?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("TransactWriteItems work", &e))
    }

    async fn work_count(&self, kind: &str, episode_id: &str) -> Result<u32, PortError> {
        Ok(self
            .get(&ep(episode_id), &format!("WORKLOG#{kind}"))
            .await?
            .and_then(|item| number(&item, "executions"))
            .unwrap_or(0))
    }

    async fn plan_prompts(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
    ) -> Result<(), PortError> {
        // A completed prompt at the same version keeps its state; anything else is
        // (re)queued from scratch.
        self.plan_prompts_keeping_completed(episode_id, prompts)
            .await
    }

    async fn requeue_prompts(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
    ) -> Result<(), PortError> {
        // Re-run prompts are queued together or not at all, up to a transaction's 100
        // items (a catalog rarely has more than a dozen prompts).
        for batch in prompts.chunks(TRANSACTION_ITEMS) {
            let mut transaction = self.client.transact_write_items();
            for prompt in batch {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(self.queued_prompt(episode_id, prompt)))
                    .build()
                    .map_err(|e| corrupt("queued prompt", e))?;
                transaction =
                    transaction.transact_items(TransactWriteItem::builder().put(put).build());
            }
            transaction.send().await.map_err(|e| {
                // No put here has a condition, so a cancelled transaction met a concurrent
                // write to the same prompt or throttling: both pass, so it is retried.
                if e.as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception())
                {
                    PortError::transient(format!(
                        "DynamoDB table {}: re-queueing prompts was cancelled (a concurrent write or throttling)",
                        self.table
                    ))
                } else {
                    self.failed("TransactWriteItems re-run prompts", &e)
                }
            })?;
        }
        Ok(())
    }

    async fn update_prompt(
        &self,
        episode_id: &str,
        prompt_id: &str,
        update: &PromptUpdate,
    ) -> Result<(), PortError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&ep(episode_id)))
            .key("sk", s(&format!("PROMPT#{prompt_id}")))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":s", s(update.status().as_str()))
            .expression_attribute_values(":a", n(update.attempt()));
        let request = match update {
            PromptUpdate::Running { .. } => {
                request.update_expression("SET #status = :s, attempts = :a, updated_at = :now")
            }
            PromptUpdate::Retrying { error, .. } => request
                .update_expression("SET #status = :s, attempts = :a, last_error = :e, updated_at = :now")
                .expression_attribute_values(":e", s(error)),
            PromptUpdate::Throttled { error, .. } => request
                .update_expression(
                    "SET #status = :s, attempts = :a, last_error = :e, updated_at = :now, \
                     throttled_since = if_not_exists(throttled_since, :now) ADD throttles :one",
                )
                .expression_attribute_values(":e", s(error))
                .expression_attribute_values(":one", n(1)),
            // A replay of a failed prompt starts a fresh throttling budget.
            PromptUpdate::Failed { error, .. } => request
                .update_expression(
                    "SET #status = :s, attempts = :a, last_error = :e, updated_at = :now \
                     REMOVE throttles, throttled_since",
                )
                .expression_attribute_values(":e", s(error)),
            PromptUpdate::Completed {
                output,
                input_tokens,
                output_tokens,
                ..
            } => request
                .update_expression(
                    "SET #status = :s, attempts = :a, #output = :o, input_tokens = :i, output_tokens = :t, updated_at = :now REMOVE last_error",
                )
                .expression_attribute_names("#output", "output")
                .expression_attribute_values(":o", s(&to_json(output, "prompt output")?))
                .expression_attribute_values(":i", n(input_tokens))
                .expression_attribute_values(":t", n(output_tokens)),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // Like an SQL UPDATE of no rows: a prompt that was never planned stays absent.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(self.failed("UpdateItem prompt", &e)),
        }
    }

    async fn prompts(&self, episode_id: &str) -> Result<Vec<PromptState>, PortError> {
        self.query(&ep(episode_id), "PROMPT#")
            .await?
            .iter()
            .map(|item| {
                Ok(PromptState {
                    prompt_id: text(item, "prompt_id").unwrap_or_default().to_owned(),
                    prompt_version: number(item, "prompt_version").unwrap_or(0),
                    model: text(item, "model").unwrap_or_default().to_owned(),
                    status: PromptStatus::parse(text(item, "status").unwrap_or_default()),
                    attempts: number(item, "attempts").unwrap_or(0),
                    last_error: text(item, "last_error").map(str::to_owned),
                    output: json_of::<BlobRef>(item, "output", "prompt output")?,
                    input_tokens: number(item, "input_tokens").unwrap_or(0),
                    output_tokens: number(item, "output_tokens").unwrap_or(0),
                    throttles: number(item, "throttles").unwrap_or(0),
                    throttled_since_ms: number(item, "throttled_since"),
                })
            })
            .collect()
    }

    async fn put_artifact(
        &self,
        episode_id: &str,
        name: &str,
        blob: &BlobRef,
    ) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&ep(episode_id)))
            .item("sk", s(&format!("ARTIFACT#{name}")))
            .item("name", s(name))
            .item("blob", s(&to_json(blob, "artifact")?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("PutItem artifact", &e))
    }

    async fn artifacts(&self, episode_id: &str) -> Result<BTreeMap<String, BlobRef>, PortError> {
        let mut out = BTreeMap::new();
        for item in self.query(&ep(episode_id), "ARTIFACT#").await? {
            if let (Some(name), Some(blob)) = (
                text(&item, "name"),
                json_of::<BlobRef>(&item, "blob", "artifact")?,
            ) {
                out.insert(name.to_owned(), blob);
            }
        }
        Ok(out)
    }

    async fn record_revision(
        &self,
        episode_id: &str,
        fingerprint: &str,
        envelope_for: &EnvelopeFor<'_>,
    ) -> Result<StoredRevision, PortError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let head = self.get(&ep(episode_id), "REVISION").await?;
            let latest: Option<(u32, String)> = head
                .as_ref()
                .and_then(|h| Some((number(h, "revision")?, text(h, "fingerprint")?.to_owned())));
            if let Some((revision, fp)) = &latest
                && fp == fingerprint
            {
                match self.summary(episode_id, Some(*revision)).await? {
                    Some(envelope) => {
                        return Ok(StoredRevision {
                            revision: *revision,
                            envelope,
                            new: false,
                        });
                    }
                    // Claimed by a build that wrote the envelope apart and stopped before it.
                    None => {
                        return self
                            .complete_revision(episode_id, *revision, envelope_for)
                            .await;
                    }
                }
            }
            let next = latest.as_ref().map_or(1, |(r, _)| r + 1);
            let envelope = envelope_for(next);
            // The head moves only from the revision this claim read: of two publishers
            // racing, one wins and the other reads again (and finds the same outcome). The
            // revision's item carries its envelope, so both exist or neither.
            let mut head_update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(&ep(episode_id)))
                .key("sk", s("REVISION"))
                .update_expression("SET revision = :next, fingerprint = :fp")
                .expression_attribute_values(":next", n(next))
                .expression_attribute_values(":fp", s(fingerprint));
            head_update = match &latest {
                Some((revision, _)) => head_update
                    .condition_expression("revision = :read")
                    .expression_attribute_values(":read", n(revision)),
                None => head_update.condition_expression("attribute_not_exists(pk)"),
            };
            let revision_item = Put::builder()
                .table_name(&self.table)
                .item("pk", s(&ep(episode_id)))
                .item("sk", s(&format!("REVISION#{next:06}")))
                .item("revision", n(next))
                .item("fingerprint", s(fingerprint))
                .item("claimed_at", n(now_ms()))
                .item("envelope", s(&to_json(&envelope, "summary")?))
                .build()
                .map_err(|e| corrupt("revision", e))?;
            let written = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .update(head_update.build().map_err(|e| corrupt("revision", e))?)
                        .build(),
                )
                .transact_items(TransactWriteItem::builder().put(revision_item).build())
                .send()
                .await;
            match written {
                Ok(_) => {
                    return Ok(StoredRevision {
                        revision: next,
                        envelope,
                        new: true,
                    });
                }
                Err(e) if is_condition_failure(&e) => continue,
                Err(e) => return Err(self.failed("TransactWriteItems revision", &e)),
            }
        }
        Err(PortError::storage(
            format!("DynamoDB table {}", self.table),
            format!(
                "could not claim a summary revision for {episode_id} after {CLAIM_ATTEMPTS} tries (too many publishers at once); the message will be retried"
            ),
        ))
    }

    async fn summary(
        &self,
        episode_id: &str,
        revision: Option<u32>,
    ) -> Result<Option<EventEnvelope>, PortError> {
        let item = match revision {
            Some(r) => {
                self.get(&ep(episode_id), &format!("REVISION#{r:06}"))
                    .await?
            }
            None => self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(&ep(episode_id)))
                .expression_attribute_values(":prefix", s("REVISION#"))
                .scan_index_forward(false)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.failed("Query summary", &e))?
                .items
                .and_then(|items| items.into_iter().next()),
        };
        match item {
            Some(item) => json_of(&item, "envelope", "summary"),
            None => Ok(None),
        }
    }
}

/// How long a delivery count is kept: longer than any retry of the event can come (Lambda
/// keeps an asynchronous event at most 6 hours, EventBridge its retries at most 24).
const DELIVERY_COUNT_SECONDS: i64 = 2 * 24 * 60 * 60;

#[async_trait]
impl DeliveryCounter for DynamoEpisodeStore {
    async fn count_delivery(&self, consumer: &str, event_id: &str) -> Result<u32, PortError> {
        let expires_at = now_ms() / 1000 + DELIVERY_COUNT_SECONDS;
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("DELIVERY#{consumer}#{event_id}")))
            .key("sk", s("COUNT"))
            .update_expression("ADD deliveries :one SET expires_at = :expires")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(expires_at))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| self.failed("UpdateItem delivery count", &e))?;
        answer
            .attributes()
            .and_then(|a| a.get("deliveries"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt("delivery count", "UpdateItem answered without it"))
    }
}
