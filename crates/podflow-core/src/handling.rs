//! Shared rules for turning a delivery into a typed event, and failures into outcomes, so
//! every service treats bad input and flaky infrastructure the same way.

use std::time::Duration;

use podflow_events::{EventEnvelope, PodflowEvent};
use serde::de::DeserializeOwned;

use crate::{Delivery, Outcome, StoreError};

/// Decodes a delivery's envelope and detail. A message that cannot be decoded (not JSON, a
/// wrong type, an unknown major version) goes to the dead-letter queue with the reason —
/// retrying the same bytes cannot help, and dropping it silently would lose it.
pub fn decode_delivery<E: PodflowEvent + DeserializeOwned>(
    delivery: &Delivery,
) -> Result<(EventEnvelope, E), Outcome> {
    let envelope = EventEnvelope::from_json(&delivery.body).map_err(dead_letter)?;
    let detail = envelope.decode::<E>().map_err(dead_letter)?;
    Ok((envelope, detail))
}

fn dead_letter(e: impl std::fmt::Display) -> Outcome {
    Outcome::DeadLetter {
        emit: Vec::new(),
        reason: e.to_string(),
    }
}

/// Exponential backoff with full jitter: a random delay in `[0, min(cap, base·2^attempt))`.
/// Full jitter spreads retries of many failing messages apart instead of in waves.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit_random: f64) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let ceiling = exp.min(cap.as_secs_f64());
    Duration::from_secs_f64(ceiling * unit_random.clamp(0.0, 1.0))
}

/// An infrastructure failure (storage, database): retry later, the input was fine.
pub fn retry_on_store_error(attempt: u32, error: &StoreError) -> Outcome {
    Outcome::Retry {
        delay: Duration::from_millis(500 * u64::from(attempt.min(20))),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn undecodable_messages_are_dead_lettered_with_the_reason() {
        let delivery = Delivery {
            message_id: "m".into(),
            body: "{not json".into(),
            attempt: 1,
        };
        match decode_delivery::<podflow_events::EpisodeUploaded>(&delivery) {
            Err(Outcome::DeadLetter { reason, .. }) => {
                assert!(reason.contains("not an EventBridge envelope"))
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn backoff_stays_within_the_jitter_window(attempt in 1u32..40, r in 0.0f64..=1.0) {
            let base = Duration::from_millis(250);
            let cap = Duration::from_secs(20);
            let d = backoff(attempt, base, cap, r);
            let ceiling = (base.as_secs_f64() * 2f64.powi(attempt as i32 - 1)).min(cap.as_secs_f64());
            prop_assert!(d.as_secs_f64() <= ceiling + 1e-9);
            prop_assert!(d <= cap);
        }
    }
}
