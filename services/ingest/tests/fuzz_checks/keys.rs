//! ingest's invariants on object keys from S3 events, shared by the proptest targets
//! (`cargo test`) and the cargo-fuzz target (`fuzz/`): nothing panics; the notification
//! decoder never makes a key longer; an event's uploads are read or the event is refused
//! with a reason; a key ingest's checks pass is one the events' schemas accept.

use ingest::upload::{UploadEvent, decode_notification_key, uploads_in};
use podflow_events::names;
use proptest::prelude::*;
use serde_json::Value;

/// Whatever a notification carries decodes to no more bytes (`+` and `%XX` each decode
/// to no more bytes than they take).
pub fn check_carried(carried: &str) -> Result<(), TestCaseError> {
    if let Some(decoded) = decode_notification_key(carried) {
        prop_assert!(decoded.len() <= carried.len());
    }
    Ok(())
}

/// Any event: its uploads are read (the one key `uploaded`, when given) and checked, or it
/// is refused with a reason.
pub fn check_event(event: &Value, uploaded: Option<&str>) -> Result<(), TestCaseError> {
    match uploads_in(event) {
        Ok(UploadEvent::Uploads(ups)) => {
            if let Some(uploaded) = uploaded {
                prop_assert_eq!(ups.len(), 1);
                prop_assert_eq!(ups[0].key.as_str(), uploaded);
            }
            for up in &ups {
                // The checks refuse with a reason or pass a key the schemas accept.
                match ingest::upload::check(up) {
                    Ok(()) => prop_assert!(names::check_key(&up.key).is_ok()),
                    Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
                }
            }
        }
        Ok(UploadEvent::Other(what)) => {
            prop_assert!(uploaded.is_none(), "{what}");
            prop_assert!(!what.trim().is_empty());
        }
        Err(reason) => prop_assert!(!reason.is_empty()),
    }
    Ok(())
}
