//! `podflow dlq list|replay` against a deployed stack's SQS prompt DLQ, here moto server:
//! the real binary, configured only through the environment an operator would set.

use std::process::{Command, Output};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use podflow_aws::sqs::SqsQueue;
use podflow_core::{DeadLetter, DeliveryControl};
use podflow_fakes::moto::MotoServer;

/// `podflow ARGS` with AWS credentials for `moto` and no queue settings of its own.
fn podflow_on(moto: &MotoServer, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("PODFLOW_PROMPT_DLQ_URL")
        .env_remove("PODFLOW_EVENT_DLQ_URL");
    cmd
}

fn podflow(moto: &MotoServer, dlq: &str, queue: &str, args: &[&str]) -> Output {
    podflow_on(moto, args)
        .env("PODFLOW_PROMPT_DLQ_URL", dlq)
        .env("PODFLOW_PROMPT_QUEUE_URL", queue)
        .output()
        .expect("podflow runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// moto server with the stack's FIFO prompt queue and its DLQ.
struct Stack {
    moto: MotoServer,
    config: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    dlq: String,
    queue: String,
}

async fn stack() -> Stack {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut urls = Vec::new();
    for name in ["prompts-dlq.fifo", "prompts.fifo"] {
        let q = sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("queue");
        urls.push(q.queue_url().expect("url").to_owned());
    }
    Stack {
        moto,
        config,
        sqs,
        dlq: urls[0].clone(),
        queue: urls[1].clone(),
    }
}

#[tokio::test]
async fn operators_list_and_replay_the_sqs_prompt_dlq() {
    let Stack {
        moto,
        config,
        sqs,
        dlq,
        queue,
    } = stack().await;
    let job = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events-schema/examples/PromptJob/valid/01.json"
    ))
    .expect("example job");
    let job: serde_json::Value = serde_json::from_str(&job).expect("json");
    SqsQueue::new(&config)
        .dead_letters_to(&dlq)
        .dead_letter(&DeadLetter {
            message_id: "m-1".into(),
            body: job.to_string(),
            reason: "AccessDeniedException: no access to the model".into(),
            group_id: Some("g-1".into()),
        })
        .await
        .expect("dead-lettered");

    let listed = podflow(&moto, &dlq, &queue, &["dlq", "list"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));
    let said = text(&listed);
    assert!(
        said.contains("AccessDeniedException: no access to the model"),
        "{said}"
    );
    assert!(
        said.contains(job["prompt_id"].as_str().expect("prompt id")),
        "{said}"
    );
    let json = podflow(&moto, &dlq, &queue, &["dlq", "list", "--json"]);
    let line: serde_json::Value =
        serde_json::from_str(text(&json).lines().next().expect("a line")).expect("JSON lines");
    let id = line["message_id"].as_str().expect("id").to_owned();

    // Re-rendering needs the stack's table and bucket: without them, refused in words.
    let refused = podflow(
        &moto,
        &dlq,
        &queue,
        &["dlq", "replay", &id, "--prompt-version", "latest"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("needs PODFLOW_TABLE"),
        "{}",
        text(&refused)
    );

    let replayed = podflow(
        &moto,
        &dlq,
        &queue,
        &[
            "dlq",
            "replay",
            &id,
            "--model",
            "anthropic.claude-3-5-haiku",
        ],
    );
    assert_eq!(replayed.status.code(), Some(0), "{}", text(&replayed));
    let back = sqs
        .receive_message()
        .queue_url(&queue)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let message = &back.messages()[0];
    let body: serde_json::Value = serde_json::from_str(message.body().expect("body")).expect("job");
    assert_eq!(body["model"], "anthropic.claude-3-5-haiku");
    assert_eq!(body["prompt_id"], job["prompt_id"]);
    let group = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    assert_eq!(group.as_deref(), Some("g-1"));
    let empty = podflow(&moto, &dlq, &queue, &["dlq", "list"]);
    assert!(
        text(&empty).contains("nothing waits in"),
        "{}",
        text(&empty)
    );
}

#[tokio::test]
async fn replay_renders_the_prompt_again_from_the_fixed_catalog_on_the_stack() {
    use podflow_core::{BlobStore, EpisodeRecord, EpisodeStore};

    let Stack {
        moto,
        config,
        sqs,
        dlq,
        queue,
    } = stack().await;
    // The stack's table (as the template declares it) and bucket, holding one episode
    // with its transcript.
    podflow_fakes::moto::create_episode_table(&config, "podflow-episodes").await;
    podflow_fakes::moto::create_bucket(&config, "podflow-bucket").await;
    let store = podflow_aws::dynamodb::DynamoEpisodeStore::new(&config, "podflow-episodes");
    let blobs = podflow_aws::s3::S3BlobStore::new(&config, "podflow-bucket", true);
    let episode = "weekly-42-3f786850e387";
    let transcript = serde_json::json!({
        "language": "en", "duration_seconds": 12.0, "engine": "amazon-transcribe", "model": "x",
        "segments": [{"start": 0.0, "end": 4.0, "speaker": "spk_0", "text": "Welcome to the launch episode."}]
    });
    let t = blobs
        .put(
            &format!("episodes/{episode}/transcript.json"),
            transcript.to_string().into_bytes(),
        )
        .await
        .expect("transcript");
    store
        .upsert_episode(&EpisodeRecord {
            episode_id: episode.into(),
            correlation_id: "c-1".into(),
            original_name: "weekly-42.m4a".into(),
            source: t.clone(),
            created_at_ms: 0,
        })
        .await
        .expect("episode");
    store
        .put_artifact(episode, "transcript", &t)
        .await
        .expect("artifact");
    // The operator fixed the summary prompt: version 9 in the override directory.
    let prompts = tempfile::tempdir().expect("prompts");
    let fixed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../prompts/summary.toml"
    ))
    .expect("bundled prompt")
    .lines()
    .map(|l| {
        if l.starts_with("version = ") {
            "version = 9"
        } else {
            l
        }
    })
    .collect::<Vec<_>>()
    .join("\n");
    std::fs::write(prompts.path().join("summary.toml"), fixed).expect("override");

    let job = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events-schema/examples/PromptJob/valid/01.json"
    ))
    .expect("example job");
    SqsQueue::new(&config)
        .dead_letters_to(&dlq)
        .dead_letter(&DeadLetter {
            message_id: "m-1".into(),
            body: job,
            reason: "ValidationException: prompt too long".into(),
            group_id: Some(format!("{episode}:summary")),
        })
        .await
        .expect("dead-lettered");
    let with_stack = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
        cmd.args(args)
            .env("PODFLOW_PROMPT_DLQ_URL", &dlq)
            .env("PODFLOW_PROMPT_QUEUE_URL", &queue)
            .env("PODFLOW_TABLE", "podflow-episodes")
            .env("PODFLOW_BUCKET", "podflow-bucket")
            .env("PODFLOW_PROMPTS_DIR", prompts.path())
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE");
        cmd.output().expect("podflow runs")
    };
    let listed = with_stack(&["dlq", "list", "--json"]);
    let line: serde_json::Value =
        serde_json::from_str(text(&listed).lines().next().expect("a line")).expect("JSON lines");
    let id = line["message_id"].as_str().expect("id").to_owned();

    // A version the catalog does not hold is refused and stays in the DLQ.
    let refused = with_stack(&["dlq", "replay", &id, "--prompt-version", "3"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("not replayed"),
        "{}",
        text(&refused)
    );

    let replayed = with_stack(&["dlq", "replay", "--all", "--prompt-version", "latest"]);
    assert_eq!(replayed.status.code(), Some(0), "{}", text(&replayed));
    let back = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .expect("receive");
    let body: serde_json::Value =
        serde_json::from_str(back.messages()[0].body().expect("body")).expect("job");
    assert_eq!(body["prompt_id"], "summary");
    assert_eq!(body["prompt_version"], 9);
    // The new input was rendered from the stack's transcript and stored in its bucket.
    let input: podflow_events::BlobRef =
        serde_json::from_value(body["input"].clone()).expect("input blob");
    let rendered = String::from_utf8(blobs.get(&input).await.expect("input")).expect("utf8");
    assert!(
        rendered.contains("Welcome to the launch episode."),
        "{rendered}"
    );
    let planned = store.prompts(episode).await.expect("prompts");
    assert!(
        planned
            .iter()
            .any(|p| p.prompt_id == "summary" && p.prompt_version == 9),
        "{planned:?}"
    );
    assert!(text(&with_stack(&["dlq", "list"])).contains("nothing waits in"));
}

