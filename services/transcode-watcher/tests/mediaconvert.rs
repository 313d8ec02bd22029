//! The transcode-watcher on AWS: jobs created through the SDK on the MediaConvert fake
//! (moto does not serve MediaConvert), the upload and the MP3 in moto's S3, and the
//! recorded "MediaConvert Job State Change" events delivered by the test.
use std::sync::Arc;

use podflow_aws::{mediaconvert::MediaConvertJobs, s3::S3BlobStore};
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, TranscodeJobSpec, TranscodeJobs,
};
use podflow_embedded::Db;
use podflow_events::{
    BlobRef, EpisodeTranscoded, EpisodeUploaded, EventEnvelope, SCHEMA_VERSION, TranscodeFailed,
};
use podflow_fakes::{mediaconvert::FakeMediaConvert, moto::MotoServer};
use serde_json::{Value, json};
use transcode_watcher::mediaconvert::MediaConvertHandler;

const BUCKET: &str = "podflow-test";
const ROLE: &str = "arn:aws:iam::123456789012:role/podflow-mediaconvert";

fn uploaded(episode_id: &str, source: &BlobRef) -> Delivery {
    let event = EventEnvelope::wrap(&EpisodeUploaded {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: episode_id.into(),
        correlation_id: format!("corr-{episode_id}"),
        source: source.clone(),
        original_name: format!("{episode_id}.m4a"),
        duration_seconds: None,
    });
    Delivery {
        message_id: format!("up-{episode_id}"),
        body: serde_json::to_string(&event).expect("json"),
        attempt: 1,
        deadline: None,
    }
}

/// A recorded state-change event for `job` (the documentation's `000000` codes made JSON).
fn state_change(file: &str, job: &Value, output: Option<&str>) -> Delivery {
    let text = podflow_fakes::fixtures::aws_text(&format!("mediaconvert/{file}"));
    let mut event: Value = serde_json::from_str(&text.replace("000000", "0")).expect("json");
    event["detail"]["jobId"] = job["id"].clone();
    event["detail"]["userMetadata"] = job["userMetadata"].clone();
    if let Some(output) = output {
        event["detail"]["outputGroupDetails"][0]["outputDetails"][0]["outputFilePaths"] =
            json!([output]);
    }
    Delivery {
        message_id: "state-1".into(),
        body: event.to_string(),
        attempt: 1,
        deadline: None,
    }
}

fn events(outcome: Outcome) -> Vec<EventEnvelope> {
    match outcome {
        Outcome::Done { emit, .. } => emit,
        other => panic!("{other:?}"),
    }
}

fn mp3(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("tone.mp3");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=2",
            "-b:a",
            "128k",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok);
    std::fs::read(path).expect("mp3")
}

/// moto's S3 with the bucket, the MediaConvert fake throttling its first `throttle`
/// requests, a local state store, and the handler over them.
struct Stack {
    _moto: MotoServer,
    dir: tempfile::TempDir,
    fake: FakeMediaConvert,
    db: Db,
    blobs: Arc<S3BlobStore>,
    handler: MediaConvertHandler,
}

async fn stack(throttle: u32, bitrate_kbps: u32) -> Stack {
    let moto = MotoServer::start();
    let s3_config = moto.sdk_config().await;
    podflow_fakes::moto::create_bucket(&s3_config, BUCKET).await;
    let fake = FakeMediaConvert::start(throttle).await.expect("fake");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(S3BlobStore::new(&s3_config, BUCKET, true));
    let handler = MediaConvertHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        jobs: Arc::new(MediaConvertJobs::new(
            &podflow_fakes::moto::sdk_config(&fake.url).await,
            ROLE,
            BUCKET,
        )),
        bucket: BUCKET.into(),
        bitrate_kbps,
        stack: "podflow-test-stack".into(),
    };
    Stack {
        _moto: moto,
        dir,
        fake,
        db,
        blobs,
        handler,
    }
}

