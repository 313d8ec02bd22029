//! Bench: N prompts over M models against a fake provider that enforces a per-model quota
//! (10 requests/min and 20,000 tokens/min, token buckets; a few seconds per answer).
//! Run: `cargo bench -p bedrock-invoker --bench prompts` (prints a table).
//!
//! Time is scaled so it finishes quickly: one quota "minute" lasts `MINUTE` of wall time and
//! every figure is printed back in real-time units (× 60 s / MINUTE).

#[path = "../tests/support/mod.rs"]
mod support;

use std::{collections::HashMap, time::Duration};

use bedrock_invoker::{
    RetryPolicy,
    ratelimit::{LimitsConfig, ModelLimits},
};
use podflow_fakes::{FakeLlm, FakeLlmConfig, request_tokens};
use support::{Job, Setup};

const MINUTE: Duration = Duration::from_secs(12);
const MODELS: usize = 3;
const PROMPTS: usize = 60;
const RPM: u32 = 10;
const TPM: u32 = 20_000;
const MAX_TOKENS: u32 = 1_200;
/// "A few seconds per answer" in real time.
const ANSWER_REAL_SECONDS: f64 = 3.0;
/// Today's workflow: one prompt at a time, then a fixed 2-minute sleep.
const SERIAL_SLEEP_REAL_SECONDS: f64 = 120.0;

fn scale() -> f64 {
    60.0 / MINUTE.as_secs_f64()
}

fn jobs() -> Vec<Job> {
    (0..PROMPTS)
        .map(|i| Job {
            episode: format!("ep{:02}", i / 8),
            prompt: format!("prompt{i:02}"),
            model: format!("model-{}", i % MODELS),
            text: "Speaker 1: a transcript line that stands in for a real episode. ".repeat(20),
            max_tokens: MAX_TOKENS,
        })
        .collect()
}

/// The time the quota alone forces: per model, the requests and tokens beyond one bucket
/// refill at quota/minute, and the last answer still takes its answer time.
fn quota_lower_bound(jobs: &[Job]) -> f64 {
    let mut per_model: HashMap<&str, (u32, u32)> = HashMap::new();
    for j in jobs {
        let body = serde_json::json!({
            "max_tokens": j.max_tokens,
            "messages": [{"content": "You are a test."},
                         {"content": format!("{} {}: summarise.\n\n{}", j.episode, j.prompt, j.text)}]
        });
        let e = per_model.entry(&j.model).or_default();
        e.0 += 1;
        e.1 += request_tokens(&body);
    }
    let minute = MINUTE.as_secs_f64();
    per_model
        .values()
        .map(|(n, tokens)| {
            let by_requests = f64::from(n.saturating_sub(RPM)) / f64::from(RPM) * minute;
            let by_tokens = f64::from(tokens.saturating_sub(TPM)) / f64::from(TPM) * minute;
            by_requests.max(by_tokens)
        })
        .fold(0.0, f64::max)
        + ANSWER_REAL_SECONDS / scale()
}

async fn scenario(limits: ModelLimits) -> (f64, u64, usize) {
    let fake = FakeLlm::start(FakeLlmConfig {
        answer_delay: Duration::from_secs_f64(ANSWER_REAL_SECONDS / scale()),
        quota: Some((RPM, TPM)),
        minute: MINUTE,
        ..FakeLlmConfig::default()
    })
    .await
    .expect("fake");
    let finished = support::run(
        Setup {
            llm_url: fake.url.clone(),
            limits: LimitsConfig {
                default: Some(limits),
                models: HashMap::new(),
            },
            minute: MINUTE,
            retry: RetryPolicy {
                max_attempts: 12,
                base: Duration::from_millis(200),
                cap: MINUTE,
                ..RetryPolicy::default()
            },
            client_timeout: Duration::from_secs(30),
            concurrency: 16,
        },
        jobs(),
    )
    .await;
    let stats = fake.stats();
    let dead = finished.db.dead_letters().expect("dlq").len();
    (
        finished.makespan.as_secs_f64(),
        stats.quota_throttled + stats.throttled,
        dead,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs = jobs();
    let bound = quota_lower_bound(&jobs);
    let limited = scenario(ModelLimits {
        requests_per_minute: RPM,
        tokens_per_minute: TPM,
        context_tokens: 100_000,
    })
    .await;
    let unlimited = scenario(ModelLimits {
        requests_per_minute: 1_000_000,
        tokens_per_minute: 1_000_000_000,
        context_tokens: 100_000,
    })
    .await;
    let serial = PROMPTS as f64 * (ANSWER_REAL_SECONDS + SERIAL_SLEEP_REAL_SECONDS);
    let s = scale();
    println!(
        "{PROMPTS} prompts over {MODELS} models; quota per model {RPM} requests/min and {TPM} tokens/min; ~{ANSWER_REAL_SECONDS} s per answer; max_tokens {MAX_TOKENS}"
    );
    println!(
        "(run with a {} s quota minute; figures below in real minutes)\n",
        MINUTE.as_secs()
    );
    println!("| run | makespan | quota lower bound | ratio | throttles seen | dead-lettered |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, (makespan, throttles, dead)) in [
        ("podflow, per-model limiter", limited),
        ("no limiter, retry on 429 + Retry-After", unlimited),
    ] {
        println!(
            "| {name} | {:.2} min | {:.2} min | {:.3} | {throttles} | {dead} |",
            makespan * s / 60.0,
            bound * s / 60.0,
            makespan / bound
        );
    }
    println!(
        "| serial loop + fixed 2-min sleep (today's workflow, computed) | {:.1} min | {:.2} min | {:.1} | 0 | 0 |",
        serial / 60.0,
        bound * s / 60.0,
        serial / (bound * s)
    );
    println!(
        "\ntarget: ratio <= 1.05 with 0 dead-lettered -> {:.3}, {} dead-lettered",
        limited.0 / bound,
        limited.2
    );
}
