//! Storm: 20 episodes × 8 prompts against a fake that throttles half the requests, fails 5%
//! with 5xx, answers 3% too slowly and garbles 2% — plus one prompt per episode on a model
//! that does not exist. Every prompt must end completed or dead-lettered with a reason,
//! none may run twice, none may be lost.

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
async fn every_prompt_completes_or_is_dead_lettered_once() {
    let fake = FakeLlm::start(FakeLlmConfig {
        answer_delay: Duration::from_millis(5),
        throttle_rate: 0.5,
        server_error_rate: 0.05,
        slow_rate: 0.03,
        slow_delay: Duration::from_millis(1500),
        malformed_rate: 0.02,
        unknown_models: vec!["no-such-model".into()],
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake");
    let mut jobs = Vec::new();
    for e in 0..20 {
        for p in 0..8 {
            jobs.push(Job {
                episode: format!("ep{e:02}"),
                prompt: format!("prompt{p}"),
                model: if p == 7 {
                    "no-such-model".into()
                } else {
                    format!("model-{}", p % 3)
                },
                text: format!("Speaker 1: episode {e} talks about topic {p}."),
                max_tokens: 100,
            });
        }
    }
    let generous = ModelLimits {
        requests_per_minute: 100_000,
        tokens_per_minute: 100_000_000,
        context_tokens: 8192,
    };
    let finished = support::run(
        Setup {
            llm_url: fake.url.clone(),
            limits: LimitsConfig {
                default: Some(generous),
                models: HashMap::new(),
            },
            minute: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 8,
                base: Duration::from_millis(20),
                cap: Duration::from_millis(300),
                ..RetryPolicy::default()
            },
            client_timeout: Duration::from_millis(500),
            concurrency: 8,
        },
        jobs,
    )
    .await;
    let db = &finished.db;
    let stats = fake.stats();
    // The storm really happened.
    let counts = (
        stats.requests,
        stats.throttled,
        stats.server_errors,
        stats.slow,
        stats.malformed,
    );
    assert!(
        stats.throttled > 50 && stats.server_errors > 0 && stats.slow > 0 && stats.malformed > 0,
        "requests, throttled, 5xx, slow, malformed: {counts:?}"
    );
    // None ran twice: the fake served each distinct request at most once.
    assert!(
        stats.served.values().all(|n| *n == 1),
        "a prompt was answered twice"
    );

    let (mut completed, mut failed) = (0, 0);
    for e in 0..20 {
        let episode = format!("ep{e:02}");
        let events = db.events_for(&episode).expect("events");
        for state in db.prompts(&episode).await.expect("prompts") {
            let count = |t: &str| {
                events
                    .iter()
                    .filter(|ev| {
                        ev.detail_type == t && ev.detail["prompt_id"] == state.prompt_id.as_str()
                    })
                    .count()
            };
            match state.status {
                PromptStatus::Completed => {
                    completed += 1;
                    assert_eq!(
                        (count("PromptCompleted"), count("PromptFailed")),
                        (1, 0),
                        "{state:?}"
                    );
                    assert!(state.output.is_some());
                }
                PromptStatus::Failed => {
                    failed += 1;
                    assert_eq!(
                        (count("PromptCompleted"), count("PromptFailed")),
                        (0, 1),
                        "{state:?}"
                    );
                    assert!(state.last_error.as_deref().is_some_and(|e| !e.is_empty()));
                    if state.prompt_id == "prompt7" {
                        // Permanent: failed at once, not retried.
                        assert_eq!(state.attempts, 1);
                        assert!(
                            state.last_error.as_deref().unwrap_or("").contains("404"),
                            "{state:?}"
                        );
                    }
                }
                other => panic!("{} {} ended {other:?}", episode, state.prompt_id),
            }
        }
    }
    assert_eq!(completed + failed, 160, "none lost");
    assert!(
        completed >= 120,
        "only {completed} of 140 healthy prompts completed"
    );
    assert_eq!(
        stats.served.len(),
        completed,
        "every served answer was recorded"
    );
    let dead = db.dead_letters().expect("dlq");
    assert_eq!(dead.len(), failed);
    assert!(
        dead.iter()
            .all(|d| d.last_error.as_deref().is_some_and(|e| !e.is_empty()))
    );
}

fn generous() -> LimitsConfig {
    LimitsConfig {
        default: Some(ModelLimits {
            requests_per_minute: 100_000,
            tokens_per_minute: 100_000_000,
            context_tokens: 8192,
        }),
        models: HashMap::new(),
    }
}

fn episodes(n: usize, prompts: usize) -> Vec<Job> {
    (0..n)
        .flat_map(|e| {
            (0..prompts).map(move |p| Job {
                episode: format!("ep{e:02}"),
                prompt: format!("prompt{p}"),
                model: "model-a".into(),
                text: format!("Speaker 1: episode {e} talks about topic {p}."),
                max_tokens: 100,
            })
        })
        .collect()
}

/// Half the calls throttled and 5% failing with 5xx, under the default attempt budget:
/// throttles slow the model down but spend no attempt, so every prompt completes, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_fails_no_prompt() {
    let fake = FakeLlm::start(FakeLlmConfig {
        throttle_rate: 0.5,
        server_error_rate: 0.05,
        seed: 11,
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake");
    let policy = RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        ..RetryPolicy::default()
    };
    let max_attempts = policy.max_attempts;
    let finished = support::run(
        Setup {
            llm_url: fake.url.clone(),
            limits: generous(),
            minute: Duration::from_secs(60),
            retry: policy,
            client_timeout: Duration::from_secs(5),
            concurrency: 8,
        },
        episodes(3, 8),
    )
    .await;
    let stats = fake.stats();
    assert!(stats.throttled >= 12, "the storm happened: {stats:?}");
    assert!(
        stats.served.values().all(|n| *n == 1) && stats.served.len() == 24,
        "every prompt answered exactly once: {:?}",
        stats.served
    );
    let mut most_throttles = 0;
    for e in 0..3 {
        let episode = format!("ep{e:02}");
        let events = finished.db.events_for(&episode).expect("events");
        assert_eq!(
            events
                .iter()
                .filter(|ev| ev.detail_type == "PromptCompleted")
                .count(),
            8,
            "{episode}"
        );
        assert!(events.iter().all(|ev| ev.detail_type != "PromptFailed"));
        for state in finished.db.prompts(&episode).await.expect("prompts") {
            assert_eq!(state.status, PromptStatus::Completed, "{state:?}");
            assert!(state.attempts <= max_attempts, "{state:?}");
            most_throttles = most_throttles.max(state.throttles);
        }
    }
    assert!(finished.db.dead_letters().expect("dlq").is_empty());
    assert!(most_throttles >= 1, "some prompt was throttled on the way");
}

/// A provider that throttles every call: the prompt is retried without spending attempts
/// until its throttling budget runs out, then fails as throttled, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_throttled_past_its_budget_fails_as_throttled() {
    let fake = FakeLlm::start(FakeLlmConfig {
        throttle_rate: 1.0,
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake");
    let finished = support::run(
        Setup {
            llm_url: fake.url.clone(),
            limits: generous(),
            minute: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 2,
                base: Duration::from_millis(5),
                cap: Duration::from_millis(40),
                throttle_budget: Duration::from_millis(600),
                ..RetryPolicy::default()
            },
            client_timeout: Duration::from_secs(5),
            concurrency: 1,
        },
        episodes(1, 1),
    )
    .await;
    let state = finished
        .db
        .prompts("ep00")
        .await
        .expect("prompts")
        .remove(0);
    assert_eq!(state.status, PromptStatus::Failed, "{state:?}");
    let reason = state.last_error.clone().unwrap_or_default();
    assert!(reason.contains("still throttled after"), "{reason}");
    // Far more deliveries than the 2 attempts: throttles did not spend them.
    assert!(fake.stats().throttled > 2, "{:?}", fake.stats());
    let failed: Vec<_> = finished
        .db
        .events_for("ep00")
        .expect("events")
        .into_iter()
        .filter(|ev| ev.detail_type == "PromptFailed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail["kind"], "throttled");
}