/// `podflow dlq list --events` on the stack's event DLQ holding the three kinds of message
/// that arrive there: podflow's own dead letter, Lambda's on-failure record and
/// EventBridge's dead letter, each listed with its event and its reason.
/// A stack's event DLQ holding one message of each kind: podflow's own dead letter (the
/// reason in an attribute), Lambda's on-failure record, and EventBridge's dead letter of an
/// upload it could not hand to ingest.
struct EventDlq {
    config: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    dlq: String,
    episode: String,
    key: String,
}

async fn event_dlq_of_each_kind(moto: &MotoServer) -> EventDlq {
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = sqs
        .create_queue()
        .queue_name("events-dlq")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let detail: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events-schema/examples/EpisodeTranscoded/valid/01.json"
        ))
        .expect("example event"),
    )
    .expect("json");
    let episode = detail["episode_id"]
        .as_str()
        .expect("episode id")
        .to_owned();
    let event = serde_json::json!({
        "version": "0", "id": "ev-1", "detail-type": "EpisodeTranscoded",
        "source": "podflow.transcode-watcher", "account": "123456789012",
        "time": "2026-12-04T09:00:00Z", "region": "us-east-1", "resources": [],
        "detail": detail,
    });
    // 1. Given up on by podflow (its last delivery), the reason in an attribute.
    SqsQueue::new(&config)
        .dead_letters_to(&dlq)
        .dead_letter(&DeadLetter {
            message_id: "ev-1".into(),
            body: event.to_string(),
            reason: "delivered 3 times without being processed".into(),
            group_id: None,
        })
        .await
        .expect("dead-lettered");
    // 2. Lambda's on-failure record (the layout Lambda documents).
    let record = serde_json::json!({
        "version": "1.0",
        "timestamp": "2026-12-04T09:30:00.000Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-4f0b-8880-a18cdf61200e",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:podflow-Transcriber:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "Task timed out after 900.00 seconds"}
    });
    sqs.send_message()
        .queue_url(&dlq)
        .message_body(record.to_string())
        .send()
        .await
        .expect("send");
    // 3. EventBridge's dead letter for an upload it could not hand to the ingest function.
    let upload = podflow_fakes::fixtures::aws_json(
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectCreatedEvent.json",
    );
    let key = upload["detail"]["object"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let mut send = sqs
        .send_message()
        .queue_url(&dlq)
        .message_body(upload.to_string());
    for (name, value) in [
        ("ERROR_CODE", "SDK_CLIENT_ERROR"),
        ("ERROR_MESSAGE", "Unable to invoke Lambda function"),
        (
            "TARGET_ARN",
            "arn:aws:lambda:us-east-1:123456789012:function:podflow-Ingest",
        ),
    ] {
        send = send.message_attributes(
            name,
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("attribute"),
        );
    }
    send.send().await.expect("send");
    EventDlq {
        config,
        sqs,
        dlq,
        episode,
        key,
    }
}

