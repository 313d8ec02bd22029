//! LLM answers are read with a size cap: a body over [`MAX_ANSWER_BYTES`] is an error with
//! a reason, from both clients (the OpenAI-compatible one and Bedrock Converse through the
//! real AWS SDK), and the reading stops at the cap instead of buffering the whole body.

use std::time::Duration;

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use bedrock_invoker::{
    bedrock::BedrockConverse,
    llm::{ChatRequest, LlmClient, MAX_ANSWER_BYTES},
    openai::OpenAiCompatible,
};
use podflow_core::ErrorKind;
use podflow_fakes::{FakeLlm, FakeLlmConfig};

/// A fake whose every answer is `len` bytes of text.
async fn answering(len: usize) -> FakeLlm {
    FakeLlm::start(FakeLlmConfig {
        scripted: vec![(String::new(), "x".repeat(len))],
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake")
}

fn clients(fake: &FakeLlm) -> [(&'static str, Box<dyn LlmClient>); 2] {
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&fake.bedrock_endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"));
    [
        (
            "openai",
            Box::new(OpenAiCompatible::new(
                &fake.url,
                None,
                Duration::from_secs(20),
            )),
        ),
        (
            "bedrock",
            Box::new(BedrockConverse::from_conf(conf, Duration::from_secs(20))),
        ),
    ]
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        system: String::new(),
        user: "Summarise: hello".into(),
        max_tokens: 50,
        temperature: 0.2,
    }
}

#[tokio::test]
async fn an_answer_over_the_cap_is_an_error_with_a_reason() {
    let fake = answering(2 * MAX_ANSWER_BYTES).await;
    for (name, client) in clients(&fake) {
        match client.chat(&request()).await {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Transient, "{name}: {e}");
                assert!(
                    e.to_string().contains("is larger than 1 MiB"),
                    "{name}: {e}"
                );
            }
            Ok(a) => panic!("{name}: read {} bytes", a.text.len()),
        }
    }
}

#[tokio::test]
async fn an_answer_under_the_cap_is_read_whole() {
    // The wire format's wrapping (JSON, usage) fits in what is left under the cap.
    let len = MAX_ANSWER_BYTES - 4096;
    let fake = answering(len).await;
    for (name, client) in clients(&fake) {
        let answer = client
            .chat(&request())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(answer.text.len(), len, "{name}");
    }
}

/// A server that answers every request with an endless chunked body (no length given) and
/// reports how many body bytes it got written before the client hung up.
async fn endless_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                // The request (small) is read up to its blank line; its body is ignored.
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
                let mut written = 0usize;
                // 256 MiB if nobody stops it.
                for _ in 0..4096 {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        break;
                    }
                    written += 65536;
                }
                let _ = tx.send(written);
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn an_endless_answer_is_cut_off_at_the_cap() {
    let (url, mut written) = endless_server().await;
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"));
    let clients: [(&str, Box<dyn LlmClient>); 2] = [
        (
            "openai",
            Box::new(OpenAiCompatible::new(
                &format!("{url}/v1"),
                None,
                Duration::from_secs(60),
            )),
        ),
        (
            "bedrock",
            Box::new(BedrockConverse::from_conf(conf, Duration::from_secs(60))),
        ),
    ];
    for (name, client) in clients {
        let err = client.chat(&request()).await.expect_err(name);
        assert!(
            err.to_string().contains("is larger than 1 MiB"),
            "{name}: {err}"
        );
        drop(client);
        // The client hung up long before the end: it did not buffer the body.
        let sent = tokio::time::timeout(Duration::from_secs(30), written.recv())
            .await
            .expect("the server stops")
            .expect("a count");
        assert!(sent < 64 << 20, "{name}: {sent} bytes went out");
    }
}
