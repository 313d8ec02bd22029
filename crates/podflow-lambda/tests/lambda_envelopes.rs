//! The Lambda wrappers on real AWS payloads (crates/podflow-fakes/fixtures/aws): every record of a
//! batch is handled, failures are reported per item (FIFO groups keep their order), retries
//! are delayed, dead letters carry their reason, and nothing panics on odd event data.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use podflow_core::{
    Delivery, DeliveryControl, DeliveryCounter, MessageHandler, Outcome, PortError, QueuedJob,
};
use podflow_events::{BlobRef, EpisodeUploaded, EventEnvelope};
use podflow_fakes::{bus::RecordingBus, fixtures::aws_json};
use podflow_lambda::{
    Effects, EventAttempts, InvocationError, handle_event, handle_rule_target, handle_sqs_batch,
    handle_sqs_payload,
};
use serde_json::{Value, json};

/// Decides by the body: `{"fail_attempts": n}` fails while the attempt is ≤ n (as in the
/// recorded AWS run), "hello world"-style text is done, an empty body is a dead letter.
#[derive(Default)]
struct ScriptedHandler {
    seen: Mutex<Vec<(String, u32)>>,
    /// Deliveries given up on: (message id, attempt, reason).
    given_up: Mutex<Vec<(String, u32, String)>>,
}

fn emitted_event() -> EventEnvelope {
    EventEnvelope::wrap(&EpisodeUploaded {
        schema_version: "1.1".into(),
        episode_id: "weekly-42-3f786850e387".into(),
        correlation_id: "c-1".into(),
        source: BlobRef {
            bucket: Some("b".into()),
            key: "incoming/weekly-42.m4a".into(),
            size: 1,
            sha256: "0".repeat(64),
        },
        original_name: "weekly-42.m4a".into(),
        duration_seconds: None,
    })
}

#[async_trait]
impl MessageHandler for ScriptedHandler {
    fn name(&self) -> &'static str {
        "scripted"
    }
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        self.seen
            .lock()
            .expect("lock")
            .push((delivery.message_id.clone(), delivery.attempt));
        if delivery.body.is_empty() {
            return Outcome::DeadLetter {
                emit: vec![emitted_event()],
                reason: format!("message {} has no body", delivery.message_id),
            };
        }
        let parsed: Value = serde_json::from_str(&delivery.body).unwrap_or(Value::Null);
        match parsed["fail_attempts"].as_u64() {
            Some(n) if u64::from(delivery.attempt) <= n => Outcome::Retry {
                delay: Duration::from_secs(30),
                reason: "throttled".into(),
            },
            _ => Outcome::Done {
                emit: vec![emitted_event()],
                jobs: vec![QueuedJob {
                    queue: "prompts".into(),
                    group_id: "g".into(),
                    dedup_id: delivery.message_id.clone(),
                    body: "{}".into(),
                }],
            },
        }
    }
    /// As the services do: the step's `…Failed` event, and a dead letter; a retry while the
    /// body says `{"store_down": true}` (the step cannot be ended now).
    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        self.given_up.lock().expect("lock").push((
            delivery.message_id.clone(),
            delivery.attempt,
            reason.to_owned(),
        ));
        let parsed: Value = serde_json::from_str(&delivery.body).unwrap_or(Value::Null);
        if parsed["store_down"] == json!(true) {
            return Outcome::Retry {
                delay: Duration::from_secs(1),
                reason: "DynamoDB: ServiceUnavailable".into(),
            };
        }
        Outcome::DeadLetter {
            emit: vec![emitted_event()],
            reason: reason.to_owned(),
        }
    }
}

/// Delivery counts kept in memory, as the table keeps them; `broken` refuses to count.
#[derive(Default)]
struct CountingTable {
    counts: Mutex<HashMap<(String, String), u32>>,
    broken: bool,
}

#[async_trait]
impl DeliveryCounter for CountingTable {
    async fn count_delivery(&self, consumer: &str, event_id: &str) -> Result<u32, PortError> {
        if self.broken {
            return Err(PortError::transient("DynamoDB: ServiceUnavailable"));
        }
        let mut counts = self.counts.lock().expect("lock");
        let n = counts
            .entry((consumer.to_owned(), event_id.to_owned()))
            .or_insert(0);
        *n += 1;
        Ok(*n)
    }
}

