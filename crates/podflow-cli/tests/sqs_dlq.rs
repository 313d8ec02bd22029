//! `podflow dlq list|replay` against a deployed stack's SQS prompt DLQ, here moto server:
//! the real binary, configured only through the environment an operator would set.

use std::process::{Command, Output};

use aws_config::{BehaviorVersion, Region};
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

#[tokio::test]
async fn operators_list_and_replay_the_sqs_prompt_dlq() {
    let moto = MotoServer::start();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await;
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
    let (dlq, queue) = (urls[0].clone(), urls[1].clone());
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

    // Re-rendering needs the episode's transcript: refused on SQS, in words, nothing moved.
    let refused = podflow(
        &moto,
        &dlq,
        &queue,
        &["dlq", "replay", &id, "--prompt-version", "latest"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("not supported against SQS"),
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
    assert!(text(&empty).contains("is empty"), "{}", text(&empty));
}
