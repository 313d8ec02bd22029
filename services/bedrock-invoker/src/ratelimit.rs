//! Per-model rate limits: requests per minute and tokens per minute, where a request's
//! tokens are its input estimate plus `max_tokens` (providers reserve the whole output
//! budget against the quota when the call starts).
//!
//! Each quota is a token bucket (GCRA, via `governor`): capacity = the per-minute quota,
//! refilled continuously at quota/minute. Waiting for our own bucket instead of sending and
//! being throttled keeps every model at its quota without a single 429 — and each model has
//! its own buckets, so a slow or saturated model never holds back another.
//!
//! When the provider throttles anyway (a quota shared with other clients, or lower than
//! configured), the model's sending rate adapts the way the AWS SDKs' adaptive retry mode
//! does: each throttle cuts it to 70% of what it was, each answer gives back 5% of the
//! quota, and it never drops below a tenth of the quota. Waits can be bounded by a
//! deadline (a Lambda invocation's): a wait that would pass it is refused with its length,
//! so the caller can return the work with that delay instead of sleeping.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter, clock::Clock};
use serde::Deserialize;

/// Limits for one model.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLimits {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
    /// The model's context window (input + output tokens).
    #[serde(default = "default_context")]
    pub context_tokens: u32,
}

fn default_context() -> u32 {
    8192
}

impl Default for ModelLimits {
    /// Conservative: below the smallest default on-demand quotas we know of.
    fn default() -> Self {
        Self {
            requests_per_minute: 20,
            tokens_per_minute: 40_000,
            context_tokens: default_context(),
        }
    }
}

/// The limits file (`PODFLOW_MODEL_LIMITS`):
/// ```toml
/// [default]
/// requests_per_minute = 20
/// tokens_per_minute = 40000
/// context_tokens = 8192
///
/// [models."anthropic.claude-3-haiku-20240307-v1:0"]
/// requests_per_minute = 200
/// tokens_per_minute = 400000
/// context_tokens = 200000
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default)]
    pub default: Option<ModelLimits>,
    #[serde(default)]
    pub models: HashMap<String, ModelLimits>,
}

impl LimitsConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let config: LimitsConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        let named = config.models.iter().map(|(m, l)| (m.as_str(), l));
        for (model, l) in named.chain(config.default.iter().map(|l| ("default", l))) {
            if l.requests_per_minute == 0 || l.tokens_per_minute == 0 || l.context_tokens == 0 {
                return Err(format!(
                    "{}: limits for `{model}` must all be above zero",
                    path.display()
                ));
            }
        }
        Ok(config)
    }

    /// The file's limits, or conservative defaults when no file is configured.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, String> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }

    /// Each of `instances` processes draining one queue gets this share of every per-minute
    /// limit (at least 1), so together they stay under the account's quota. On Lambda the
    /// number is the event source's maximum concurrency.
    pub fn shared_by(mut self, instances: u32) -> Self {
        let instances = instances.max(1);
        let share = |l: &mut ModelLimits| {
            l.requests_per_minute = (l.requests_per_minute / instances).max(1);
            l.tokens_per_minute = (l.tokens_per_minute / instances).max(1);
        };
        let mut default = self.default.unwrap_or_default();
        share(&mut default);
        self.default = Some(default);
        self.models.values_mut().for_each(share);
        self
    }

    pub fn for_model(&self, model: &str) -> ModelLimits {
        self.models
            .get(model)
            .copied()
            .or(self.default)
            .unwrap_or_default()
    }
}

/// A rough, deliberately generous token estimate (about four characters a token for
/// English): under-estimating would send requests the provider then throttles.
pub fn estimate_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4)
}

struct Buckets {
    requests: DefaultDirectRateLimiter,
    tokens: DefaultDirectRateLimiter,
    token_capacity: u32,
    requests_per_minute: u32,
    pace: Mutex<Pace>,
}

/// The adaptive part of a model's rate: a share of its request quota, and the earliest
/// time the next request may go while that share is below 1.
struct Pace {
    share: f64,
    next_send: Instant,
}

/// A throttle cuts the sending rate to this share of what it was (the AWS SDKs' beta).
const THROTTLE_CUT: f64 = 0.7;
/// Each answer gives back this share of the quota.
const RECOVERY_STEP: f64 = 0.05;
/// The rate never drops below this share of the quota.
const FLOOR_SHARE: f64 = 0.1;

/// Sleeps `wait`, or refuses with its length when it would end past `deadline`.
async fn wait_within(wait: Duration, deadline: Option<Instant>) -> Result<(), Duration> {
    if deadline.is_some_and(|d| Instant::now() + wait > d) {
        return Err(wait);
    }
    tokio::time::sleep(wait).await;
    Ok(())
}

/// Waits until a model's quotas allow a request.
pub struct Throttle {
    config: LimitsConfig,
    /// The length of a quota "minute" (shorter in benchmarks to keep them quick).
    minute: Duration,
    buckets: Mutex<HashMap<String, Arc<Buckets>>>,
}

