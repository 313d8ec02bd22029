//! The Bedrock Converse adapter (the real AWS SDK, SigV4 and all) against the fake's
//! Converse endpoint: answers and usage are read, and every error shape is classified.

use std::time::Duration;

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use bedrock_invoker::{
    bedrock::BedrockConverse,
    llm::{ChatRequest, LlmClient},
};
use podflow_core::ErrorKind;
use podflow_fakes::{FakeLlm, FakeLlmConfig};

async fn client(config: FakeLlmConfig) -> (FakeLlm, BedrockConverse) {
    let fake = FakeLlm::start(config).await.expect("fake");
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&fake.bedrock_endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"));
    (
        fake,
        BedrockConverse::from_conf(conf, Duration::from_secs(5)),
    )
}

fn request(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        system: "Be brief.".into(),
        user: "Summarise: hello world".into(),
        max_tokens: 50,
        temperature: 0.2,
    }
}

#[tokio::test]
async fn reads_the_answer_and_usage() {
    let (fake, bedrock) = client(FakeLlmConfig::default()).await;
    let answer = bedrock
        .chat(&request("anthropic.claude-3-haiku-20240307-v1:0"))
        .await
        .expect("answers");
    assert_eq!(answer.text, "FAKE ANSWER to: Summarise: hello world");
    // The fake counts a token per four characters of the answer it sent, like the input.
    let answer_tokens = answer.text.chars().count().div_ceil(4) as u32;
    assert_eq!(
        (answer.input_tokens, answer.output_tokens),
        (6, answer_tokens)
    );
    assert_eq!(fake.stats().served.len(), 1);
}

#[tokio::test]
async fn classifies_bedrock_errors() {
    let (_f, throttled) = client(FakeLlmConfig {
        throttle_rate: 1.0,
        ..FakeLlmConfig::default()
    })
    .await;
    match throttled.chat(&request("m")).await {
        Err(e) if matches!(e.kind(), ErrorKind::Throttled { .. }) => {
            assert!(e.to_string().contains("ThrottlingException"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let (_f, unavailable) = client(FakeLlmConfig {
        server_error_rate: 1.0,
        ..FakeLlmConfig::default()
    })
    .await;
    match unavailable.chat(&request("m")).await {
        Err(e) if e.kind() == ErrorKind::Transient => {
            assert!(e.to_string().contains("ServiceUnavailableException"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let (_f, invalid) = client(FakeLlmConfig {
        unknown_models: vec!["nope".into()],
        ..FakeLlmConfig::default()
    })
    .await;
    match invalid.chat(&request("nope")).await {
        Err(e) if e.kind() == ErrorKind::Input => {
            assert!(e.to_string().contains("ValidationException"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let (_f, garbled) = client(FakeLlmConfig {
        malformed_rate: 1.0,
        ..FakeLlmConfig::default()
    })
    .await;
    assert!(matches!(
        garbled.chat(&request("m")).await,
        Err(e) if e.kind() == ErrorKind::Transient
    ));
}