#[tokio::test]
async fn operators_list_the_event_dlq_with_each_kind_of_message_explained() {
    let moto = MotoServer::start();
    let EventDlq {
        dlq, episode, key, ..
    } = event_dlq_of_each_kind(&moto).await;

    let list = |args: &[&str]| {
        podflow_on(&moto, args)
            .env("PODFLOW_EVENT_DLQ_URL", &dlq)
            .output()
            .expect("podflow runs")
    };
    let json = list(&["dlq", "list", "--events", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json));
    let reasons: Vec<String> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON lines");
            v["reason"].as_str().unwrap_or("(none)").to_owned()
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    for expected in [
        "delivered 3 times without being processed",
        "Lambda gave up on podflow-Transcriber after 3 attempt(s) (RetriesExhausted): Task timed out after 900.00 seconds",
        "EventBridge could not deliver it to podflow-Ingest: SDK_CLIENT_ERROR: Unable to invoke Lambda function",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected}: {reasons:?}"
        );
    }
    let table = text(&list(&["dlq", "list", "--events"]));
    assert_eq!(
        table
            .matches(&format!("EpisodeTranscoded {episode}"))
            .count(),
        2,
        "the event itself and the one inside Lambda's record: {table}"
    );
    assert!(table.contains(&format!("Object Created {key}")), "{table}");

    // `--events` without the queue's URL: refused by name.
    let missing = podflow_on(&moto, &["dlq", "list", "--events"])
        .output()
        .expect("podflow runs");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).contains("--event-dlq-url"),
        "{}",
        text(&missing)
    );
}

