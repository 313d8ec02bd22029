//! Runs a podflow service's [`MessageHandler`] under AWS Lambda — the same handler the
//! local runner drives — and applies its [`Outcome`] with AWS adapters.
//!
//! # Layout
//! - [`Effects`]: where outcomes go: events to the bus, jobs to their queue, and (for queue
//!   consumers) backoff and dead-lettering of deliveries.
//! - [`handle_sqs_payload`] / [`handle_sqs_batch`]: one SQS batch in, partial batch
//!   failures out — every record is handled, FIFO groups in order and concurrently with each
//!   other, and an unreadable record is dead-lettered alone.
//! - [`handle_event`]: one EventBridge event in; an error makes Lambda retry it and then
//!   hand it to the function's on-failure destination.
//! - [`handle_undelivered_events`]: events EventBridge could not hand to the function, from
//!   its undelivered-events queue: each ends its step and is parked in the event DLQ.
//! - [`run_sqs`] / [`run_eventbridge`]: the Lambda loop; [`run_function_url`] for a
//!   function URL answering GETs, [`run_http_function_url`] for one that reads headers and
//!   bodies (Slack's signed POSTs).
//! - [`metrics`]: CloudWatch metrics (EMF lines) from the events a function publishes.
//! - [`wiring`]: the AWS adapters (DynamoDB, S3, EventBridge, SQS) from the environment
//!   the template sets; a function's `main` builds its handler on them and calls
//!   [`wiring::AwsWiring::serve_events`] or [`wiring::AwsWiring::serve_queue`].

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_lambda_events::{
    eventbridge::EventBridgeEvent,
    http,
    lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse},
    sqs::{SqsBatchResponse, SqsEvent, SqsMessage},
};
use futures_util::future::join_all;
use lambda_runtime::{LambdaEvent, service_fn};
use podflow_core::{
    DeadLetter, Delivery, DeliveryControl, DeliveryCounter, EventPublisher, JobSender,
    MessageHandler, Outcome, QueuedJob,
};
use podflow_events::EventEnvelope;
use serde_json::Value;

pub mod metrics;
pub mod wiring;

/// Where a handler's outcome goes.
pub struct Effects {
    pub events: Arc<dyn EventPublisher>,
    pub jobs: Arc<dyn JobSender>,
    /// For queue consumers: extends a delivery's visibility for backoff and moves hopeless
    /// messages to the dead-letter queue at once. Without it a retry waits out the queue's
    /// visibility timeout, and a dead letter fails until the redrive policy moves it.
    pub control: Option<Arc<dyn DeliveryControl>>,
    /// The queue's `maxReceiveCount`, for queue consumers: the last receive runs the
    /// handler's `give_up` (its `…Failed` event and a dead letter) instead of another
    /// attempt, since SQS's redrive would move the message on silently — also after
    /// earlier receives that crashed or timed out and so could say nothing.
    pub max_receives: Option<u32>,
    /// For queue consumers: the longest one record may take. A record is not started when
    /// less than this is left before the invocation's deadline; it is returned at once for
    /// another invocation, so a batch never runs past the function's timeout (where Lambda
    /// would kill it and SQS redrive it with no `…Failed` event).
    pub record_budget: Option<Duration>,
    /// Where CloudWatch metrics derived from the published events go (EMF on stdout on
    /// Lambda); `None` for none.
    pub metrics: Option<Arc<dyn metrics::MetricsSink>>,
    /// For EventBridge rule targets: how many times Lambda delivers one event (1 + the
    /// function's asynchronous retries). The last delivery runs the handler's `give_up`
    /// instead of another attempt, as the last receive does for queue consumers.
    pub event_attempts: Option<EventAttempts>,
}

/// Counts each event's deliveries to a rule target, which Lambda does not number.
#[derive(Clone)]
pub struct EventAttempts {
    pub counter: Arc<dyn DeliveryCounter>,
    /// Deliveries Lambda makes of one event: `MaximumRetryAttempts` + 1.
    pub max: u32,
}

impl Effects {
    /// Moves a hopeless message to the dead-letter queue now. `Err` carries the reason
    /// when that cannot be done here (no queue of our own, or it refused), so the caller
    /// fails the delivery and SQS's redrive or Lambda's on-failure destination takes it.
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), String> {
        let Some(control) = &self.control else {
            return Err(letter.reason);
        };
        match control.dead_letter(&letter).await {
            Ok(()) => {
                tracing::warn!(
                    message_id = letter.message_id,
                    reason = letter.reason,
                    "dead-lettered"
                );
                Ok(())
            }
            Err(e) => Err(format!(
                "{} (and the dead-letter queue refused it: {})",
                letter.reason,
                e.report()
            )),
        }
    }
}

