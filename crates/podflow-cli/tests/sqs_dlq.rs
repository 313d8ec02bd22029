//! `podflow dlq list|replay` against a deployed stack's SQS prompt DLQ, here moto server:
//! the real binary, configured only through the environment an operator would set.

use std::process::{Command, Output};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use podflow_aws::sqs::SqsQueue;
use podflow_core::{DeadLetter, DeliveryControl};
use podflow_fakes::moto::MotoServer;

fn podflow(moto: &MotoServer, dlq: &str, queue: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podflow"))
        .args(args)
        .env("PODFLOW_PROMPT_DLQ_URL", dlq)
        .env("PODFLOW_PROMPT_QUEUE_URL", queue)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
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
    aws_sdk_s3::Client::new(&config)
        .create_bucket()
        .bucket("podflow-bucket")
        .send()
        .await
        .expect("bucket");
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
    .replace("version = 1", "version = 9");
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
