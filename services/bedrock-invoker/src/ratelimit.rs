//! Per-model rate limits: requests per minute and tokens per minute, where a request's
//! tokens are its input estimate plus `max_tokens` (providers reserve the whole output
//! budget against the quota when the call starts).
//!
//! Each quota is a token bucket (GCRA, via `governor`): capacity = the per-minute quota,
//! refilled continuously at quota/minute. Waiting for our own bucket instead of sending and
//! being throttled keeps every model at its quota without a single 429 — and each model has
//! its own buckets, so a slow or saturated model never holds back another.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
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
                })
            })
            .clone()
    }

    /// Waits for one request of `tokens` (input + max output) to `model`; returns how long
    /// it waited. A request larger than the whole per-minute token quota waits for a full
    /// bucket and then goes (the provider decides; we never refuse it outright).
    pub async fn acquire(&self, model: &str, tokens: u32) -> Duration {
        let start = Instant::now();
        let b = self.buckets(model);
        let n =
            NonZeroU32::new(tokens.clamp(1, b.token_capacity.max(1))).unwrap_or(NonZeroU32::MIN);
        // Capacity is checked above, so these cannot report InsufficientCapacity.
        let _ = b.tokens.until_n_ready(n).await;
        b.requests.until_ready().await;
        start.elapsed()
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

    #[test]
    fn estimate_rounds_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
