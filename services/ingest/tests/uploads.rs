//! ingest as the target of S3 upload events, over the embedded store and blob files (the
//! S3 adapter's streaming hash is tested against moto in podflow-aws).
mod support;

use podflow_core::{EpisodeStore, MessageHandler, Outcome};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{delivery, setup, upload, uploaded};

/// The recorded "Object Created" event, pointed at `key` in bucket `podflow-test`.
fn object_created(key: &str, size: u64) -> String {
    let mut event = podflow_fakes::fixtures::aws_json(
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectCreatedEvent.json",
    );
    event["detail"]["bucket"]["name"] = json!("podflow-test");
    event["detail"]["object"]["key"] = json!(key);
    event["detail"]["object"]["size"] = json!(size);
    event.to_string()
}

#[tokio::test]
async fn an_upload_becomes_one_episode_however_often_it_is_announced() {
    let s = setup();
    let audio = b"not really audio, but hashed all the same".repeat(1000);
    upload(&s, "incoming/Weekly Show 12.m4a", &audio);
    let event = object_created("incoming/Weekly Show 12.m4a", audio.len() as u64);
    let first = uploaded(s.handler.handle(&delivery(event.clone())).await);
    assert_eq!(first.len(), 1);
    let up = &first[0];
    assert_eq!(up.source.sha256, hex::encode(Sha256::digest(&audio)));
    assert_eq!(up.source.size, audio.len() as u64);
    assert_eq!(up.source.key, "incoming/Weekly Show 12.m4a");
    assert_eq!(up.original_name, "Weekly Show 12.m4a");
    assert!(
        up.episode_id.starts_with("weekly-show-12-"),
        "{}",
        up.episode_id
    );
    assert_eq!(up.duration_seconds, None);

    // EventBridge delivers at least once: the same event again is the same episode.
    let again = uploaded(s.handler.handle(&delivery(event)).await);
    assert_eq!(again[0].episode_id, up.episode_id);
    assert_eq!(again[0].correlation_id, up.correlation_id);
    assert_eq!(s.db.episodes().await.expect("episodes").len(), 1);
}

#[tokio::test]
async fn bad_uploads_are_dead_lettered_with_the_reason_and_nothing_recorded() {
    let s = setup();
    upload(&s, "incoming/notes.txt", b"hello");
    upload(&s, "incoming/empty.mp3", b"");
    for (key, size, words) in [
        ("incoming/notes.txt", 5, "unsupported file type `.txt`"),
        // The event says 10 bytes, the object has none: what is stored counts.
        ("incoming/empty.mp3", 10, "empty"),
        ("episodes/abc/audio.mp3", 10, "belong under `incoming/`"),
        ("incoming/gone.m4a", 10, "incoming/gone.m4a"),
    ] {
        let outcome = s.handler.handle(&delivery(object_created(key, size))).await;
        match outcome {
            Outcome::DeadLetter { emit, reason } if key != "incoming/gone.m4a" => {
                assert!(emit.is_empty());
                assert!(reason.contains(key) && reason.contains(words), "{reason}");
            }
            // A missing object may be a storage hiccup: retried, then the event DLQ.
            Outcome::Retry { reason, .. } if key == "incoming/gone.m4a" => {
                assert!(reason.contains(words), "{reason}");
            }
            other => panic!("{key}: {other:?}"),
        }
    }
    assert!(s.db.episodes().await.expect("episodes").is_empty());
}

#[tokio::test]
async fn non_upload_events_are_ignored_and_foreign_ones_refused() {
    let s = setup();
    let deleted = podflow_fakes::fixtures::aws_text(
        "s3-eventbridge/powertools-python_s3EventBridgeNotificationObjectDeletedEvent.json",
    );
    assert!(matches!(
        s.handler.handle(&delivery(deleted)).await,
        Outcome::Done { ref emit, .. } if emit.is_empty()
    ));
    for body in [
        "{not json",
        r#"{"source":"podflow.ingest","detail-type":"EpisodeUploaded"}"#,
    ] {
        assert!(
            matches!(
                s.handler.handle(&delivery(body.into())).await,
                Outcome::DeadLetter { .. }
            ),
            "{body}"
        );
    }
}
