//! What every consumer does with a message it did not write, and the invariants it keeps,
//! shared by the proptest targets (`cargo test`) and the cargo-fuzz target (`fuzz/`):
//! nothing panics; an error always has a reason; a decoded event satisfies its schema, so
//! its keys and ids have the shape [`podflow_events::names`] checks; neither the decoded
//! event nor an error's text is far larger than the input.

use podflow_events::{
    EnvelopeError, EpisodeApproved, EpisodeProposed, EpisodeRejected, EpisodeSummarized,
    EpisodeTranscoded, EpisodeTranscribed, EpisodeUploaded, EventEnvelope, PodflowEvent,
    PromptCompleted, PromptFailed, PromptJob, TranscodeFailed, TranscriptionFailed,
    names::{self, NameError},
    schema::validator,
};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes as `E`: `None` when the envelope is another type (the consumer of `E` refuses
/// it too, checked by the caller), else the decoded event as JSON or the error.
pub fn decode_one<E: PodflowEvent + DeserializeOwned>(
    env: &EventEnvelope,
) -> Result<Option<Value>, EnvelopeError> {
    match env.decode::<E>() {
        Ok(event) => Ok(Some(serde_json::to_value(&event).expect("serialises"))),
        Err(EnvelopeError::WrongType { .. }) if env.detail_type != E::DETAIL_TYPE => Ok(None),
        Err(e) => Err(e),
    }
}

/// The envelope decoded as every event type; the outcomes of the types it is not are
/// `WrongType` (checked here), so at most one decodes.
pub fn decode_every_type(env: &EventEnvelope) -> Vec<(&'static str, Result<Value, EnvelopeError>)> {
    macro_rules! each {
        ($($ty:ty),* $(,)?) => {{
            let mut out = Vec::new();
            $(
                match decode_one::<$ty>(env) {
                    Ok(None) => {}
                    Ok(Some(v)) => out.push((<$ty>::DETAIL_TYPE, Ok(v))),
                    Err(e) => out.push((<$ty>::DETAIL_TYPE, Err(e))),
                }
            )*
            out
        }};
    }
    each!(
        EpisodeUploaded,
        EpisodeTranscoded,
        TranscodeFailed,
        EpisodeTranscribed,
        TranscriptionFailed,
        PromptJob,
        PromptCompleted,
        PromptFailed,
        EpisodeSummarized,
        EpisodeProposed,
        EpisodeApproved,
        EpisodeRejected,
    )
}

/// Every string under a field named `name`, anywhere in `value`.
pub fn fields<'a>(value: &'a Value, name: &str, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == name
                    && let Some(s) = v.as_str()
                {
                    out.push(s);
                }
                fields(v, name, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| fields(v, name, out)),
        _ => {}
    }
}

/// The checks on one envelope text, whatever it holds.
pub fn check_text(text: &str) -> Result<(), TestCaseError> {
    let budget = 8 * text.len() + 8192;
    let env = match EventEnvelope::from_json(text) {
        Ok(env) => env,
        Err(e) => {
            let reason = e.to_string();
            prop_assert!(!reason.trim().is_empty());
            prop_assert!(reason.len() <= budget, "{} bytes of error", reason.len());
            return Ok(());
        }
    };
    let outcomes = decode_every_type(&env);
    prop_assert!(outcomes.len() <= 1, "decoded as several types");
    for (detail_type, outcome) in outcomes {
        match outcome {
            Ok(event) => {
                let schema = validator(detail_type).expect("validator");
                prop_assert!(schema.is_valid(&event), "{detail_type} decoded off-schema");
                prop_assert!(event.to_string().len() <= budget);
                let mut keys = Vec::new();
                fields(&event, "key", &mut keys);
                fields(&event, "output_key", &mut keys);
                for key in keys {
                    // JSON Schema counts characters: only S3's byte limit may differ.
                    prop_assert!(
                        matches!(
                            names::check_key(key),
                            Ok(()) | Err(NameError::TooLong { .. })
                        ),
                        "{detail_type} passed key {key:?}"
                    );
                }
                let mut ids = Vec::new();
                fields(&event, "episode_id", &mut ids);
                for id in ids {
                    prop_assert!(names::check_episode_id(id).is_ok(), "{id:?}");
                }
                let mut prompts = Vec::new();
                fields(&event, "prompt_id", &mut prompts);
                for id in prompts {
                    prop_assert!(names::check_prompt_id(id).is_ok(), "{id:?}");
                }
            }
            Err(e) => {
                let reason = e.to_string();
                prop_assert!(!reason.trim().is_empty(), "{detail_type}: empty reason");
                prop_assert!(reason.len() <= budget, "{} bytes of error", reason.len());
            }
        }
    }
    Ok(())
}