/// Why an invocation as a whole failed (Lambda retries it).
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("event {id} will be retried: {reason}")]
    Retry { id: String, reason: String },
    #[error("event {id} cannot be handled and was not dead-lettered here: {reason}")]
    DeadLettered { id: String, reason: String },
    #[error("{0} record(s) without a messageId failed; the whole batch will be delivered again")]
    UnidentifiedRecords(usize),
    #[error("the payload has no `Records` list: this function is meant for an SQS event source")]
    NotSqs,
}

/// What Lambda records for a failed invocation (the on-failure destination keeps it): the
/// kind of failure and the reason in words.
impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(e: InvocationError) -> Self {
        let error_type = match &e {
            InvocationError::Retry { .. } => "podflow.Retry",
            InvocationError::DeadLettered { .. } => "podflow.DeadLetter",
            InvocationError::UnidentifiedRecords(_) => "podflow.UnidentifiedRecords",
            InvocationError::NotSqs => "podflow.NotSqs",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// SQS's ceiling for a visibility change (12 hours).
const MAX_DELAY: Duration = Duration::from_secs(12 * 60 * 60);

/// Hands on what a handler produced: jobs first, then events, so an event announcing work
/// is never out before the work is queued.
async fn apply(
    effects: &Effects,
    emit: &[EventEnvelope],
    jobs: &[QueuedJob],
) -> Result<(), String> {
    if !jobs.is_empty() {
        effects.jobs.send_jobs(jobs).await.map_err(|e| e.report())?;
    }
    if !emit.is_empty() {
        effects.events.publish(emit).await.map_err(|e| e.report())?;
        if let Some(sink) = &effects.metrics {
            metrics::record(sink.as_ref(), emit);
        }
    }
    Ok(())
}

/// One SQS record: `Ok` to delete it, `Err(reason)` to report it as a batch item failure.
async fn handle_record(
    handler: &dyn MessageHandler,
    effects: &Effects,
    record: &SqsMessage,
    deadline: Option<Instant>,
) -> Result<(), String> {
    let message_id = record.message_id.clone().unwrap_or_default();
    let delivery = Delivery {
        message_id: message_id.clone(),
        // A record without a body reaches the handler empty; it dead-letters it by name.
        body: record.body.clone().unwrap_or_default(),
        attempt: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        deadline,
    };
    if let (Some(deadline), Some(budget)) = (deadline, effects.record_budget)
        && deadline.saturating_duration_since(Instant::now()) < budget
    {
        // Not started, so nothing to undo: visible again at once for the next invocation.
        if let (Some(control), Some(receipt)) = (&effects.control, &record.receipt_handle)
            && let Err(e) = control.delay(receipt, Duration::ZERO).await
        {
            tracing::warn!(message_id, error = %e.report(), "could not return the record early; the queue's visibility timeout applies");
        }
        return Err(format!(
            "not started: less than {} s left in this invocation",
            budget.as_secs()
        ));
    }
    let outcome = match effects.max_receives {
        // SQS moves the message to its dead-letter queue after this receive, silently; so
        // this receive ends the step or prompt instead, whatever became of the earlier ones
        // (answers asking for a retry, or a function that crashed or ran out of time).
        Some(max) if delivery.attempt >= max => {
            let reason = format!(
                "received {} times without being processed (maxReceiveCount {max})",
                delivery.attempt
            );
            handler.give_up(&delivery, &reason).await
        }
        _ => handler.handle(&delivery).await,
    };
    match outcome {
        Outcome::Done { emit, jobs } => apply(effects, &emit, &jobs).await,
        Outcome::Retry { delay, reason } => {
            if let (Some(control), Some(receipt)) = (&effects.control, &record.receipt_handle)
                && let Err(e) = control.delay(receipt, delay.min(MAX_DELAY)).await
            {
                tracing::warn!(message_id, error = %e.report(), "could not delay the retry; the queue's visibility timeout applies");
            }
            Err(reason)
        }
        Outcome::DeadLetter { emit, reason } => {
            park(
                effects,
                &emit,
                DeadLetter {
                    message_id,
                    body: delivery.body,
                    reason,
                    group_id: record.attributes.get("MessageGroupId").cloned(),
                },
            )
            .await
        }
    }
}

/// A given-up message: what its handler announced, then the message into the dead-letter
/// queue with the reason.
async fn park(effects: &Effects, emit: &[EventEnvelope], letter: DeadLetter) -> Result<(), String> {
    apply(effects, emit, &[]).await?;
    effects.dead_letter(letter).await
}

/// Handles every record of a batch and reports the ones to deliver again. Records of one
/// FIFO group run in order, and after a failure the rest of that group is reported without
/// being run (so the group keeps its order); groups — and records of a standard queue — run
/// concurrently.
pub async fn handle_sqs_batch(
    handler: &dyn MessageHandler,
    effects: &Effects,
    event: SqsEvent,
) -> Result<SqsBatchResponse, InvocationError> {
    handle_sqs_batch_until(handler, effects, event, None).await
}

/// [`handle_sqs_batch`] within an invocation that ends at `deadline`: every delivery
/// carries it, and records are started only while [`Effects::record_budget`] fits.
pub async fn handle_sqs_batch_until(
    handler: &dyn MessageHandler,
    effects: &Effects,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> Result<SqsBatchResponse, InvocationError> {
    let mut groups: Vec<(Option<String>, Vec<&SqsMessage>)> = Vec::new();
    for record in &event.records {
        let group = record.attributes.get("MessageGroupId").cloned();
        match groups
            .iter_mut()
            .find(|(g, _)| group.is_some() && g == &group)
        {
            Some((_, records)) => records.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let failed_per_group = join_all(groups.iter().map(|(_, records)| async move {
        let mut failed: Vec<&SqsMessage> = Vec::new();
        for record in records {
            if !failed.is_empty() {
                failed.push(record);
                continue;
            }
            if let Err(reason) = handle_record(handler, effects, record, deadline).await {
                tracing::info!(
                    service = handler.name(),
                    message_id = record.message_id.as_deref().unwrap_or(""),
                    reason,
                    "will be delivered again"
                );
                failed.push(record);
            }
        }
        failed
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    let mut unidentified = 0;
    for record in failed_per_group.into_iter().flatten() {
        match &record.message_id {
            Some(id) => response.add_failure(id.clone()),
            None => unidentified += 1,
        }
    }
    if unidentified > 0 {
        return Err(InvocationError::UnidentifiedRecords(unidentified));
    }
    Ok(response)
}

/// Handles a batch as Lambda delivers it, before typing: a record that does not read as an
/// SQS message (say, a message attribute that is not valid base64) is dead-lettered with
/// that reason — or, without a dead-letter queue of our own, reported failed until the
/// redrive policy moves it — and never fails the other records.
pub async fn handle_sqs_payload(
    handler: &dyn MessageHandler,
    effects: &Effects,
    payload: Value,
) -> Result<SqsBatchResponse, InvocationError> {
    handle_sqs_payload_until(handler, effects, payload, None).await
}

/// [`handle_sqs_payload`] within an invocation that ends at `deadline`.
pub async fn handle_sqs_payload_until(
    handler: &dyn MessageHandler,
    effects: &Effects,
    payload: Value,
    deadline: Option<Instant>,
) -> Result<SqsBatchResponse, InvocationError> {
    let mut event = SqsEvent::default();
    let mut unreadable: Vec<String> = Vec::new();
    let mut unidentified = 0;
    let records = match payload.get("Records") {
        Some(Value::Array(records)) => records.clone(),
        _ => return Err(InvocationError::NotSqs),
    };
    for raw in records {
        match serde_json::from_value::<SqsMessage>(raw.clone()) {
            Ok(record) => event.records.push(record),
            Err(e) => {
                let Some(id) = raw["messageId"].as_str() else {
                    unidentified += 1;
                    continue;
                };
                let letter = DeadLetter {
                    message_id: id.to_owned(),
                    body: raw["body"].as_str().unwrap_or_default().to_owned(),
                    reason: format!(
                        "record {id} is not a valid SQS message ({e}); its body is kept as it came"
                    ),
                    group_id: raw["attributes"]["MessageGroupId"]
                        .as_str()
                        .map(str::to_owned),
                };
                if let Err(reason) = effects.dead_letter(letter).await {
                    tracing::warn!(
                        service = handler.name(),
                        message_id = id,
                        reason,
                        "unreadable record will be delivered again"
                    );
                    unreadable.push(id.to_owned());
                }
            }
        }
    }
    if unidentified > 0 {
        return Err(InvocationError::UnidentifiedRecords(unidentified));
    }
    let mut response = handle_sqs_batch_until(handler, effects, event, deadline).await?;
    for id in unreadable {
        response.add_failure(id);
    }
    Ok(response)
}

/// Handles one EventBridge event. `raw` is passed to the handler exactly as delivered (the
/// envelope podflow's handlers decode); it is first checked to be an EventBridge event.
pub async fn handle_event(
    handler: &dyn MessageHandler,
    effects: &Effects,
    raw: Value,
) -> Result<(), InvocationError> {
    let id = raw["id"].as_str().unwrap_or("(no id)").to_owned();
    let body = raw.to_string();
    let outcome = match serde_json::from_value::<EventBridgeEvent<Value>>(raw) {
        Ok(_) => {
            let counted = match &effects.event_attempts {
                Some(attempts) => count_delivery(attempts, handler.name(), &id)
                    .await
                    .map(|n| (n, attempts.max)),
                None => None,
            };
            let attempt = counted.map_or(1, |(n, _)| n);
            let delivery = Delivery {
                message_id: id.clone(),
                body: body.clone(),
                attempt,
                deadline: None,
            };
            match counted {
                // Lambda hands the event to the on-failure destination after this delivery,
                // where nothing would end its step: so this one ends it, whatever became of
                // the earlier ones (errors, or a function that crashed or ran out of time).
                Some((n, max)) if n >= max => {
                    let reason = format!(
                        "delivered {n} times without being processed (the function's \
                         asynchronous retries are used up)"
                    );
                    handler.give_up(&delivery, &reason).await
                }
                _ => handler.handle(&delivery).await,
            }
        }
        Err(e) => Outcome::DeadLetter {
            emit: Vec::new(),
            reason: format!(
                "not an EventBridge event ({e}); check the rule that targets this function"
            ),
        },
    };
    match outcome {
        Outcome::Done { emit, jobs } => apply(effects, &emit, &jobs)
            .await
            .map_err(|reason| InvocationError::Retry { id, reason }),
        Outcome::Retry { reason, .. } => Err(InvocationError::Retry { id, reason }),
        Outcome::DeadLetter { emit, reason } => {
            apply(effects, &emit, &[])
                .await
                .map_err(|reason| InvocationError::Retry {
                    id: id.clone(),
                    reason,
                })?;
            effects
                .dead_letter(DeadLetter {
                    message_id: id.clone(),
                    body,
                    reason,
                    group_id: None,
                })
                .await
                .map_err(|reason| InvocationError::DeadLettered { id, reason })
        }
    }
}

/// Events EventBridge could not hand to this function (no permission to invoke it, or the
/// function refusing invocations for as long as the rule's retry policy lasts), as the
/// function's undelivered-events queue delivers them. Each ends its step through the
/// handler's `give_up` (the step's `…Failed` event) and is parked in the event DLQ with
/// EventBridge's reason. A record whose step cannot be ended now (the store failing) is
/// reported for another delivery; the queue's redrive policy parks it after a few.
pub async fn handle_undelivered_events(
    handler: &dyn MessageHandler,
    effects: &Effects,
    payload: Value,
) -> Result<SqsBatchResponse, InvocationError> {
    let Some(Value::Array(records)) = payload.get("Records") else {
        return Err(InvocationError::NotSqs);
    };
    let results = join_all(
        records
            .iter()
            .map(|record| give_up_undelivered(handler, effects, record)),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    let mut unidentified = 0;
    for (record, result) in records.iter().zip(results) {
        let Err(reason) = result else { continue };
        match record["messageId"].as_str() {
            Some(id) => {
                tracing::warn!(
                    service = handler.name(),
                    message_id = id,
                    reason,
                    "undelivered event will be delivered again"
                );
                response.add_failure(id.to_owned());
            }
            None => unidentified += 1,
        }
    }
    if unidentified > 0 {
        return Err(InvocationError::UnidentifiedRecords(unidentified));
    }
    Ok(response)
}

/// One EventBridge dead letter (the event as its body, the error in its message
/// attributes), read from the JSON as Lambda delivers it so that no odd attribute can make
/// the record unreadable: `Ok` once its step has ended and it is parked.
async fn give_up_undelivered(
    handler: &dyn MessageHandler,
    effects: &Effects,
    record: &Value,
) -> Result<(), String> {
    let body = record["body"].as_str().unwrap_or_default().to_owned();
    let attribute = |name: &str| {
        record["messageAttributes"][name]["stringValue"]
            .as_str()
            .map(str::to_owned)
    };
    let reason = podflow_core::undelivered::eventbridge_reason(attribute).unwrap_or_else(|| {
        "EventBridge could not deliver it to this function (its dead letter names no error)"
            .to_owned()
    });
    // The event's own id, as on a direct delivery: the step's records and the parked
    // letter name the event, not the queue message that carried it.
    let event_id = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|event| event["id"].as_str().map(str::to_owned))
        .or_else(|| record["messageId"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let delivery = Delivery {
        message_id: event_id.clone(),
        body: body.clone(),
        attempt: record["attributes"]["ApproximateReceiveCount"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        deadline: None,
    };
    match handler.give_up(&delivery, &reason).await {
        Outcome::Done { emit, jobs } => apply(effects, &emit, &jobs).await,
        Outcome::Retry { reason, .. } => Err(reason),
        Outcome::DeadLetter { emit, reason } => {
            park(
                effects,
                &emit,
                DeadLetter {
                    message_id: event_id,
                    body,
                    reason,
                    group_id: None,
                },
            )
            .await
        }
    }
}

/// One invocation of an EventBridge rule target: an event, or a batch from the function's
/// undelivered-events queue (then the batch's item failures are the response).
pub async fn handle_rule_target(
    handler: &dyn MessageHandler,
    effects: &Effects,
    payload: Value,
) -> Result<Option<SqsBatchResponse>, InvocationError> {
    // An EventBridge event has no `Records`; an SQS batch has records from `aws:sqs`.
    let from_sqs = payload["Records"]
        .as_array()
        .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["eventSource"] == "aws:sqs"));
    if from_sqs {
        handle_undelivered_events(handler, effects, payload)
            .await
            .map(Some)
    } else {
        handle_event(handler, effects, payload).await.map(|()| None)
    }
}

/// This delivery's number, or `None` when the store cannot count: then the event is
/// handled, never given up on (a missing count must not stop the work).
async fn count_delivery(attempts: &EventAttempts, consumer: &str, event_id: &str) -> Option<u32> {
    match attempts.counter.count_delivery(consumer, event_id).await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(consumer, event_id, error = %e.report(), "could not count this delivery; handling it");
            None
        }
    }
}

/// The Lambda loop of a queue consumer (SQS event source with `ReportBatchItemFailures`).
pub async fn run_sqs(
    handler: Arc<dyn MessageHandler>,
    effects: Arc<Effects>,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (handler, effects) = (handler.clone(), effects.clone());
        let deadline = instant_of(event.context.deadline);
        async move {
            handle_sqs_payload_until(handler.as_ref(), &effects, event.payload, deadline).await
        }
    }))
    .await
}

/// Lambda's deadline (milliseconds since the epoch) as an instant on this machine's clock.
fn instant_of(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Instant::now().checked_add(Duration::from_millis(deadline_ms.checked_sub(now_ms)?))
}

/// The Lambda loop of an EventBridge rule target (and of its undelivered-events queue).
pub async fn run_eventbridge(
    handler: Arc<dyn MessageHandler>,
    effects: Arc<Effects>,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (handler, effects) = (handler.clone(), effects.clone());
        async move { handle_rule_target(handler.as_ref(), &effects, event.payload).await }
    }))
    .await
}

/// The Lambda loop of a function URL that answers GET requests: `answer` gets the request's
/// query string and returns (status, a redirect location, a plain-text body).
pub async fn run_function_url<F, Fut>(answer: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = (u16, Option<String>, String)> + Send,
{
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| {
            let query = event.payload.raw_query_string.unwrap_or_default();
            let answered = answer(query);
            async move {
                let (status, location, body) = answered.await;
                Ok::<_, std::convert::Infallible>(function_url_response(status, location, body))
            }
        },
    ))
    .await
}