fn effects(recorder: &Arc<RecordingBus>, with_control: bool) -> Effects {
    Effects {
        events: recorder.clone(),
        jobs: recorder.clone(),
        control: with_control.then(|| recorder.clone() as Arc<dyn DeliveryControl>),
        max_receives: None,
        record_budget: None,
        metrics: None,
        event_attempts: None,
    }
}

/// The localstack recording stores bodies as parsed JSON; SQS delivers them as strings.
fn recorded_fifo_event(invocation: &str) -> SqsEvent {
    let recording =
        aws_json("sqs/localstack_snapshot_lambda_sqs_fifo_test_report_batch_item_failures.json");
    let mut event =
        recording["recorded-content"][invocation]["Messages"][0]["Body"]["event"].clone();
    for record in event["Records"].as_array_mut().expect("records") {
        record["body"] = Value::String(record["body"].to_string());
    }
    serde_json::from_value(event).expect("a real SQS FIFO event")
}

fn failures(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn fifo_batches_report_partial_failures_like_the_recorded_aws_run() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    let fx = effects(&recorder, true);

    // First delivery: message 1 succeeds, message 2 fails, and 3 and 4 (same group) are
    // reported without being run so the group keeps its order.
    let first = handle_sqs_batch(&handler, &fx, recorded_fifo_event("first_invocation"))
        .await
        .expect("batch handled");
    assert_eq!(failures(&first), ["<uuid:2>", "<uuid:3>", "<uuid:4>"]);
    assert_eq!(
        *handler.seen.lock().expect("lock"),
        [("<uuid:1>".to_owned(), 1), ("<uuid:2>".to_owned(), 1)]
    );
    // The retry was delayed by the handler's backoff, not left to the visibility timeout.
    let delayed = recorder.delayed();
    assert_eq!(delayed.len(), 1);
    assert_eq!(delayed[0].1, Duration::from_secs(30));

    // Second delivery (what AWS redelivered, receive count 2): 2 and 3 pass, 4 fails again;
    // with maxReceiveCount 2 it is the one AWS moved to the DLQ.
    let second = handle_sqs_batch(&handler, &fx, recorded_fifo_event("second_invocation"))
        .await
        .expect("batch handled");
    assert_eq!(failures(&second), ["<uuid:4>"]);
    let dlq =
        aws_json("sqs/localstack_snapshot_lambda_sqs_fifo_test_report_batch_item_failures.json");
    assert_eq!(
        dlq["recorded-content"]["dlq_response"]["Messages"][0]["MessageId"],
        json!("<uuid:4>")
    );
    // Jobs were sent and events published once per success: 1, then 2 and 3.
    assert_eq!(recorder.job_ids(), ["<uuid:1>", "<uuid:2>", "<uuid:3>"]);
    assert_eq!(recorder.published().len(), 3);
}

#[tokio::test]
async fn standard_batches_handle_every_record_not_only_the_first() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    for fixture in [
        "sqs/rust-runtime_example-sqs-event.json",
        "sqs/lambda-go_sqs-event.json",
        "sqs/java-libs_sqs_event_product.json",
    ] {
        let event: SqsEvent = serde_json::from_value(aws_json(fixture)).expect(fixture);
        let records = event.records.len();
        handler.seen.lock().expect("lock").clear();
        let response = handle_sqs_batch(&handler, &effects(&recorder, true), event)
            .await
            .expect(fixture);
        assert!(response.batch_item_failures.is_empty(), "{fixture}");
        assert_eq!(
            handler.seen.lock().expect("lock").len(),
            records,
            "{fixture}"
        );
    }
}

#[tokio::test]
async fn dead_letters_carry_the_reason_and_leave_the_batch() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    let event: SqsEvent =
        serde_json::from_value(aws_json("sqs/java-libs_sqs_event_nobody.json")).expect("event");
    let response = handle_sqs_batch(&handler, &effects(&recorder, true), event.clone())
        .await
        .expect("handled");
    assert!(
        response.batch_item_failures.is_empty(),
        "dead-lettered, so deleted from the source"
    );
    let letters = recorder.letters();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("has no body"),
        "{}",
        letters[0].reason
    );
    // Its events (e.g. a PromptFailed) are still published.
    assert_eq!(recorder.published().len(), 1);

    // Without a dead-letter queue of our own, the record fails and the queue's redrive
    // policy moves it after maxReceiveCount.
    let bare = Arc::new(RecordingBus::default());
    let response = handle_sqs_batch(&handler, &effects(&bare, false), event)
        .await
        .expect("handled");
    assert_eq!(
        failures(&response),
        ["d9144555-9a4f-4ec3-99a0-fc4e625a8db2"]
    );
}