#[tokio::test]
async fn one_job_per_audio_and_its_completion_delivers_every_waiting_episode() {
    // Throttled answers come back as retries of the event (after a delay), never as a
    // failure; the client does not retry in-process.
    let Stack {
        _moto,
        dir,
        fake,
        db,
        blobs,
        handler,
    } = stack(2, 128).await;
    let source = blobs
        .put("incoming/ep-a.m4a", b"m4a bytes".repeat(50))
        .await
        .expect("upload");

    for _ in 0..2 {
        match handler.handle(&uploaded("ep-a", &source)).await {
            Outcome::Retry { reason, .. } => {
                assert!(reason.contains("TooManyRequestsException"), "{reason}")
            }
            other => panic!("throttled: {other:?}"),
        }
    }
    for episode in ["ep-a", "ep-a", "ep-b"] {
        assert!(events(handler.handle(&uploaded(episode, &source)).await).is_empty());
    }
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 1, "one job for one audio: {jobs:#?}");
    let job = &jobs[0];
    // What was sent, as MediaConvert reads it.
    let settings = &job["settings"];
    assert_eq!(job["role"], ROLE);
    assert_eq!(
        settings["inputs"][0]["fileInput"],
        format!("s3://{BUCKET}/incoming/ep-a.m4a")
    );
    let group = &settings["outputGroups"][0];
    assert_eq!(group["outputGroupSettings"]["type"], "FILE_GROUP_SETTINGS");
    let destination = group["outputGroupSettings"]["fileGroupSettings"]["destination"]
        .as_str()
        .expect("destination");
    assert!(destination.starts_with(&format!("s3://{BUCKET}/episodes/_transcode/")));
    let output = &group["outputs"][0];
    assert_eq!(output["containerSettings"]["container"], "RAW");
    assert_eq!(output["extension"], "mp3");
    let audio = &output["audioDescriptions"][0];
    assert_eq!(audio["codecSettings"]["codec"], "MP3");
    assert_eq!(audio["codecSettings"]["mp3Settings"]["bitrate"], 128_000);
    assert_eq!(
        audio["codecSettings"]["mp3Settings"]["rateControlMode"],
        "CBR"
    );
    assert_eq!(audio["audioNormalizationSettings"]["targetLkfs"], -16.0);
    assert_eq!(
        audio["audioNormalizationSettings"]["truePeakLimiterThreshold"],
        -2.0
    );
    assert_eq!(job["userMetadata"]["podflow_stack"], "podflow-test-stack");
    assert_eq!(job["userMetadata"]["podflow_audio"], source.sha256.as_str());

    // Progress is not an end; completion delivers both episodes.
    let progressing = state_change(
        "awsdocs-mediaconvert_ev_status_progressing.PROGRESSING.json",
        job,
        None,
    );
    assert!(events(handler.handle(&progressing).await).is_empty());
    let written = format!("{destination}.mp3");
    let key = written
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .expect("our bucket");
    let mp3 = mp3(dir.path());
    blobs
        .put(key, mp3.clone())
        .await
        .expect("MediaConvert's output");
    let complete = state_change(
        "awsdocs-mediaconvert_ev_status_complete.COMPLETE.doc-verbatim.jsonc",
        job,
        Some(&written),
    );
    let done: Vec<EpisodeTranscoded> = events(handler.handle(&complete).await)
        .iter()
        .map(|e| e.decode::<EpisodeTranscoded>().expect("EpisodeTranscoded"))
        .collect();
    let ids: Vec<&str> = done.iter().map(|d| d.episode_id.as_str()).collect();
    assert_eq!(ids, ["ep-a", "ep-b"]);
    for d in &done {
        assert_eq!(d.audio.key, format!("episodes/{}/audio.mp3", d.episode_id));
        assert_eq!(blobs.get(&d.audio).await.expect("mp3"), mp3);
        assert!((d.duration_seconds - 30.041).abs() < 1e-6, "from the event");
        assert_eq!(d.bitrate_kbps, 128);
    }
    assert!(!done[0].reused && done[1].reused);
    // A later upload of the same audio reuses the MP3 without a job.
    assert_eq!(
        events(handler.handle(&uploaded("ep-c", &source)).await).len(),
        1
    );
    assert_eq!(fake.jobs().len(), 1);
    assert_eq!(db.work_count("transcode", "ep-a").await.expect("count"), 1);
}

