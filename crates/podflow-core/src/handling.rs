//! Shared rules for turning a delivery into a typed event, and failures into outcomes, so
//! every service treats bad input and flaky infrastructure the same way.

use std::time::Duration;

use podflow_events::{BlobRef, EpisodeUploaded, EventEnvelope, PodflowEvent};
use serde::de::DeserializeOwned;

use crate::{BlobStore, Delivery, EpisodeStore, ErrorKind, Outcome, PortError, StepStatus};

/// Why a pipeline step could not produce its result.
#[derive(Debug)]
pub enum StepFailure {
    /// The input or the setup is at fault; retrying the same message will not help. The
    /// text is for the producer or operator.
    Final(String),
    /// Storage failed; retry later.
    Store(PortError),
}

impl From<PortError> for StepFailure {
    fn from(e: PortError) -> Self {
        StepFailure::Store(e)
    }
}

/// How a step ended.
#[derive(Debug)]
pub enum StepEnd<'a> {
    /// Produced these named artifacts; `note` says e.g. that earlier work was reused.
    Done {
        artifacts: Vec<(&'a str, &'a BlobRef)>,
        note: Option<&'a str>,
    },
    /// Gave up for this reason.
    Failed { reason: &'a str },
}

/// Ends a step: on success records its artifacts and marks it done; on a final failure
/// marks it failed with the reason. Either way the given event is published; a storage
/// error instead retries the message.
pub async fn end_step(
    store: &dyn EpisodeStore,
    episode_id: &str,
    step: &str,
    end: StepEnd<'_>,
    event: EventEnvelope,
    attempt: u32,
) -> Outcome {
    let recorded = async {
        match end {
            StepEnd::Done { artifacts, note } => {
                for (name, blob) in artifacts {
                    store.put_artifact(episode_id, name, blob).await?;
                }
                store
                    .step_finished(episode_id, step, StepStatus::Done, note)
                    .await
            }
            StepEnd::Failed { reason } => {
                store
                    .step_finished(episode_id, step, StepStatus::Failed, Some(reason))
                    .await
            }
        }
    };
    match recorded.await {
        Ok(()) => Outcome::done(vec![event]),
        Err(e) => retry_on_store_error(attempt, &e),
    }
}

/// The episodes waiting for one service job (a Transcribe or MediaConvert job shared by
/// every episode of the same audio), kept in the work store under `key`.
pub async fn waiting_episodes(
    store: &dyn EpisodeStore,
    key: &str,
) -> Result<Vec<EpisodeUploaded>, PortError> {
    Ok(store
        .work_result(key)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Adds `up` to the episodes waiting under `key` (once, however often it is delivered).
pub async fn wait_for_job(
    store: &dyn EpisodeStore,
    key: &str,
    up: &EpisodeUploaded,
) -> Result<(), PortError> {
    let mut waiting = waiting_episodes(store, key).await?;
    if waiting.iter().any(|w| w.episode_id == up.episode_id) {
        return Ok(());
    }
    waiting.push(up.clone());
    let value =
        serde_json::to_value(&waiting).map_err(|e| PortError::storage("waiting episodes", e))?;
    store.record_work(key, &up.episode_id, &value).await
}

/// One outcome for several episodes finished by one delivery: all their events when each
/// is done, else the first that is not (a retry redoes them all; each is idempotent).
pub fn merge_outcomes(outcomes: Vec<Outcome>) -> Outcome {
    let mut emit = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Done { emit: e, .. } => emit.extend(e),
            other => return other,
        }
    }
    Outcome::done(emit)
}

/// Gives up on a delivery about one episode's `step` (see `MessageHandler::give_up`): the
/// step fails with `reason`, unless it has ended already. For an `EpisodeUploaded`
/// delivery, `announce` makes the event that says so (`TranscodeFailed`, say). A message
/// that names no episode is only dead-lettered.
pub async fn give_up_step(
    store: &dyn EpisodeStore,
    delivery: &Delivery,
    step: &str,
    reason: &str,
    announce: Option<fn(&EpisodeUploaded, &str) -> EventEnvelope>,
) -> Outcome {
    let dead_letter = |emit: Vec<EventEnvelope>| Outcome::DeadLetter {
        emit,
        reason: reason.to_owned(),
    };
    let Ok(envelope) = EventEnvelope::from_json(&delivery.body) else {
        return dead_letter(Vec::new());
    };
    let Some(episode_id) = envelope.episode_id() else {
        return dead_letter(Vec::new());
    };
    let ended = async {
        let steps = store.steps(episode_id).await?;
        if steps
            .iter()
            .any(|s| s.step == step && s.status != StepStatus::Running)
        {
            return Ok(false);
        }
        store
            .step_finished(episode_id, step, StepStatus::Failed, Some(reason))
            .await?;
        Ok::<_, PortError>(true)
    };
    match ended.await {
        Ok(true) => {
            let upload = envelope.decode::<EpisodeUploaded>().ok();
            let failed = announce.zip(upload).map(|(make, up)| make(&up, reason));
            dead_letter(failed.into_iter().collect())
        }
        Ok(false) => dead_letter(Vec::new()),
        Err(e) => retry_on_store_error(delivery.attempt, &e),
    }
}

