//! A cached MP3 is served only while its file still has the bytes recorded for it: one cut
//! short (a power cut before the data reached the disk) is transcoded again, not announced.

use std::{path::Path, process::Command, sync::Arc};

use podflow_core::{BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::{EpisodeTranscoded, EpisodeUploaded, EventEnvelope};
use transcode_watcher::TranscodeHandler;

fn sine_wav(path: &Path) {
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:duration=3")
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
}

fn delivery(up: &EpisodeUploaded) -> Delivery {
    Delivery {
        message_id: format!("m-{}", up.episode_id),
        body: serde_json::to_string(&EventEnvelope::wrap(up)).expect("json"),
        attempt: 1,
        deadline: None,
    }
}

fn transcoded(outcome: Outcome) -> EpisodeTranscoded {
    match outcome {
        Outcome::Done { emit, .. } => emit[0].decode().expect("EpisodeTranscoded"),
        other => panic!("expected the MP3, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cached_mp3_cut_short_is_transcoded_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(FileBlobStore::new(dir.path()));
    let wav = dir.path().join("upload.wav");
    sine_wav(&wav);
    let source = podflow_media::store_file(blobs.as_ref(), "incoming/tone.wav", &wav)
        .await
        .expect("stored");
    let handler = TranscodeHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        transcoder: Arc::new(podflow_media::Ffmpeg::default()),
        bitrate_kbps: 64,
    };
    let upload = |episode: &str| EpisodeUploaded {
        schema_version: "1.1".into(),
        episode_id: episode.into(),
        correlation_id: "c".into(),
        source: source.clone(),
        original_name: "tone.wav".into(),
        duration_seconds: Some(3.0),
    };

    let first = transcoded(handler.handle(&delivery(&upload("ep-1"))).await);
    assert!(!first.reused);
    // A second episode of the same audio reuses the MP3 while it is whole.
    let second = transcoded(handler.handle(&delivery(&upload("ep-2"))).await);
    assert!(second.reused);

    // The cached file loses its end, as after a power cut.
    let file = blobs.local_path(&first.audio).expect("local");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");

    let third = transcoded(handler.handle(&delivery(&upload("ep-3"))).await);
    assert!(!third.reused, "a damaged cache entry is not served");
    let stored = blobs.digest(&third.audio.key).await.expect("digest");
    assert_eq!(
        (stored.size, &stored.sha256),
        (third.audio.size, &third.audio.sha256)
    );
    let executions = db.work_count("transcode", "ep-1").await.expect("count")
        + db.work_count("transcode", "ep-3").await.expect("count");
    assert_eq!(executions, 2, "transcoded for ep-1, and again for ep-3");
    let fourth = transcoded(handler.handle(&delivery(&upload("ep-4"))).await);
    assert!(fourth.reused, "the new MP3 is served again");
}