/// A function URL's response: never cached (each redirect is signed anew).
pub fn function_url_response(
    status: u16,
    location: Option<String>,
    body: String,
) -> LambdaFunctionUrlResponse {
    let mut response = http_response(status, "text/plain; charset=utf-8", body);
    if let Some(location) = location.and_then(|l| http::HeaderValue::from_str(&l).ok()) {
        response.headers.insert("location", location);
    }
    response
}

/// A function URL's response of any content type, never cached.
pub fn http_response(
    status: u16,
    content_type: &'static str,
    body: String,
) -> LambdaFunctionUrlResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert("cache-control", http::HeaderValue::from_static("no-store"));
    headers.insert("content-type", http::HeaderValue::from_static(content_type));
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(body);
    response
}

/// A function URL request as a handler of POSTs reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlRequest {
    /// `POST`, `GET`...
    pub method: String,
    /// Names in lower case, as Lambda passes them; values that are not text are left out.
    pub headers: Vec<(String, String)>,
    /// The body's bytes as the client sent them (what a signature covers).
    pub body: Vec<u8>,
    /// When the function URL received it (Unix milliseconds), if Lambda says: a cold start
    /// may have passed since.
    pub received_at_ms: Option<u64>,
}

/// Why a function URL request cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum UrlRequestError {
    #[error("the body is marked base64-encoded but is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
}