fn quota(per_minute: u32, minute: Duration) -> Quota {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    // 1% slower refill than the quota: clocks of two machines never agree exactly.
    let period = minute.mul_f64(1.01) / n.get();
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(n))
        .allow_burst(n)
}

impl Throttle {
    pub fn new(config: LimitsConfig, minute: Duration) -> Self {
        Self {
            config,
            minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self, model: &str) -> ModelLimits {
        self.config.for_model(model)
    }

    fn buckets(&self, model: &str) -> Arc<Buckets> {
        let mut all = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(model.to_owned())
            .or_insert_with(|| {
                let l = self.config.for_model(model);
                Arc::new(Buckets {
                    requests: RateLimiter::direct(quota(l.requests_per_minute, self.minute)),
                    tokens: RateLimiter::direct(quota(l.tokens_per_minute, self.minute)),
                    token_capacity: l.tokens_per_minute,
                    requests_per_minute: l.requests_per_minute.max(1),
                    pace: Mutex::new(Pace {
                        share: 1.0,
                        next_send: Instant::now(),
                    }),
                })
            })
            .clone()
    }

    /// Waits for one request of `tokens` (input + max output) to `model`; returns how long
    /// it waited. A request larger than the whole per-minute token quota waits for a full
    /// bucket and then goes (the provider decides; we never refuse it outright).
    pub async fn acquire(&self, model: &str, tokens: u32) -> Duration {
        self.acquire_before(model, tokens, None)
            .await
            .unwrap_or_default()
    }

    /// [`Throttle::acquire`], but a wait that would end past `deadline` is refused: `Err`
    /// carries how long it would have been (at least).
    pub async fn acquire_before(
        &self,
        model: &str,
        tokens: u32,
        deadline: Option<Instant>,
    ) -> Result<Duration, Duration> {
        let start = Instant::now();
        let b = self.buckets(model);
        let n =
            NonZeroU32::new(tokens.clamp(1, b.token_capacity.max(1))).unwrap_or(NonZeroU32::MIN);
        // Capacity is checked above, so `check_n` cannot report InsufficientCapacity.
        while let Ok(Err(not_until)) = b.tokens.check_n(n) {
            wait_within(not_until.wait_time_from(b.tokens.clock().now()), deadline).await?;
        }
        while let Err(not_until) = b.requests.check() {
            wait_within(not_until.wait_time_from(b.requests.clock().now()), deadline).await?;
        }
        let send_at = {
            let mut pace = b.pace.lock().unwrap_or_else(|p| p.into_inner());
            if pace.share >= 1.0 {
                None
            } else {
                let now = Instant::now();
                let at = pace.next_send.max(now);
                if deadline.is_some_and(|d| at > d) {
                    return Err(at - now);
                }
                let per_minute = f64::from(b.requests_per_minute) * pace.share;
                pace.next_send = at + self.minute.div_f64(per_minute.max(f64::MIN_POSITIVE));
                Some(at)
            }
        };
        if let Some(at) = send_at {
            tokio::time::sleep_until(at.into()).await;
        }
        Ok(start.elapsed())
    }

    /// The provider throttled a request to `model`: slow down.
    pub fn throttled(&self, model: &str) {
        let b = self.buckets(model);
        let mut pace = b.pace.lock().unwrap_or_else(|p| p.into_inner());
        pace.share = (pace.share * THROTTLE_CUT).max(FLOOR_SHARE);
        tracing::info!(
            model,
            share = pace.share,
            "throttled by the provider; sending slower"
        );
    }

    /// The provider answered a request to `model`: speed back up a little.
    pub fn answered(&self, model: &str) {
        let b = self.buckets(model);
        let mut pace = b.pace.lock().unwrap_or_else(|p| p.into_inner());
        pace.share = (pace.share + RECOVERY_STEP).min(1.0);
    }

    /// The share of its quota `model` is sent at now (1.0 until it is throttled).
    pub fn share(&self, model: &str) -> f64 {
        let b = self.buckets(model);
        let pace = b.pace.lock().unwrap_or_else(|p| p.into_inner());
        pace.share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_share_each_quota() {
        let mut config = LimitsConfig::default();
        config.models.insert(
            "haiku".into(),
            ModelLimits {
                requests_per_minute: 50,
                tokens_per_minute: 100_000,
                context_tokens: 200_000,
            },
        );
        config.models.insert(
            "tiny".into(),
            ModelLimits {
                requests_per_minute: 1,
                tokens_per_minute: 3,
                context_tokens: 8,
            },
        );
        let shared = config.shared_by(2);
        let haiku = shared.for_model("haiku");
        assert_eq!(
            (
                haiku.requests_per_minute,
                haiku.tokens_per_minute,
                haiku.context_tokens
            ),
            (25, 50_000, 200_000)
        );
        let tiny = shared.for_model("tiny");
        assert_eq!(
            (tiny.requests_per_minute, tiny.tokens_per_minute),
            (1, 1),
            "never zero"
        );
        let other = shared.for_model("unknown");
        assert_eq!(
            (other.requests_per_minute, other.tokens_per_minute),
            (10, 20_000),
            "the default too"
        );
        assert_eq!(
            LimitsConfig::default().shared_by(0),
            LimitsConfig::default().shared_by(1)
        );
    }

    #[test]
    fn limits_file_sets_defaults_and_per_model_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("limits.toml");
        std::fs::write(&path, "[default]\nrequests_per_minute = 5\ntokens_per_minute = 100\n[models.\"m\"]\nrequests_per_minute = 7\ntokens_per_minute = 9\ncontext_tokens = 4\n").expect("w");
        let c = LimitsConfig::load(&path).expect("loads");
        assert_eq!(
            c.for_model("m"),
            ModelLimits {
                requests_per_minute: 7,
                tokens_per_minute: 9,
                context_tokens: 4
            }
        );
        assert_eq!(c.for_model("other").requests_per_minute, 5);
        assert_eq!(c.for_model("other").context_tokens, 8192);
        std::fs::write(
            &path,
            "[default]\nrequests_per_minute = 0\ntokens_per_minute = 1\n",
        )
        .expect("w");
        assert!(
            LimitsConfig::load(&path)
                .expect_err("zero")
                .contains("above zero")
        );
    }

    #[tokio::test]
    async fn bursts_up_to_the_quota_then_paces_at_the_refill_rate() {
        // A "minute" of 600 ms: 5 requests a minute → burst of 5, then one per ~121 ms.
        let mut config = LimitsConfig::default();
        config.models.insert(
            "m".into(),
            ModelLimits {
                requests_per_minute: 5,
                tokens_per_minute: 1_000_000,
                context_tokens: 8192,
            },
        );
        let t = Throttle::new(config, Duration::from_millis(600));
        let start = Instant::now();
        for _ in 0..8 {
            t.acquire("m", 10).await;
        }
        // Five go at once; the other three need three refills of ~121 ms each.
        let total = start.elapsed();
        assert!(
            total >= Duration::from_millis(360),
            "8 requests took only {total:?}"
        );
    }

    #[tokio::test]
    async fn tokens_count_input_plus_max_output_and_models_are_independent() {
        let mut config = LimitsConfig::default();
        config.models.insert(
            "small".into(),
            ModelLimits {
                requests_per_minute: 1000,
                tokens_per_minute: 100,
                context_tokens: 8192,
            },
        );
        let t = Throttle::new(config, Duration::from_millis(1000));
        t.acquire("small", 100).await; // empties the token bucket
        let other = Instant::now();
        t.acquire("default-model", 100).await;
        // Held back it would wait a whole minute (1 s); free, it does not wait at all.
        assert!(
            other.elapsed() < Duration::from_millis(500),
            "another model is not held back"
        );
        let waited = t.acquire("small", 50).await;
        assert!(
            waited >= Duration::from_millis(400),
            "half a bucket needs half a minute: {waited:?}"
        );
    }

    #[tokio::test]
    async fn throttles_slow_a_model_down_and_answers_bring_it_back() {
        // 600 requests a "minute" of 600 ms: one per ms at full rate.
        let config = LimitsConfig {
            default: Some(ModelLimits {
                requests_per_minute: 600,
                tokens_per_minute: 100_000_000,
                context_tokens: 8192,
            }),
            ..LimitsConfig::default()
        };
        let t = Throttle::new(config, Duration::from_millis(600));
        let timed = |n: usize| {
            let t = &t;
            async move {
                let start = Instant::now();
                for _ in 0..n {
                    t.acquire("m", 1).await;
                }
                start.elapsed()
            }
        };
        let full = timed(20).await;
        for _ in 0..10 {
            t.throttled("m");
        }
        assert!(
            (t.share("m") - FLOOR_SHARE).abs() < 1e-9,
            "never below the floor"
        );
        // At a tenth of the quota, 20 requests are spaced 10 ms apart.
        let slowed = timed(20).await;
        assert!(
            slowed >= Duration::from_millis(180) && slowed > full * 4,
            "full {full:?}, slowed {slowed:?}"
        );
        for _ in 0..18 {
            t.answered("m");
        }
        assert!((t.share("m") - 1.0).abs() < 1e-9, "{}", t.share("m"));
        // Another model was never slowed.
        assert!((t.share("other") - 1.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_is_refused_with_its_length() {
        let config = LimitsConfig {
            default: Some(ModelLimits {
                requests_per_minute: 1,
                tokens_per_minute: 1_000_000,
                context_tokens: 8192,
            }),
            ..LimitsConfig::default()
        };
        let t = Throttle::new(config, Duration::from_secs(60));
        let soon = Some(Instant::now() + Duration::from_secs(2));
        assert!(
            t.acquire_before("m", 10, soon).await.is_ok(),
            "the first goes"
        );
        let started = Instant::now();
        let refused = t
            .acquire_before("m", 10, soon)
            .await
            .expect_err("the next would wait a minute");
        assert!(refused > Duration::from_secs(50), "{refused:?}");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "it did not sleep"
        );
    }

    #[test]
    fn estimate_rounds_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