/// Gives up on a job's state change: each episode waiting under `key` for that job fails
/// its `step` (unless it has ended) with its announcement, as [`give_up_step`] does for one
/// upload, and the change is dead-lettered. Without this, an episode whose job's end never
/// got through would wait for ever.
pub async fn give_up_waiting(
    store: &dyn EpisodeStore,
    delivery: &Delivery,
    key: &str,
    step: &str,
    reason: &str,
    announce: fn(&EpisodeUploaded, &str) -> EventEnvelope,
) -> Outcome {
    let waiting = match waiting_episodes(store, key).await {
        Ok(waiting) => waiting,
        Err(e) => return retry_on_store_error(delivery.attempt, &e),
    };
    let mut emit = Vec::new();
    for up in &waiting {
        let Ok(body) = serde_json::to_string(&EventEnvelope::wrap(up)) else {
            continue;
        };
        let as_upload = Delivery {
            body,
            ..delivery.clone()
        };
        match give_up_step(store, &as_upload, step, reason, Some(announce)).await {
            Outcome::DeadLetter { emit: failed, .. } => emit.extend(failed),
            retry => return retry,
        }
    }
    Outcome::DeadLetter {
        emit,
        reason: reason.to_owned(),
    }
}

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

/// A service call's failure as what the step does next: a throttle or a transient failure
/// retries (after the wait the service asked for, else backoff from `base` up to `cap`);
/// bad input or a setup problem ends the step with the reason.
pub fn retry_or_fail(
    error: PortError,
    attempt: u32,
    base: Duration,
    cap: Duration,
) -> Result<Outcome, StepFailure> {
    if error.is_retryable() {
        Ok(Outcome::Retry {
            delay: error
                .retry_after()
                .unwrap_or_else(|| backoff(attempt, base, cap, 0.5)),
            reason: error.report(),
        })
    } else {
        Err(StepFailure::Final(error.report()))
    }
}

/// Whether a stored blob still holds the bytes recorded for it. A cached result whose file
/// is missing, cut short or changed (a power cut, a full disk, a hand edit) must not be
/// served; its work is done again. A store that cannot answer is an error (retry).
pub async fn intact(blobs: &dyn BlobStore, blob: &BlobRef) -> Result<bool, PortError> {
    match blobs.digest(&blob.key).await {
        Ok(found) => Ok(found.size == blob.size && found.sha256 == blob.sha256),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// An infrastructure failure (storage, database): retry later, the input was fine.
pub fn retry_on_store_error(attempt: u32, error: &PortError) -> Outcome {
    Outcome::Retry {
        delay: Duration::from_millis(500 * u64::from(attempt.min(20))),
        reason: error.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_outcomes_carry_every_event_or_the_first_retry() {
        let event = || {
            EventEnvelope::wrap(&podflow_events::TranscodeFailed {
                schema_version: "1.0".into(),
                episode_id: "ep".into(),
                correlation_id: "c".into(),
                reason: "r".into(),
            })
        };
        match merge_outcomes(vec![
            Outcome::done(vec![event()]),
            Outcome::done(vec![event()]),
        ]) {
            Outcome::Done { emit, .. } => assert_eq!(emit.len(), 2),
            other => panic!("{other:?}"),
        }
        let retry = Outcome::Retry {
            delay: Duration::from_secs(1),
            reason: "store down".into(),
        };
        assert!(matches!(
            merge_outcomes(vec![Outcome::done(vec![event()]), retry]),
            Outcome::Retry { .. }
        ));
    }
    use proptest::prelude::*;

    #[test]
    fn undecodable_messages_are_dead_lettered_with_the_reason() {
        let delivery = Delivery {
            message_id: "m".into(),
            body: "{not json".into(),
            attempt: 1,
            deadline: None,
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
