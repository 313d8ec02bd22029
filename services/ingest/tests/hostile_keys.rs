//! Object keys at S3's limits and past them. A key of 1024 bytes of UTF-8 (the most S3
//! allows) is ingested and announced as it is, from a notification (percent-encoded, so
//! three times longer on the wire) and from EventBridge; a longer key, or one with a control
//! character or a `..` segment, is dead-lettered with a one-line reason that quotes it
//! escaped. The notification key decoder is fuzzed: it never panics, never grows the key,
//! and undoes S3's encoding of any key.

mod support;

#[path = "fuzz_checks/keys.rs"]
mod checks;

use checks::{check_carried, check_event};
use ingest::upload::{UploadEvent, decode_notification_key, uploads_in};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use podflow_core::{MessageHandler, Outcome};
use podflow_events::{EpisodeUploaded, names};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::{delivery, setup, upload, uploaded};

/// A key of exactly `bytes` bytes under `incoming/`: folders of 100 `é` (200 bytes, under
/// the 255 a file name may have here), ending in a file name padded to fit.
fn long_key(bytes: usize) -> String {
    let mut key = "incoming/".to_owned();
    let tail = "episode.m4a";
    while bytes - key.len() - tail.len() > 201 {
        key.push_str(&"é".repeat(100));
        key.push('/');
    }
    let pad = bytes - key.len() - tail.len();
    key.push_str(&"é".repeat(pad / 2));
    key.push_str(&"x".repeat(pad % 2));
    key.push_str(tail);
    assert_eq!(key.len(), bytes);
    key
}

/// S3's notification encoding: form encoding of the key's UTF-8.
fn s3_encoded(key: &str) -> String {
    utf8_percent_encode(key, NON_ALPHANUMERIC)
        .to_string()
        .replace("%20", "+")
}

fn notification(key: &str, size: usize) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "podflow-episodes"},
            "object": {"key": s3_encoded(key), "size": size}
        }
    }]})
}

fn object_created(key: &str, size: usize) -> Value {
    json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2026-01-01T00:00:00Z",
        "detail": {"bucket": {"name": "podflow-episodes"}, "object": {"key": key, "size": size}}
    })
}

#[tokio::test]
async fn a_1024_byte_key_is_ingested_as_uploaded() {
    let s = setup();
    let key = long_key(1024);
    let audio = b"not really audio".repeat(64);
    upload(&s, &key, &audio);
    for (form, event) in [
        ("notification", notification(&key, audio.len())),
        ("eventbridge", object_created(&key, audio.len())),
    ] {
        // Decoding checks the event against its schema, as every consumer does.
        let ups = uploaded(s.handler.handle(&delivery(event.to_string())).await);
        assert_eq!(ups.len(), 1, "{form}");
        let up = &ups[0];
        assert_eq!(up.source.key, key, "{form}");
        assert_eq!(up.source.key.len(), 1024);
        assert!(up.original_name.ends_with("episode.m4a"));
        assert!(
            names::check_episode_id(&up.episode_id).is_ok(),
            "{}",
            up.episode_id
        );
    }
}

#[tokio::test]
async fn keys_past_the_limits_are_dead_lettered_with_a_one_line_reason() {
    let s = setup();
    for (key, says) in [
        (
            long_key(1025),
            "is 1025 bytes long; at most 1024 are allowed",
        ),
        (
            "incoming/../episodes/x/audio.m4a".to_owned(),
            "`..` path segment",
        ),
        ("incoming/./a.m4a".to_owned(), "`..` path segment"),
        (
            "incoming//a.m4a".to_owned(),
            "empty, `.` or `..` path segment",
        ),
        ("incoming/a\nb.m4a".to_owned(), "holds a control character"),
        (
            "incoming/a\u{1b}[2Jb.m4a".to_owned(),
            "holds a control character",
        ),
    ] {
        for event in [notification(&key, 10), object_created(&key, 10)] {
            match s.handler.handle(&delivery(event.to_string())).await {
                Outcome::DeadLetter { emit, reason } => {
                    assert!(emit.is_empty());
                    assert!(reason.contains(says), "{key:?}: {reason}");
                    assert!(reason.contains("upload it under another name"), "{reason}");
                    assert!(
                        !reason.contains('\n') && !reason.contains('\u{1b}'),
                        "{reason:?}"
                    );
                    assert!(reason.len() < 400, "{} bytes", reason.len());
                }
                other => panic!("{key:?}: {other:?}"),
            }
        }
    }
}