/// The request in `event`. Lambda base64-encodes bodies it does not take for text (form
/// posts among them, depending on the content type): those are decoded back to their bytes.
pub fn url_request(event: LambdaFunctionUrlRequest) -> Result<UrlRequest, UrlRequestError> {
    use base64::Engine;
    let body = match event.body {
        None => Vec::new(),
        Some(b) if event.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD.decode(b)?
        }
        Some(b) => b.into_bytes(),
    };
    let headers = event
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    Ok(UrlRequest {
        method: event.request_context.http.method.unwrap_or_default(),
        headers,
        body,
        received_at_ms: u64::try_from(event.request_context.time_epoch)
            .ok()
            .filter(|ms| *ms > 0),
    })
}

/// The Lambda loop of a function URL whose handler reads the whole request: `answer` gets
/// its method, headers and raw body and returns (status, content type, body). A body that
/// cannot be decoded is answered 400 without calling `answer`.
pub async fn run_http_function_url<F, Fut>(answer: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(UrlRequest) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = (u16, &'static str, String)> + Send,
{
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| {
            let answered = url_request(event.payload).map(&answer);
            async move {
                let (status, content_type, body) = match answered {
                    Ok(answered) => answered.await,
                    Err(e) => (400, "text/plain; charset=utf-8", format!("{e}\n")),
                };
                Ok::<_, std::convert::Infallible>(http_response(status, content_type, body))
            }
        },
    ))
    .await
}

