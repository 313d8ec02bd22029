//! The AWS adapters against moto server on loopback (`pip install 'moto[server]'`; the
//! setup script installs it). Each test starts its own server on a free port.
//! One file so that one moto server per test shares the setup helpers below.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use podflow_aws::{
    dlq::SqsDeadLetterQueue,
    dynamodb::DynamoEpisodeStore,
    eventbridge::EventBridgePublisher,
    s3::S3BlobStore,
    secrets,
    sns::SnsNotifier,
    sqs::{REASON_ATTRIBUTE, SqsQueue},
};
use podflow_core::{
    BlobStore, DeadLetter, DeadLetterMessage, DeadLetterQueue, DeliveryControl, DeliveryCounter,
    ErrorKind, EventPublisher, JobSender, Notifier, QueuedJob, secret::Secret,
};
use podflow_events::EventEnvelope;
use podflow_fakes::moto::MotoServer;
use serde_json::json;

#[tokio::test]
async fn s3_round_trip_files_and_pre_signed_links() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
    .create_bucket()
    .bucket("episodes")
    .send()
    .await
    .expect("bucket");
    let store = S3BlobStore::new(&config, "episodes", true);

    let blob = store
        .put("episodes/ep-1/show notes.md", b"# Title\n".to_vec())
        .await
        .expect("put");
    assert_eq!(blob.bucket.as_deref(), Some("episodes"));
    assert_eq!(blob.size, 8);
    assert_eq!(blob.sha256, hex_sha(b"# Title\n"));
    assert_eq!(store.get(&blob).await.expect("get"), b"# Title\n");

    // A file larger than one read chunk: stored whole, hashed right, and moved.
    let file = store.scratch_path("audio.mp3");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("scratch");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).expect("write");
    let audio = podflow_media::store_file(&store, "episodes/ep-1/audio.mp3", &file)
        .await
        .expect("store_file");
    assert_eq!(
        (audio.size, audio.sha256.clone()),
        (bytes.len() as u64, hex_sha(&bytes))
    );
    assert!(!file.exists(), "moved into the store");
    assert_eq!(store.get(&audio).await.expect("get"), bytes);
    // A file hashed while it was written is uploaded with that digest, not read again.
    std::fs::write(&file, &bytes).expect("write");
    let hashed = store
        .put_hashed_file("incoming/ep-1.mp3", &file, &audio.sha256, audio.size)
        .await
        .expect("put_hashed_file");
    assert!(!file.exists(), "moved into the store");
    assert_eq!(
        store.digest("incoming/ep-1.mp3").await.expect("digest"),
        hashed
    );
    assert!(store.local_path(&audio).is_none());
    // An object that is already there (an upload) is hashed as it streams in.
    assert_eq!(
        store
            .digest("episodes/ep-1/audio.mp3")
            .await
            .expect("digest"),
        audio
    );
    let missing = store
        .digest("incoming/none.m4a")
        .await
        .expect_err("no such key");
    assert!(missing.to_string().contains("s3://"), "{missing}");

    // A copy is made inside S3 (a key with a space is escaped in CopySource) and keeps the
    // bytes and their digest; copying what is not there names the source.
    let copied = store
        .copy(&blob, "episodes/ep-2/show notes.md")
        .await
        .expect("copy");
    assert_eq!(
        (copied.key.as_str(), copied.size, copied.sha256.as_str()),
        (
            "episodes/ep-2/show notes.md",
            blob.size,
            blob.sha256.as_str()
        )
    );
    assert_eq!(store.get(&copied).await.expect("get"), b"# Title\n");
    let gone = podflow_events::BlobRef {
        key: "episodes/none/audio.mp3".into(),
        ..blob.clone()
    };
    let refused = store
        .copy(&gone, "episodes/ep-2/audio.mp3")
        .await
        .expect_err("no such source");
    assert!(
        refused.to_string().contains("episodes/none/audio.mp3"),
        "{refused}"
    );

    // A pre-signed GET is a working link (moto does not check signatures or expiry; the
    // query names the expiry we asked for, capped at SigV4's 7 days).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let url = store
        .share_url(&blob, Duration::from_secs(30 * 24 * 3600))
        .await
        .expect("presign");
    assert!(url.contains("X-Amz-Expires=604800"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let body = reqwest::get(&url)
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&body[..], b"# Title\n");

    let missing = podflow_events::BlobRef {
        key: "nope".into(),
        ..blob
    };
    let e = store.get(&missing).await.expect_err("missing");
    assert!(e.to_string().contains("s3://episodes/nope"), "{e}");
}