#[tokio::test]
async fn operators_replay_the_event_dlq_onto_the_bus_and_uploads_through_s3() {
    let moto = MotoServer::start();
    let EventDlq {
        config,
        sqs,
        dlq,
        episode,
        key,
    } = event_dlq_of_each_kind(&moto).await;
    // A fourth letter: a MediaConvert state change, which no one can put on a bus again.
    let mediaconvert = podflow_fakes::fixtures::aws_json(
        "mediaconvert/awsdocs-mediaconvert_ev_status_error.ERROR.json",
    );
    sqs.send_message()
        .queue_url(&dlq)
        .message_body(mediaconvert.to_string())
        .send()
        .await
        .expect("send");
    // The podflow bus, with a rule that hands the watcher's events to a queue to look at.
    let events = aws_sdk_eventbridge::Client::new(&config);
    events
        .create_event_bus()
        .name("podflow-bus")
        .send()
        .await
        .expect("bus");
    let seen = sqs
        .create_queue()
        .queue_name("seen")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let seen_arn = sqs
        .get_queue_attributes()
        .queue_url(&seen)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("arn")
        .to_owned();
    events
        .put_rule()
        .name("watcher-events")
        .event_bus_name("podflow-bus")
        .event_pattern(r#"{"source": ["podflow.transcode-watcher"]}"#)
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule("watcher-events")
        .event_bus_name("podflow-bus")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("seen")
                .arn(seen_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    // The object the dead-lettered upload names, with metadata of its own.
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket()
        .bucket("example-bucket")
        .send()
        .await
        .expect("bucket");
    s3.put_object()
        .bucket("example-bucket")
        .key(&key)
        .metadata("show", "weekly")
        .body(b"audio".to_vec().into())
        .send()
        .await
        .expect("object");

    let out = podflow_on(&moto, &["dlq", "replay", "--events", "--all", "--json"])
        .env("PODFLOW_EVENT_DLQ_URL", &dlq)
        .env("PODFLOW_EVENT_BUS", "podflow-bus")
        .output()
        .expect("podflow runs");
    // Three went back; the MediaConvert event stays, with the reason (exit 1).
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("cannot be sent again"), "{said}");
    let report: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}: {said}"));
    assert_eq!(
        report["moved"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    assert_eq!(
        report["refused"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );

    // Both copies of the watcher's event (podflow's letter and the one inside Lambda's
    // record) are on the bus again, as they were.
    let mut replayed = Vec::new();
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(&seen)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        replayed.extend(
            got.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
        if replayed.len() >= 2 {
            break;
        }
    }
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    for body in &replayed {
        let event: serde_json::Value = serde_json::from_str(body).expect("an event");
        assert_eq!(event["detail-type"], "EpisodeTranscoded");
        assert_eq!(event["detail"]["episode_id"], episode.as_str());
    }
    // The upload is announced again: copied onto itself, its own metadata kept.
    let head = s3
        .head_object()
        .bucket("example-bucket")
        .key(&key)
        .send()
        .await
        .expect("head");
    let metadata = head.metadata().expect("metadata");
    assert!(metadata.contains_key("podflow-replayed"), "{metadata:?}");
    assert_eq!(metadata.get("show").map(String::as_str), Some("weekly"));
    // Only the MediaConvert event is left.
    let left = podflow_on(&moto, &["dlq", "list", "--events", "--json"])
        .env("PODFLOW_EVENT_DLQ_URL", &dlq)
        .output()
        .expect("podflow runs");
    let lines: Vec<String> = String::from_utf8_lossy(&left.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("MediaConvert"), "{lines:?}");
}