#[tokio::test]
async fn records_from_a_dead_letter_queue_keep_their_receive_count() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    let event: SqsEvent =
        serde_json::from_value(aws_json("sqs/powertools-python_sqsDlqTriggerEvent.json"))
            .expect("event");
    let response = handle_sqs_batch(&handler, &effects(&recorder, true), event)
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    let seen = handler.seen.lock().expect("lock").clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|(_, attempt)| *attempt == 2),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_failed_publish_fails_only_its_record() {
    let recorder = Arc::new(RecordingBus::refusing(u32::MAX));
    let handler = ScriptedHandler::default();
    let event: SqsEvent =
        serde_json::from_value(aws_json("sqs/rust-runtime_example-sqs-event.json")).expect("event");
    let ids: Vec<String> = event
        .records
        .iter()
        .filter_map(|r| r.message_id.clone())
        .collect();
    let response = handle_sqs_batch(&handler, &effects(&recorder, true), event)
        .await
        .expect("handled");
    assert_eq!(
        failures(&response),
        ids,
        "each record is redelivered, none lost"
    );
}

#[tokio::test]
async fn eventbridge_events_reach_the_handler_verbatim_and_bad_ones_are_dead_lettered() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    for fixture in [
        "eventbridge/rust-runtime_example-eventbridge-event-obj.json",
        "eventbridge/powertools-python_eventBridgeEvent.json",
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectCreatedEvent.json",
    ] {
        let raw = aws_json(fixture);
        handle_event(&handler, &effects(&recorder, true), raw.clone())
            .await
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let seen = handler
            .seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("handled");
        assert_eq!(seen.0, raw["id"].as_str().expect("id"), "{fixture}");
    }
    // Not an EventBridge event at all: dead-lettered with what to check, never a panic.
    let mut letters_before = recorder.letters().len();
    handle_event(
        &handler,
        &effects(&recorder, true),
        json!({"hello": "world"}),
    )
    .await
    .expect("dead-lettered");
    let letters = recorder.letters();
    assert_eq!(letters.len(), letters_before + 1);
    assert!(
        letters[letters_before]
            .reason
            .contains("not an EventBridge event")
    );
    letters_before += 1;
    // Without a queue of our own, the error goes back to Lambda (retries, then the
    // function's on-failure destination keeps the event and the reason).
    match handle_event(&handler, &effects(&recorder, false), json!([1, 2])).await {
        Err(InvocationError::DeadLettered { reason, .. }) => {
            assert!(reason.contains("not an EventBridge event"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(recorder.letters().len(), letters_before);
}

#[tokio::test]
async fn eventbridge_retries_are_errors_lambda_retries() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    let mut raw = aws_json("eventbridge/powertools-python_eventBridgeEvent.json");
    // The scripted handler retries a body with `fail_attempts` at its top level.
    raw["fail_attempts"] = json!(3);
    match handle_event(&handler, &effects(&recorder, true), raw).await {
        Err(InvocationError::Retry { reason, .. }) => assert_eq!(reason, "throttled"),
        other => panic!("{other:?}"),
    }
    assert!(recorder.published().is_empty());
    assert!(recorder.letters().is_empty());
}

#[tokio::test]
async fn the_last_delivery_lambda_makes_of_an_event_ends_its_step() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    let table = Arc::new(CountingTable::default());
    let counted = || Effects {
        event_attempts: Some(EventAttempts {
            counter: table.clone(),
            max: 3,
        }),
        ..effects(&recorder, true)
    };
    let mut raw = aws_json("eventbridge/powertools-python_eventBridgeEvent.json");
    // Fails every time it is handled (a function error, or a crash or timeout: Lambda
    // retries those alike).
    raw["fail_attempts"] = json!(99);
    let id = raw["id"].as_str().expect("id").to_owned();
    for attempt in 1..=2 {
        match handle_event(&handler, &counted(), raw.clone()).await {
            Err(InvocationError::Retry { .. }) => {}
            other => panic!("delivery {attempt}: {other:?}"),
        }
    }
    // The third: given up on, the failure announced and the event parked with the reason,
    // and the invocation succeeds (so Lambda does not hand it on a second time).
    handle_event(&handler, &counted(), raw.clone())
        .await
        .expect("the last delivery ends the step");
    let seen: Vec<u32> = handler
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, attempt)| *attempt)
        .collect();
    assert_eq!(seen, vec![1, 2], "handled twice, not a third time");
    let given_up = handler.given_up.lock().expect("lock").clone();
    assert_eq!(given_up.len(), 1);
    assert_eq!((given_up[0].0.as_str(), given_up[0].1), (id.as_str(), 3));
    assert!(given_up[0].2.contains("delivered 3 times"), "{given_up:?}");
    assert_eq!(recorder.detail_types(), vec!["EpisodeUploaded"]);
    let letters = recorder.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message_id, id);
    assert!(
        letters[0].reason.contains("retries are used up"),
        "{letters:?}"
    );

    // Another event is counted on its own.
    let mut other = raw.clone();
    other["id"] = json!("another-event");
    assert!(handle_event(&handler, &counted(), other).await.is_err());
    assert_eq!(handler.given_up.lock().expect("lock").len(), 1);

    // A table that cannot count: every delivery is handled, none given up on.
    let broken = Effects {
        event_attempts: Some(EventAttempts {
            counter: Arc::new(CountingTable {
                broken: true,
                ..CountingTable::default()
            }),
            max: 1,
        }),
        ..effects(&recorder, true)
    };
    assert!(handle_event(&handler, &broken, raw).await.is_err());
    assert_eq!(handler.given_up.lock().expect("lock").len(), 1);
    assert_eq!(handler.seen.lock().expect("lock").len(), 4);
}

