//! The invoker on the Lambda path, across redeliveries: a completed prompt whose
//! `PromptCompleted` was lost (PutEvents failed after the store write) is announced on the
//! redelivery without calling the model again, and a job still failing on its queue's last
//! receive ends its prompt with `PromptFailed` instead of vanishing into the DLQ; and an
//! invocation with a deadline returns every record before it, deferring rate-limit waits
//! that would pass it instead of sleeping.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

mod one_prompt;

use one_prompt::{one_prompt, planned_job};

use bedrock_invoker::{
    InvokeHandler, RetryPolicy,
    openai::OpenAiCompatible,
    ratelimit::{LimitsConfig, Throttle},
};
use podflow_core::{EpisodeStore, PromptStatus};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::{PromptCompleted, PromptFailed, PromptJob};
use podflow_fakes::{FakeLlm, FakeLlmConfig, bus::RecordingBus};
use podflow_lambda::{Effects, handle_sqs_payload, handle_sqs_payload_until};
use serde_json::json;

/// The Lambda effects over `bus`: EventBridge, and the prompt queue (its DLQ, and the
/// last receive at `max_receives`).
fn effects(bus: &Arc<RecordingBus>, max_receives: u32) -> Effects {
    Effects {
        events: bus.clone(),
        jobs: bus.clone(),
        control: Some(bus.clone()),
        max_receives: Some(max_receives),
        record_budget: None,
        metrics: None,
        event_attempts: None,
    }
}

/// One SQS record as Lambda delivers it, on its `receive_count`th receive.
fn sqs_payload(job: &PromptJob, receive_count: u32) -> serde_json::Value {
    json!({"Records": [{
        "messageId": "5fea7756-0ea4-451a-a703-a558b933e274",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": serde_json::to_string(job).expect("json"),
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "MessageGroupId": format!("{}:{}", job.episode_id, job.prompt_id),
            "SentTimestamp": "1701000000000"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:podflow-prompts.fifo",
        "awsRegion": "us-east-1"
    }]})
}

#[tokio::test]
async fn a_completion_lost_after_the_store_write_is_announced_on_redelivery() {
    let fake = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake llm");
    let (_dir, db, handler, job) = one_prompt(&fake.url, 3).await;
    let bus = Arc::new(RecordingBus::refusing(1));
    let effects = effects(&bus, 5);

    // First receive: the model answers and the store says completed, but PutEvents fails,
    // so the record is reported failed and SQS delivers it again.
    let first = handle_sqs_payload(&handler, &effects, sqs_payload(&job, 1))
        .await
        .expect("batch");
    assert_eq!(first.batch_item_failures.len(), 1, "{first:?}");
    let state = db.prompts("ep").await.expect("prompts");
    assert_eq!(state[0].status, PromptStatus::Completed);
    assert!(bus.published().is_empty());

    // Second receive: the completion is announced from the store.
    let second = handle_sqs_payload(&handler, &effects, sqs_payload(&job, 2))
        .await
        .expect("batch");
    assert!(second.batch_item_failures.is_empty(), "{second:?}");
    let published = bus.published();
    assert_eq!(published.len(), 1, "{published:?}");
    let completed: PromptCompleted = published[0].decode().expect("PromptCompleted");
    assert_eq!(Some(&completed.output), state[0].output.as_ref());
    assert_eq!(
        (completed.input_tokens, completed.output_tokens),
        (state[0].input_tokens, state[0].output_tokens)
    );
    assert_eq!(fake.stats().requests, 1, "the model is not asked again");

    // A third receive (a duplicate) announces the same event, with the same id.
    handle_sqs_payload(&handler, &effects, sqs_payload(&job, 3))
        .await
        .expect("batch");
    let published = bus.published();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].id, published[1].id);
    assert_eq!(published[0].detail, published[1].detail);
}

#[tokio::test]
async fn a_job_still_failing_on_its_last_receive_ends_its_prompt_with_prompt_failed() {
    let fake = FakeLlm::start(FakeLlmConfig {
        throttle_rate: 1.0,
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake llm");
    // The invoker would try 8 times; the queue redrives after 2 receives.
    let (_dir, db, handler, job) = one_prompt(&fake.url, 8).await;
    let bus = Arc::new(RecordingBus::refusing(0));
    let effects = effects(&bus, 2);

    let first = handle_sqs_payload(&handler, &effects, sqs_payload(&job, 1))
        .await
        .expect("batch");
    assert_eq!(first.batch_item_failures.len(), 1, "throttled: try again");
    assert!(bus.letters().is_empty());

    let last = handle_sqs_payload(&handler, &effects, sqs_payload(&job, 2))
        .await
        .expect("batch");
    assert!(
        last.batch_item_failures.is_empty(),
        "given up here, not left to the redrive: {last:?}"
    );
    let state = db.prompts("ep").await.expect("prompts");
    assert_eq!(state[0].status, PromptStatus::Failed);
    let published = bus.published();
    assert_eq!(published.len(), 1, "{published:?}");
    let failed: PromptFailed = published[0].decode().expect("PromptFailed");
    assert!(
        failed.reason.contains("maxReceiveCount") && failed.reason.contains("throttled"),
        "{}",
        failed.reason
    );
    let letters = bus.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].group_id.as_deref(), Some("ep:summary"));
}