#[cfg(test)]
mod function_url_tests {
    use super::*;

    #[test]
    fn a_redirect_carries_its_location_and_is_never_cached() {
        let r = function_url_response(
            302,
            Some("https://s3.example/x?sig=1".into()),
            String::new(),
        );
        assert_eq!(r.status_code, 302);
        assert_eq!(r.headers["location"], "https://s3.example/x?sig=1");
        assert_eq!(r.headers["cache-control"], "no-store");
        let refused = function_url_response(403, None, "this link expired\n".into());
        assert!(refused.headers.get("location").is_none());
        assert_eq!(refused.body.as_deref(), Some("this link expired\n"));
    }

    /// A function URL event as Lambda's documentation shows its payload, with `body`.
    fn url_event(body: &str, base64: bool) -> LambdaFunctionUrlRequest {
        serde_json::from_value(serde_json::json!({
            "version": "2.0",
            "rawPath": "/",
            "rawQueryString": "",
            "headers": {
                "content-type": "application/x-www-form-urlencoded",
                "x-slack-request-timestamp": "1531420618",
                "x-slack-signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                "host": "abcdefg.lambda-url.us-east-1.on.aws"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdefg",
                "domainName": "abcdefg.lambda-url.us-east-1.on.aws",
                "domainPrefix": "abcdefg",
                "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "Slackbot 1.0 (+https://api.slack.com/robots)"},
                "requestId": "id",
                "routeKey": "$default",
                "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000",
                "timeEpoch": 1583348638390_i64
            },
            "body": body,
            "isBase64Encoded": base64
        }))
        .expect("a function URL event")
    }

    #[test]
    fn a_posted_body_reaches_the_handler_byte_for_byte_whether_or_not_lambda_encoded_it() {
        let form = "payload=%7B%22type%22%3A%22block_actions%22%7D&x=a+b";
        let plain = url_request(url_event(form, false)).expect("plain");
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(form);
        let decoded = url_request(url_event(&encoded, true)).expect("base64");
        assert_eq!(plain.body, form.as_bytes());
        assert_eq!(decoded.body, form.as_bytes());
        assert_eq!(decoded.method, "POST");
        assert_eq!(decoded.received_at_ms, Some(1_583_348_638_390));
        assert!(decoded.headers.contains(&(
            "x-slack-request-timestamp".to_owned(),
            "1531420618".to_owned()
        )));
        assert!(url_request(url_event("not base64!", true)).is_err());
        let answer = http_response(200, "application/json", "{}".into());
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(answer.headers["cache-control"], "no-store");
    }
}