#[tokio::test]
async fn an_unreadable_record_is_dead_lettered_alone() {
    // powertools' sample carries `"binaryValue": "base64Str"`, which is not base64: typed
    // decoding of the whole batch fails on it.
    let payload = aws_json("sqs/powertools-python_sqsEvent.json");
    assert!(serde_json::from_value::<SqsEvent>(payload.clone()).is_err());
    let mut mixed = payload.clone();
    let good = aws_json("sqs/rust-runtime_example-sqs-event.json")["Records"][0].clone();
    mixed["Records"]
        .as_array_mut()
        .expect("records")
        .push(good.clone());

    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    let response = handle_sqs_payload(&handler, &effects(&recorder, true), mixed.clone())
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    let letters = recorder.letters();
    let unreadable: Vec<&Value> = payload["Records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| {
            serde_json::from_value::<aws_lambda_events::sqs::SqsMessage>((*r).clone()).is_err()
        })
        .collect();
    assert!(!unreadable.is_empty());
    assert_eq!(letters.len(), unreadable.len());
    assert!(
        letters
            .iter()
            .all(|l| l.reason.contains("not a valid SQS message")),
        "{letters:?}"
    );
    assert_eq!(
        letters[0].body,
        unreadable[0]["body"].as_str().expect("body"),
        "the body is kept"
    );
    let seen: Vec<String> = handler
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        seen.contains(&good["messageId"].as_str().expect("id").to_owned()),
        "the good record still ran"
    );

    // Without our own dead-letter queue they are reported failed (the redrive policy moves
    // them), and the good one still succeeds.
    let bare = Arc::new(RecordingBus::default());
    let response = handle_sqs_payload(&handler, &effects(&bare, false), mixed)
        .await
        .expect("handled");
    assert_eq!(failures(&response).len(), unreadable.len());
    assert!(!failures(&response).contains(&good["messageId"].as_str().expect("id").to_owned()));

    // Not an SQS payload at all: one clear error.
    assert!(matches!(
        handle_sqs_payload(&handler, &effects(&bare, false), json!({"detail": {}})).await,
        Err(InvocationError::NotSqs)
    ));
}