fn hex_sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn sns_delivers_text_to_people_and_the_whole_message_to_queues() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("podflow")
        .send()
        .await
        .expect("topic");
    let topic_arn = topic.topic_arn().expect("arn").to_owned();
    let queue = sqs
        .create_queue()
        .queue_name("subscriber")
        .send()
        .await
        .expect("queue");
    let queue_url = queue.queue_url().expect("url").to_owned();
    let queue_arn = "arn:aws:sqs:us-east-1:123456789012:subscriber";
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe");

    let notifier = SnsNotifier::new(&config, &topic_arn);
    let message = json!({"text": "MP3 ready: Weekly 42", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "MP3 ready"}}]});
    notifier.send(&message).await.expect("published");
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    let bodies: Vec<&str> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies.len(), 1);
    let delivered: serde_json::Value =
        serde_json::from_str(bodies[0]).expect("the sqs variant is the whole message");
    assert_eq!(delivered, message);

    let gone = SnsNotifier::new(&config, "arn:aws:sns:us-east-1:123456789012:no-such-topic");
    match gone.send(&message).await {
        Err(e) if !e.is_retryable() => {
            let reason = e.to_string();
            assert!(
                reason.contains("no-such-topic") && reason.contains("PODFLOW_SNS_TOPIC_ARN"),
                "{reason}"
            )
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test]
async fn secrets_come_from_ssm_or_secrets_manager_and_plain_values_pass_through() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name("/podflow/slack-webhook")
        .value("https://hooks.slack.com/services/T/B/from-ssm")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("parameter");
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("podflow/slack")
        .secret_string("https://hooks.slack.com/services/T/B/from-secrets")
        .send()
        .await
        .expect("secret");
    let get = |s: &'static str| {
        let config = config.clone();
        async move {
            secrets::read_setting("PODFLOW_SLACK_WEBHOOK_URL", &Secret::new(s), async || {
                config
            })
            .await
            .map(|v| v.expose().to_owned())
        }
    };
    assert!(
        get("ssm:/podflow/slack-webhook")
            .await
            .expect("ssm")
            .ends_with("from-ssm")
    );
    assert!(
        get("secretsmanager:podflow/slack")
            .await
            .expect("sm")
            .ends_with("from-secrets")
    );
    assert_eq!(
        get("https://example.com/x").await.expect("plain"),
        "https://example.com/x"
    );
    let e = get("ssm:/podflow/missing").await.expect_err("missing");
    assert!(
        e.to_string()
            .contains("PODFLOW_SLACK_WEBHOOK_URL: cannot read ssm:/podflow/missing")
            && e.to_string().contains("ParameterNotFound"),
        "{e}"
    );
    let e = get("  ").await.expect_err("blank");
    assert_eq!(e.to_string(), "PODFLOW_SLACK_WEBHOOK_URL is empty");
}