/// Keys as people name files: any characters, folders, spaces and `+`.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        ".{0,40}",
        "[a-z +%/é\u{1F3A7}\\-]{0,40}",
        ("[aé/+ ]{1,3}", 200usize..400).prop_map(|(s, n)| s.repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Whatever a notification carries: no panic, and never a longer key (`+` and `%XX`
    /// each decode to no more bytes than they take).
    #[test]
    fn the_notification_decoder_never_grows_a_key(carried in "\\PC{0,80}|[%+0-9a-fA-FzZ]{0,40}") {
        check_carried(&carried)?;
    }

    /// S3's encoding of any key decodes to the key.
    #[test]
    fn encoded_keys_decode_to_the_uploaded_key(uploaded in key()) {
        let carried = s3_encoded(&uploaded);
        prop_assert_eq!(decode_notification_key(&carried), Some(uploaded));
    }

    /// Any key in either event form: the uploads are read or the event is refused with a
    /// reason; a key read from a notification is the decoded key.
    #[test]
    fn hostile_keys_in_events_are_read_or_refused(uploaded in key(), size in any::<u64>()) {
        let notified = notification(&uploaded, 0);
        let mut notified = notified;
        notified["Records"][0]["s3"]["object"]["size"] = json!(size);
        for event in [notified, object_created(&uploaded, 0)] {
            check_event(&event, Some(&uploaded))?;
        }
    }
}

/// Found by `podflow run` on a 255-byte file name: the scratch copy's name prefixed the
/// user's name with a unique id, past the 255 bytes a file name may have.
#[tokio::test]
async fn a_255_byte_file_name_is_ingested() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("{}x.wav", "é".repeat(125));
    assert_eq!(name.len(), 255);
    let path = dir.path().join(&name);
    let made = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:duration=1")
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
    let event = s
        .handler
        .service
        .ingest_file(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let up = event.decode::<EpisodeUploaded>().expect("EpisodeUploaded");
    assert_eq!(up.original_name, name);
    assert!(names::check_episode_id(&up.episode_id).is_ok());
}

/// Found by the `s3_keys` cargo-fuzz target: a record whose `eventName` is missing was
/// "not an upload" with an empty description, so the log line said nothing about it.
#[test]
fn an_event_that_is_not_an_upload_is_always_described() {
    let mut missing = notification("incoming/a.m4a", 10);
    missing["Records"][0]
        .as_object_mut()
        .expect("record")
        .remove("eventName");
    let mut blank_name = notification("incoming/a.m4a", 10);
    blank_name["Records"][0]["eventName"] = json!(" ");
    let mut empty = object_created("incoming/a.m4a", 10);
    empty["detail-type"] = json!("");
    let mut blank = object_created("incoming/a.m4a", 10);
    blank["detail-type"] = json!(" \t");
    for (event, says) in [
        (missing, "record 0 without an eventName"),
        (blank_name, "record 0 without an eventName"),
        (empty, "an S3 event with an empty detail-type"),
        (blank, "an S3 event with an empty detail-type"),
    ] {
        match uploads_in(&event) {
            Ok(UploadEvent::Other(what)) => assert_eq!(what, says),
            other => panic!("{other:?}"),
        }
        check_event(&event, None).expect("the invariants hold");
    }
}