#[tokio::test]
async fn a_last_receive_after_crashed_ones_ends_its_prompt_without_asking_the_model() {
    let fake = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake llm");
    let (_dir, db, handler, job) = one_prompt(&fake.url, 8).await;
    let bus = Arc::new(RecordingBus::refusing(0));
    // Receive 1 ran out of time on Lambda and left no trace; receive 2 is the queue's last.
    let last = handle_sqs_payload(&handler, &effects(&bus, 2), sqs_payload(&job, 2))
        .await
        .expect("batch");
    assert!(last.batch_item_failures.is_empty(), "{last:?}");
    assert_eq!(
        fake.stats().requests,
        0,
        "the last receive only ends the prompt"
    );
    let state = db.prompts("ep").await.expect("prompts");
    assert_eq!(state[0].status, PromptStatus::Failed);
    let published = bus.published();
    let failed: PromptFailed = published[0].decode().expect("PromptFailed");
    assert!(
        failed.reason.contains("received 2 times") && failed.reason.contains("maxReceiveCount 2"),
        "{}",
        failed.reason
    );
    assert_eq!(bus.letters().len(), 1);
}

/// Six prompts of one episode, planned, as one SQS batch (one FIFO group each, as the
/// dispatcher sends them).
async fn six_prompts(blobs: &FileBlobStore, db: &Db) -> serde_json::Value {
    let mut records = Vec::new();
    for p in 0..6 {
        let job = planned_job(
            db,
            blobs,
            &format!("prompt{p}"),
            &format!("Speaker 1: topic {p}."),
        )
        .await;
        let mut record = sqs_payload(&job, 1)["Records"][0].clone();
        record["messageId"] = json!(format!("message-{p}"));
        records.push(record);
    }
    json!({ "Records": records })
}

/// A quota "minute" of 3 s allowing 2 requests, and an invocation with 2 s left: two
/// prompts run, the others would wait past the deadline, so they return at once with a
/// delay (a throttle, not an attempt) and the invocation ends before its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_returns_before_the_invocation_deadline() {
    let fake = FakeLlm::start(FakeLlmConfig {
        answer_delay: Duration::from_millis(50),
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(FileBlobStore::new(dir.path()));
    let payload = six_prompts(&blobs, &db).await;
    let limits = LimitsConfig {
        default: Some(bedrock_invoker::ratelimit::ModelLimits {
            requests_per_minute: 2,
            tokens_per_minute: 1_000_000,
            context_tokens: 8192,
        }),
        ..LimitsConfig::default()
    };
    let retry = RetryPolicy {
        call_time: Duration::from_millis(500),
        ..RetryPolicy::default()
    };
    let handler = InvokeHandler {
        store: Arc::new(db.clone()),
        blobs,
        llm: Arc::new(OpenAiCompatible::new(&fake.url, None, retry.call_time)),
        throttle: Arc::new(Throttle::new(limits, Duration::from_secs(3))),
        retry,
    };
    let bus = Arc::new(RecordingBus::refusing(0));
    let effects = Effects {
        record_budget: Some(Duration::from_millis(600)),
        ..effects(&bus, 200)
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let response = handle_sqs_payload_until(&handler, &effects, payload, Some(deadline))
        .await
        .expect("batch");
    assert!(
        Instant::now() < deadline,
        "the invocation ran past its deadline"
    );
    let states = db.prompts("ep").await.expect("prompts");
    let completed = states
        .iter()
        .filter(|s| s.status == PromptStatus::Completed)
        .count();
    assert_eq!(completed, 2, "{states:?}");
    assert_eq!(response.batch_item_failures.len(), 4, "{response:?}");
    for deferred in states
        .iter()
        .filter(|s| s.status != PromptStatus::Completed)
    {
        assert_eq!(deferred.status, PromptStatus::Queued, "{deferred:?}");
        assert_eq!(
            (deferred.attempts, deferred.throttles),
            (0, 1),
            "a deferral is not an attempt: {deferred:?}"
        );
        assert!(
            deferred
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("past this invocation's deadline")),
            "{deferred:?}"
        );
    }
    assert!(bus.letters().is_empty());
    assert_eq!(fake.stats().requests, 2, "no call was started late");
}

/// With less than a record's budget left, a record is not started at all.
#[tokio::test]
async fn a_record_is_not_started_without_its_budget_left() {
    let fake = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake llm");
    let (_dir, db, handler, job) = one_prompt(&fake.url, 3).await;
    let bus = Arc::new(RecordingBus::refusing(0));
    let effects = Effects {
        record_budget: Some(Duration::from_secs(70)),
        ..effects(&bus, 200)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let response =
        handle_sqs_payload_until(&handler, &effects, sqs_payload(&job, 1), Some(deadline))
            .await
            .expect("batch");
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(fake.stats().requests, 0);
    let state = db.prompts("ep").await.expect("prompts").remove(0);
    assert_eq!((state.status, state.attempts), (PromptStatus::Queued, 0));
}