/// Every message on a queue (received and deleted), as (body, group id, receive count).
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, Option<String>, u32)> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            let attrs = m.attributes();
            let attr = |name: MessageSystemAttributeName| attrs.and_then(|a| a.get(&name)).cloned();
            out.push((
                m.body().unwrap_or_default().to_owned(),
                attr(MessageSystemAttributeName::MessageGroupId),
                attr(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            ));
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

fn event(detail_type: &str, source: &str, n: usize) -> EventEnvelope {
    EventEnvelope {
        version: "0".into(),
        id: format!("local-{n}"),
        detail_type: detail_type.into(),
        source: source.into(),
        account: String::new(),
        time: "2026-11-22T10:00:00Z".into(),
        region: String::new(),
        resources: Vec::new(),
        detail: json!({"schema_version": "1.1", "episode_id": format!("ep-{n}"), "correlation_id": "c"}),
    }
}

#[tokio::test]
async fn eventbridge_publishes_in_batches_and_rules_deliver_to_sqs() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    events
        .create_event_bus()
        .name("podflow-test")
        .send()
        .await
        .expect("bus");
    let inbox = sqs
        .create_queue()
        .queue_name("transcriber-inbox")
        .send()
        .await
        .expect("queue");
    let inbox_url = inbox.queue_url().expect("url").to_owned();
    events
        .put_rule()
        .name("uploads-to-transcriber")
        .event_bus_name("podflow-test")
        .event_pattern(r#"{"source": ["podflow.ingest"], "detail-type": ["EpisodeUploaded"]}"#)
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule("uploads-to-transcriber")
        .event_bus_name("podflow-test")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("inbox")
                .arn("arn:aws:sqs:us-east-1:123456789012:transcriber-inbox")
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");

    // 23 events: three PutEvents calls; 12 match the rule.
    let publisher = EventBridgePublisher::new(&config, "podflow-test");
    let batch: Vec<EventEnvelope> = (0..23)
        .map(|n| {
            if n % 2 == 0 {
                event("EpisodeUploaded", "podflow.ingest", n)
            } else {
                event("EpisodeTranscribed", "podflow.transcriber", n)
            }
        })
        .collect();
    publisher.publish(&batch).await.expect("published");
    let delivered = drain(&sqs, &inbox_url).await;
    let mut episodes: Vec<String> = delivered
        .iter()
        .map(|(body, _, _)| {
            let envelope: EventEnvelope =
                serde_json::from_str(body).expect("an EventBridge envelope");
            assert_eq!(envelope.detail_type, "EpisodeUploaded");
            assert_eq!(envelope.source, "podflow.ingest");
            envelope.detail["episode_id"]
                .as_str()
                .expect("detail kept")
                .to_owned()
        })
        .collect();
    episodes.sort();
    let mut expected: Vec<String> = (0..23)
        .filter(|n| n % 2 == 0)
        .map(|n| format!("ep-{n}"))
        .collect();
    expected.sort();
    assert_eq!(episodes, expected);

    // Too big for EventBridge: refused before anything is sent, naming the event.
    let mut huge = event("EpisodeUploaded", "podflow.ingest", 99);
    huge.detail["blob"] = json!("x".repeat(300 * 1024));
    match publisher
        .publish(&[event("EpisodeUploaded", "podflow.ingest", 98), huge])
        .await
    {
        Err(e) if e.kind() == ErrorKind::Input => {
            let why = e.to_string();
            assert!(
                why.contains("local-99") && why.contains("blob pointers"),
                "{why}"
            )
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert!(
        drain(&sqs, &inbox_url).await.is_empty(),
        "nothing of a refused batch was sent"
    );
}

#[tokio::test]
async fn sqs_fifo_jobs_keep_group_order_back_off_and_dead_letter() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = sqs
        .create_queue()
        .queue_name("prompts-dlq.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("dlq");
    let dlq_url = dlq.queue_url().expect("url").to_owned();
    let queue = sqs
        .create_queue()
        .queue_name("prompts.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            r#"{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:prompts-dlq.fifo", "maxReceiveCount": "2"}"#,
        )
        .send()
        .await
        .expect("queue");
    let url = queue.queue_url().expect("url").to_owned();
    let jobs = SqsQueue::new(&config)
        .with_queue("prompts", &url)
        .consuming(&url)
        .dead_letters_to(&dlq_url);

    // 12 jobs over two groups (two batch calls), plus a duplicate that must be dropped.
    let job = |group: &str, n: usize| QueuedJob {
        queue: "prompts".into(),
        group_id: group.into(),
        dedup_id: format!("{group}:prompt-{n}:v1"),
        body: format!("{group}/{n}"),
    };
    let mut batch: Vec<QueuedJob> = (0..7).map(|n| job("ep-1:haiku", n)).collect();
    batch.extend((0..5).map(|n| job("ep-1:sonnet", n)));
    batch.push(job("ep-1:haiku", 0));
    jobs.send_jobs(&batch).await.expect("sent");
    let got = drain(&sqs, &url).await;
    assert_eq!(got.len(), 12, "the duplicate was dropped: {got:?}");
    for group in ["ep-1:haiku", "ep-1:sonnet"] {
        let bodies: Vec<&str> = got
            .iter()
            .filter(|(_, g, _)| g.as_deref() == Some(group))
            .map(|(b, _, _)| b.as_str())
            .collect();
        let expected: Vec<String> = (0..bodies.len()).map(|n| format!("{group}/{n}")).collect();
        assert_eq!(bodies, expected, "{group} kept its order");
    }
    let unknown = QueuedJob {
        queue: "nowhere".into(),
        ..job("g", 0)
    };
    assert!(matches!(
        jobs.send_jobs(&[unknown]).await,
        Err(e) if e.kind() == ErrorKind::Setup
    ));

    // Backoff: a delivery hidden for 1 s comes back with its receive count raised, and
    // after maxReceiveCount the queue's redrive policy moves it to the DLQ.
    jobs.send_jobs(&[job("ep-2:haiku", 0)]).await.expect("sent");
    let receive = || async {
        sqs.receive_message()
            .queue_url(&url)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive")
    };
    let first = receive().await;
    let receipt = first.messages()[0]
        .receipt_handle()
        .expect("receipt")
        .to_owned();
    jobs.delay(&receipt, Duration::from_secs(1))
        .await
        .expect("delayed");
    assert!(
        receive().await.messages().is_empty(),
        "hidden while backing off"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = receive().await;
    let count = second.messages()[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned();
    assert_eq!(count.as_deref(), Some("2"));
    let receipt = second.messages()[0]
        .receipt_handle()
        .expect("receipt")
        .to_owned();
    jobs.delay(&receipt, Duration::ZERO)
        .await
        .expect("released");
    assert!(
        receive().await.messages().is_empty(),
        "past maxReceiveCount it leaves the queue"
    );
    let dead = drain(&sqs, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "ep-2:haiku/0");

    // A hopeless message goes to the DLQ at once, in its group, with its reason.
    let letter = DeadLetter {
        message_id: "3f1c".into(),
        body: "ep-3:haiku/0".into(),
        reason: "ValidationException: unknown model anthropic.claude-9".into(),
        group_id: Some("ep-3:haiku".into()),
    };
    jobs.dead_letter(&letter).await.expect("dead-lettered");
    let got = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let m = &got.messages()[0];
    assert_eq!(m.body(), Some("ep-3:haiku/0"));
    let reason = m
        .message_attributes()
        .and_then(|a| a.get(REASON_ATTRIBUTE))
        .and_then(|v| v.string_value());
    assert_eq!(reason, Some(letter.reason.as_str()));
    let group = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    assert_eq!(group.as_deref(), Some("ep-3:haiku"));
}

#[tokio::test]
async fn dynamodb_store_meets_the_episode_store_contract() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    // The table as infra/template.yaml declares it.
    podflow_fakes::moto::create_episode_table(&config, "podflow-episodes").await;
    let store = DynamoEpisodeStore::new(&config, "podflow-episodes");
    podflow_fakes::store_contract::check_episode_store(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn dynamodb_counts_each_events_deliveries_per_consumer_and_lets_them_expire() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    podflow_fakes::moto::create_episode_table(&config, "podflow-episodes").await;
    let store = DynamoEpisodeStore::new(&config, "podflow-episodes");
    for expected in 1..=3 {
        let n = store
            .count_delivery("transcode", "event-1")
            .await
            .expect("counted");
        assert_eq!(n, expected);
    }
    assert_eq!(
        store.count_delivery("transcribe", "event-1").await.ok(),
        Some(1),
        "another consumer of the same event counts on its own"
    );
    assert_eq!(
        store.count_delivery("transcode", "event-2").await.ok(),
        Some(1)
    );
    let item = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name("podflow-episodes")
        .key("pk", AttributeValue::S("DELIVERY#transcode#event-1".into()))
        .key("sk", AttributeValue::S("COUNT".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("the count is an item");
    let expires: i64 = item["expires_at"]
        .as_n()
        .expect("a number")
        .parse()
        .expect("seconds");
    let now = podflow_core::now_ms() / 1000;
    assert!(
        (now + 24 * 3600..=now + 3 * 24 * 3600).contains(&expires),
        "the table's TTL removes it after a day or two: {expires} vs now {now}"
    );
}

/// A FIFO queue and its FIFO DLQ (maxReceiveCount 1), as the template declares them.
async fn fifo_pair(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("dlq");
    let queue = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:{name}-dlq.fifo", "maxReceiveCount": "1"}}"#),
        )
        .send()
        .await
        .expect("queue");
    (
        queue.queue_url().expect("url").to_owned(),
        dlq.queue_url().expect("url").to_owned(),
    )
}

#[tokio::test]
async fn dead_letters_are_listed_with_reasons_and_replayed_with_their_fifo_ids() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (url, dlq_url) = fifo_pair(&sqs, "prompts").await;
    let jobs = SqsQueue::new(&config)
        .with_queue("prompts", &url)
        .consuming(&url)
        .dead_letters_to(&dlq_url);
    // One job reaches the DLQ through the redrive policy (received past maxReceiveCount)...
    let job = |group: &str, prompt: &str| QueuedJob {
        queue: "prompts".into(),
        group_id: group.into(),
        dedup_id: format!("{group}:{prompt}:v1"),
        body: serde_json::json!({"episode_id": group, "prompt_id": prompt, "model": "haiku"})
            .to_string(),
    };
    jobs.send_jobs(&[job("ep-1", "titles")])
        .await
        .expect("sent");
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .expect("receive");
    let receipt = got.messages()[0]
        .receipt_handle()
        .expect("receipt")
        .to_owned();
    jobs.delay(&receipt, Duration::ZERO)
        .await
        .expect("released");
    assert!(
        sqs.receive_message()
            .queue_url(&url)
            .send()
            .await
            .expect("receive")
            .messages()
            .is_empty()
    );
    // ...and one because podflow gave up on it, with the reason.
    jobs.dead_letter(&DeadLetter {
        message_id: "m-2".into(),
        body: job("ep-2", "summary").body,
        reason: "ValidationException: model haiku is not enabled".into(),
        group_id: Some("ep-2".into()),
    })
    .await
    .expect("dead-lettered");

    let dlq = SqsDeadLetterQueue::new(&config, &dlq_url, &url);
    let mut listed = dlq.list().await.expect("list");
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].group_id.as_deref(), Some("ep-1"));
    assert_eq!(listed[0].reason, None, "moved by SQS itself");
    assert_eq!(
        listed[1].reason.as_deref(),
        Some("ValidationException: model haiku is not enabled")
    );
    assert_eq!(
        dlq.list().await.expect("list again").len(),
        2,
        "listing removes nothing"
    );

    // Replay only ep-2, on another model (moto has no StartMessageMoveTask, and a rewrite
    // needs the one-by-one path anyway).
    let pick = |l: &DeadLetterMessage| l.group_id.as_deref() == Some("ep-2");
    let rewrite = |l: &DeadLetterMessage| {
        let mut job: serde_json::Value =
            serde_json::from_str(&l.body).map_err(|e| e.to_string())?;
        job["model"] = json!("sonnet");
        Ok(job.to_string())
    };
    let report = dlq
        .replay(Some(&pick), Some(&rewrite))
        .await
        .expect("replay");
    assert_eq!(
        (report.moved.len(), report.refused.len(), report.move_task),
        (1, 0, None)
    );
    let back = drain(&sqs, &url).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].1.as_deref(), Some("ep-2"), "its FIFO group kept");
    let body: serde_json::Value = serde_json::from_str(&back[0].0).expect("job");
    assert_eq!(body["model"], "sonnet");

    // The rest, unchanged: the move task is not served here, so one by one. A message sent
    // outside SQS's dedup window keeps its original dedup id.
    let mut everything = SqsDeadLetterQueue::new(&config, &dlq_url, &url);
    everything.dedup_window = Duration::ZERO;
    let report = everything.replay(None, None).await.expect("replay all");
    assert_eq!(report.moved.len(), 1);
    let back = drain(&sqs, &url).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].1.as_deref(), Some("ep-1"));
    assert!(
        dlq.list().await.expect("list").is_empty(),
        "nothing left behind"
    );
    // A rewrite that refuses keeps the message where it is.
    jobs.dead_letter(&DeadLetter {
        message_id: "m-3".into(),
        body: "not a job".into(),
        reason: "unreadable".into(),
        group_id: Some("ep-3".into()),
    })
    .await
    .expect("dead-lettered");
    let strict = |l: &DeadLetterMessage| {
        serde_json::from_str::<serde_json::Value>(&l.body)
            .map(|v| v.to_string())
            .map_err(|e| format!("not a prompt job: {e}"))
    };
    let report = dlq.replay(None, Some(&strict)).await.expect("replay");
    assert_eq!(report.moved.len(), 0);
    assert!(
        report.refused[0].1.contains("not a prompt job"),
        "{report:?}"
    );
    assert_eq!(dlq.list().await.expect("list").len(), 1);
}
