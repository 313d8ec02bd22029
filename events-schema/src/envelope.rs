//! EventBridge's envelope, and decoding a typed detail out of it.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::{SUPPORTED_MAJOR, events::PodflowEvent};

/// The envelope EventBridge delivers to targets (and that the local bus stores verbatim).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    #[serde(default = "default_version")]
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: String,
    pub time: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: serde_json::Value,
}

fn default_version() -> String {
    "0".to_owned()
}

/// Why an envelope could not be turned into the event a consumer expects.
///
/// All of these are permanent: retrying the same bytes cannot help, so callers send the
/// message to a dead-letter queue with this text rather than retrying.
#[derive(Debug, Error)]
pub enum EnvelopeError {
    #[error("event {id}: detail-type `{found}` is not `{expected}`")]
    WrongType {
        id: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "event {id} ({detail_type}): schema_version `{found}` is not supported; this build understands {major}.x — upgrade podflow or route the event to a consumer of that version"
    )]
    UnsupportedVersion {
        id: String,
        detail_type: String,
        found: String,
        major: u32,
    },
    #[error("event {id} ({detail_type}): detail is invalid: {source}")]
    InvalidDetail {
        id: String,
        detail_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("event {id} ({detail_type}) breaks its schema: {errors}")]
    SchemaViolation {
        id: String,
        detail_type: String,
        errors: String,
    },
    #[error("not an EventBridge envelope: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
}

impl EventEnvelope {
    /// Wraps a detail in a fresh envelope, as PutEvents would.
    pub fn wrap<E: PodflowEvent>(detail: &E) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let time = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            version: default_version(),
            id: uuid::Uuid::new_v4().to_string(),
            detail_type: E::DETAIL_TYPE.to_owned(),
            source: E::SOURCE.to_owned(),
            account: String::new(),
            time,
            region: String::new(),
            resources: Vec::new(),
            // Serialising our own plain structs cannot fail.
            detail: serde_json::to_value(detail).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Parses an envelope from raw JSON text (an SQS body, a bus row).
    pub fn from_json(text: &str) -> Result<Self, EnvelopeError> {
        serde_json::from_str(text).map_err(EnvelopeError::NotAnEnvelope)
    }

    /// The episode this event is about, if the detail names one in the shape of an episode
    /// id (`crate::names::EPISODE_ID_PATTERN`): code that reads it before decoding (to end
    /// a step, to index the bus) never takes a hostile string for an episode.
    pub fn episode_id(&self) -> Option<&str> {
        self.detail
            .get("episode_id")
            .and_then(|v| v.as_str())
            .filter(|id| crate::names::check_episode_id(id).is_ok())
    }

    /// Decodes the detail as `E`, checking the detail-type, the schema's major version and
    /// the schema itself (so a consumer accepts exactly what the published schema allows).
    /// Unknown fields are ignored (minor versions may add optional fields).
    pub fn decode<E: PodflowEvent + DeserializeOwned>(&self) -> Result<E, EnvelopeError> {
        if self.detail_type != E::DETAIL_TYPE {
            return Err(EnvelopeError::WrongType {
                id: self.id.clone(),
                expected: E::DETAIL_TYPE,
                found: self.detail_type.clone(),
            });
        }
        check_schema_version(self)?;
        if let Some(validator) = crate::schema::validator(E::DETAIL_TYPE) {
            let errors: Vec<String> = validator
                .iter_errors(&self.detail)
                .map(|e| format!("{} at `{}`", e, e.instance_path))
                .collect();
            if !errors.is_empty() {
                return Err(EnvelopeError::SchemaViolation {
                    id: self.id.clone(),
                    detail_type: self.detail_type.clone(),
                    errors: errors.join("; "),
                });
            }
        }
        serde_json::from_value(self.detail.clone()).map_err(|source| EnvelopeError::InvalidDetail {
            id: self.id.clone(),
            detail_type: self.detail_type.clone(),
            source,
        })
    }
}

fn check_schema_version(env: &EventEnvelope) -> Result<(), EnvelopeError> {
    let found = env
        .detail
        .get("schema_version")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let major = found.split('.').next().and_then(|m| m.parse::<u32>().ok());
    if major == Some(SUPPORTED_MAJOR) {
        Ok(())
    } else {
        Err(EnvelopeError::UnsupportedVersion {
            id: env.id.clone(),
            detail_type: env.detail_type.clone(),
            found: found.to_owned(),
            major: SUPPORTED_MAJOR,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{BlobRef, EpisodeUploaded};

    fn uploaded() -> EpisodeUploaded {
        EpisodeUploaded {
            schema_version: crate::SCHEMA_VERSION.into(),
            episode_id: "ep-1".into(),
            correlation_id: "c-1".into(),
            source: BlobRef {
                bucket: None,
                key: "incoming/a.m4a".into(),
                size: 10,
                sha256: "0".repeat(64),
            },
            original_name: "a.m4a".into(),
            duration_seconds: Some(1.5),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let env = EventEnvelope::wrap(&uploaded());
        let text = serde_json::to_string(&env).expect("serialise");
        let back = EventEnvelope::from_json(&text).expect("parse");
        assert_eq!(back.detail_type, "EpisodeUploaded");
        assert_eq!(
            back.decode::<EpisodeUploaded>().expect("decode"),
            uploaded()
        );
    }

    #[test]
    fn rejects_unknown_major_with_a_clear_error() {
        let mut env = EventEnvelope::wrap(&uploaded());
        env.detail["schema_version"] = "2.0".into();
        let err = env
            .decode::<EpisodeUploaded>()
            .expect_err("must reject 2.0");
        assert!(
            err.to_string()
                .contains("schema_version `2.0` is not supported"),
            "{err}"
        );
    }

    #[test]
    fn accepts_minor_bumps_and_unknown_fields() {
        let mut env = EventEnvelope::wrap(&uploaded());
        env.detail["schema_version"] = "1.7".into();
        env.detail["added_in_1_7"] = serde_json::json!({"anything": true});
        assert!(env.decode::<EpisodeUploaded>().is_ok());
    }

    #[test]
    fn a_malformed_episode_id_names_no_episode() {
        let mut env = EventEnvelope::wrap(&uploaded());
        assert_eq!(env.episode_id(), Some("ep-1"));
        for hostile in ["../ep-1", "ep 1", "", "ep-1\n"] {
            env.detail["episode_id"] = hostile.into();
            assert_eq!(env.episode_id(), None, "{hostile}");
        }
    }

    #[test]
    fn rejects_wrong_detail_type() {
        let mut env = EventEnvelope::wrap(&uploaded());
        env.detail_type = "EpisodeTranscoded".into();
        assert!(matches!(
            env.decode::<EpisodeUploaded>(),
            Err(EnvelopeError::WrongType { .. })
        ));
    }
}