/// A job's end that never got through (the last delivery failed, or EventBridge could not
/// hand it over) fails the episodes waiting for the job; a change that is no end does not.
#[tokio::test]
async fn a_job_end_given_up_fails_its_episodes_and_a_progress_event_does_not() {
    let Stack {
        _moto,
        fake,
        db,
        blobs,
        handler,
        ..
    } = stack(0, 96).await;
    let source = blobs
        .put("incoming/lost.m4a", b"x".to_vec())
        .await
        .expect("put");
    assert!(events(handler.handle(&uploaded("ep-l", &source)).await).is_empty());
    let job = &fake.jobs()[0];
    let reason = "delivered 3 times without being processed";
    let progressing = state_change(
        "awsdocs-mediaconvert_ev_status_progressing.PROGRESSING.json",
        job,
        None,
    );
    match handler.give_up(&progressing, reason).await {
        Outcome::DeadLetter { emit, .. } => assert!(emit.is_empty(), "{emit:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        db.steps("ep-l").await.expect("steps")[0].status,
        podflow_core::StepStatus::Running
    );
    let complete = state_change(
        "awsdocs-mediaconvert_ev_status_complete.COMPLETE.doc-verbatim.jsonc",
        job,
        Some("s3://podflow-test/x.mp3"),
    );
    let Outcome::DeadLetter { emit, .. } = handler.give_up(&complete, reason).await else {
        panic!("a dead letter");
    };
    let failed = emit[0]
        .decode::<TranscodeFailed>()
        .expect("TranscodeFailed");
    assert_eq!(
        (failed.episode_id.as_str(), failed.reason.as_str()),
        ("ep-l", reason)
    );
    assert_eq!(
        db.steps("ep-l").await.expect("steps")[0].status,
        podflow_core::StepStatus::Failed
    );
}

#[tokio::test]
async fn a_failed_job_fails_its_episodes_and_foreign_jobs_are_refused() {
    let Stack {
        _moto,
        fake,
        db,
        blobs,
        handler,
        ..
    } = stack(0, 96).await;
    let source = blobs
        .put("incoming/bad.m4a", b"x".to_vec())
        .await
        .expect("put");
    assert!(events(handler.handle(&uploaded("ep-x", &source)).await).is_empty());
    let job = &fake.jobs()[0];
    let error = state_change("awsdocs-mediaconvert_ev_status_error.ERROR.json", job, None);
    let failed = events(handler.handle(&error).await)[0]
        .decode::<TranscodeFailed>()
        .expect("TranscodeFailed");
    assert_eq!(
        failed.reason,
        "MediaConvert error 1040: Example error message"
    );
    assert_eq!(
        db.steps("ep-x").await.expect("steps")[0].status,
        podflow_core::StepStatus::Failed
    );
    let mut foreign = job.clone();
    foreign["userMetadata"] = json!({});
    assert!(matches!(
        handler
            .handle(&state_change(
                "awsdocs-mediaconvert_ev_status_error.ERROR.json",
                &foreign,
                None
            ))
            .await,
        Outcome::DeadLetter { .. }
    ));
}

#[tokio::test]
async fn the_service_limits_on_request_tokens_hold_for_the_adapter() {
    let fake = FakeMediaConvert::start(0).await.expect("fake");
    let jobs = MediaConvertJobs::new(
        &podflow_fakes::moto::sdk_config(&fake.url).await,
        ROLE,
        BUCKET,
    );
    let sha = "ab".repeat(32);
    let spec = |token: String| TranscodeJobSpec {
        media: BlobRef {
            bucket: Some(BUCKET.into()),
            key: "uploads/weekly.wav".into(),
            size: 1,
            sha256: sha.clone(),
        },
        output_base: "episodes/_transcode/x".into(),
        bitrate_kbps: 128,
        idempotency_token: token,
        metadata: Vec::new(),
    };

    // The whole hash in the token is 77 characters: refused, as the service refuses it.
    let long = format!("podflow-{sha}-128k");
    assert_eq!(long.len(), 77);
    let err = jobs
        .create(&spec(long))
        .await
        .expect_err("too long")
        .to_string();
    assert!(
        err.contains("clientRequestToken") && err.contains("64"),
        "{err}"
    );

    // The handler's token fits, and a repeat within a minute is the same job.
    let token = format!("podflow-{}-128k", &sha[..48]);
    assert!(token.len() <= 64);
    let first = jobs.create(&spec(token.clone())).await.expect("created");
    let again = jobs.create(&spec(token.clone())).await.expect("repeated");
    assert_eq!(first, again);
    // After the minute the service makes a new job for the same token.
    fake.age_jobs(std::time::Duration::from_secs(61));
    let later = jobs.create(&spec(token)).await.expect("created again");
    assert_ne!(first, later);
    assert_eq!(fake.jobs().len(), 2);
}
