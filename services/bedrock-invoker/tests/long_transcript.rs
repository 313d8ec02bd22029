//! A transcript larger than the model's context is summarised map-reduce style: notes on
//! each part, then the prompt over the notes — not truncated, not failed.

mod support;

use std::{collections::HashMap, time::Duration};

use bedrock_invoker::{
    RetryPolicy,
    ratelimit::{LimitsConfig, ModelLimits},
};
use podflow_core::{EpisodeStore, PromptStatus};
use podflow_fakes::{FakeLlm, FakeLlmConfig};
use support::{Job, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_transcripts_are_condensed_part_by_part() {
    let fake = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake");
    // 60 turns of ~105 characters: about 1,600 tokens, against a 1,500-token context.
    let transcript: Vec<String> = (0..60)
        .map(|i| format!("[00:{:02}:00] Speaker {}: turn number {i} says something about topic {i} that a summary must not lose entirely.", i % 60, i % 2 + 1))
        .collect();
    let small = ModelLimits {
        requests_per_minute: 10_000,
        tokens_per_minute: 10_000_000,
        context_tokens: 1_500,
    };
    let finished = support::run(
        Setup {
            llm_url: fake.url.clone(),
            limits: LimitsConfig {
                default: Some(small),
                models: HashMap::new(),
            },
            minute: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            client_timeout: Duration::from_secs(5),
            concurrency: 1,
        },
        vec![Job {
            episode: "long".into(),
            prompt: "summary".into(),
            model: "small-model".into(),
            text: transcript.join("\n\n"),
            max_tokens: 200,
        }],
    )
    .await;
    let state = finished
        .db
        .prompts("long")
        .await
        .expect("prompts")
        .remove(0);
    assert_eq!(state.status, PromptStatus::Completed, "{state:?}");
    let stats = fake.stats();
    let served = stats.served.len();
    // Each part must fit in what the context leaves after the note-taking instructions and
    // their 700-token answer (~730 tokens): at least two parts, plus the final call.
    assert!(
        served >= 3,
        "only {served} calls: the transcript was not split"
    );
    // Token usage adds up every call, not just the last.
    assert_eq!(u64::from(state.output_tokens), stats.output_tokens);
}