/// An EventBridge dead letter as the target's undelivered-events queue delivers it to
/// Lambda: the event as the body, EventBridge's error in the message attributes it
/// documents for target dead-letter queues.
fn eventbridge_dead_letter(message_id: &str, event: &Value, attributes: &[(&str, &str)]) -> Value {
    let attributes: serde_json::Map<String, Value> = attributes
        .iter()
        .map(|(name, value)| {
            (
                (*name).to_owned(),
                json!({"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}),
            )
        })
        .collect();
    json!({
        "messageId": message_id,
        "receiptHandle": format!("receipt-{message_id}"),
        "body": event.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1733300000000"},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:podflow-ingest-undelivered",
        "awsRegion": "eu-west-1"
    })
}

#[tokio::test]
async fn events_eventbridge_could_not_deliver_end_their_step_and_are_parked_with_its_reason() {
    let recorder = Arc::new(RecordingBus::default());
    let handler = ScriptedHandler::default();
    let event = aws_json("eventbridge/powertools-python_eventBridgeEvent.json");
    let event_id = event["id"].as_str().expect("id").to_owned();
    let refused = [
        (
            "RULE_ARN",
            "arn:aws:events:eu-west-1:123456789012:rule/podflow/podflow-Upload",
        ),
        (
            "TARGET_ARN",
            "arn:aws:lambda:eu-west-1:123456789012:function:podflow-ingest",
        ),
        ("ERROR_CODE", "NO_PERMISSIONS"),
        (
            "ERROR_MESSAGE",
            "EventBridge is not authorized to invoke the function",
        ),
        ("EXHAUSTED_RETRY_CONDITION", "MaximumRetryAttemptsExceeded"),
        ("RETRY_ATTEMPTS", "4"),
    ];
    let mut store_down = event.clone();
    store_down["id"] = json!("event-while-the-store-is-down");
    store_down["store_down"] = json!(true);
    let batch = json!({"Records": [
        eventbridge_dead_letter("m-1", &event, &refused),
        eventbridge_dead_letter("m-2", &store_down, &refused),
        eventbridge_dead_letter("m-3", &json!({"id": "bare"}), &[]),
    ]});

    let response = handle_rule_target(&handler, &effects(&recorder, true), batch)
        .await
        .expect("a batch")
        .expect("a batch response");

    // Only the record whose step could not be ended comes back.
    assert_eq!(failures(&response), vec!["m-2"]);
    let given_up = handler.given_up.lock().expect("lock").clone();
    assert_eq!(given_up.len(), 3, "{given_up:?}");
    assert!(
        handler.seen.lock().expect("lock").is_empty(),
        "never handled"
    );
    let (id, _, reason) = &given_up[0];
    assert_eq!(id, &event_id, "the step's records name the event");
    assert_eq!(
        reason,
        "EventBridge could not deliver it to podflow-ingest: NO_PERMISSIONS: EventBridge is not authorized to invoke the function"
    );
    assert!(given_up[2].2.contains("names no error"), "{given_up:?}");
    // The two ended steps announced their failure, and both events are parked with the
    // reason, under their own ids and with their bodies as they came.
    assert_eq!(recorder.published().len(), 2);
    let letters = recorder.letters();
    let parked: Vec<&str> = letters.iter().map(|l| l.message_id.as_str()).collect();
    assert_eq!(parked, vec![event_id.as_str(), "bare"]);
    assert_eq!(letters[0].reason, *reason);
    assert_eq!(
        serde_json::from_str::<Value>(&letters[0].body).expect("the event"),
        event
    );

    // When the failure cannot be announced, nothing is parked and the record comes back.
    let silent = Arc::new(RecordingBus::refusing(u32::MAX));
    let again = json!({"Records": [eventbridge_dead_letter("m-4", &event, &refused)]});
    let response = handle_rule_target(&handler, &effects(&silent, true), again)
        .await
        .expect("a batch")
        .expect("a batch response");
    assert_eq!(failures(&response), vec!["m-4"]);
    assert!(silent.letters().is_empty());

    // An event delivered directly is handled as one.
    let direct = handle_rule_target(&handler, &effects(&recorder, true), event)
        .await
        .expect("handled");
    assert!(direct.is_none());
    assert_eq!(handler.seen.lock().expect("lock").len(), 1);
}
