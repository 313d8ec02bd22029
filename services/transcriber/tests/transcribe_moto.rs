//! The transcriber on AWS: jobs on moto server's Amazon Transcribe, outputs in its S3.
//! moto runs jobs but writes no transcript and sends no events, so the test writes the
//! real recorded transcript where the job's output goes and delivers the documented
//! "Transcribe Job State Change" event itself.
use std::sync::Arc;

use async_trait::async_trait;
use podflow_aws::{s3::S3BlobStore, transcribe::TranscribeJobs};
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, JobState, MessageHandler, Outcome, PortError,
    TranscriptionJobSpec, TranscriptionJobs, transcript::Transcript,
};
use podflow_embedded::Db;
use podflow_events::{
    EpisodeTranscribed, EpisodeUploaded, EventEnvelope, SCHEMA_VERSION, TranscriptionFailed,
};
use podflow_fakes::moto::MotoServer;
use serde_json::json;
use transcriber::batch::{BatchTranscriberHandler, job_name, output_key};

const BUCKET: &str = "podflow-test";

fn fixture(name: &str) -> String {
    podflow_fakes::fixtures::aws_text(&format!("transcribe/{name}"))
}

fn uploaded(episode_id: &str, name: &str, source: &podflow_events::BlobRef) -> Delivery {
    let event = EventEnvelope::wrap(&EpisodeUploaded {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: episode_id.into(),
        correlation_id: format!("corr-{episode_id}"),
        source: source.clone(),
        original_name: name.into(),
        duration_seconds: None,
    });
    Delivery {
        message_id: format!("up-{episode_id}"),
        body: serde_json::to_string(&event).expect("json"),
        attempt: 1,
        deadline: None,
    }
}

/// The documented state-change event (`awsdocs-transcribe_monitoring-events_…jsonc`, whose
/// placeholders are not JSON) with a real job name and status.
fn state_change(job: &str, status: &str) -> Delivery {
    let doc =
        fixture("awsdocs-transcribe_monitoring-events_TranscribeJobStateChange.doc-verbatim.jsonc");
    assert!(doc.contains("\"detail-type\":\"Transcribe Job State Change\""));
    let event = json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Transcribe Job State Change",
        "source": "aws.transcribe",
        "account": "123456789012",
        "time": "2026-12-02T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"TranscriptionJobName": job, "TranscriptionJobStatus": status}
    });
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

#[tokio::test]
async fn one_job_per_audio_and_its_state_change_finishes_every_waiting_episode() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    aws_sdk_s3::Client::new(&config)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(S3BlobStore::new(&config, BUCKET, true));
    let handler = BatchTranscriberHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        jobs: Arc::new(TranscribeJobs::new(&config, BUCKET, "en-US")),
    };
    let source = blobs
        .put("incoming/show-12.wav", b"RIFF-not-really".repeat(100))
        .await
        .expect("upload");
    let job = job_name(&source.sha256);

    // The upload starts one job; its duplicate delivery and a re-upload of the same audio
    // under another name start nothing new.
    for (episode, name) in [
        ("ep-a", "show-12.wav"),
        ("ep-a", "show-12.wav"),
        ("ep-b", "copy.wav"),
    ] {
        let emitted = events(handler.handle(&uploaded(episode, name, &source)).await);
        assert!(emitted.is_empty(), "nothing to announce until the job ends");
    }
    let transcribe = aws_sdk_transcribe::Client::new(&config);
    let listed = transcribe
        .list_transcription_jobs()
        .send()
        .await
        .expect("list");
    let names: Vec<_> = listed
        .transcription_job_summaries()
        .iter()
        .filter_map(|j| j.transcription_job_name())
        .collect();
    assert_eq!(names, [job.as_str()]);
    let started = transcribe
        .get_transcription_job()
        .transcription_job_name(&job)
        .send()
        .await
        .expect("job");
    let started = started.transcription_job().expect("job");
    assert_eq!(
        started.media().and_then(|m| m.media_file_uri()),
        Some(format!("s3://{BUCKET}/incoming/show-12.wav").as_str())
    );
    assert_eq!(
        started.settings().and_then(|s| s.show_speaker_labels()),
        Some(true)
    );

    // Transcribe's output (a real recorded one, with speaker labels) lands where we asked.
    blobs
        .put(
            &output_key(&job),
            fixture("localstack_transcript_speaker_diarization.json").into_bytes(),
        )
        .await
        .expect("output");
    // moto moves a job one state per GetTranscriptionJob: until it says COMPLETED the
    // event is retried, as EventBridge would.
    let mut outcome = handler.handle(&state_change(&job, "COMPLETED")).await;
    for _ in 0..5 {
        if !matches!(outcome, Outcome::Retry { .. }) {
            break;
        }
        outcome = handler.handle(&state_change(&job, "COMPLETED")).await;
    }
    let emitted = events(outcome);
    let done: Vec<EpisodeTranscribed> = emitted
        .iter()
        .map(|e| {
            e.decode::<EpisodeTranscribed>()
                .expect("EpisodeTranscribed")
        })
        .collect();
    let episodes: Vec<&str> = done.iter().map(|d| d.episode_id.as_str()).collect();
    assert_eq!(episodes, ["ep-a", "ep-b"]);
    assert_eq!(done[0].engine, "amazon-transcribe");
    assert!(!done[0].reused && done[1].reused);
    for d in &done {
        assert!(
            d.transcript
                .key
                .starts_with(&format!("episodes/{}/", d.episode_id))
        );
        let t: Transcript =
            serde_json::from_slice(&blobs.get(&d.transcript).await.expect("transcript"))
                .expect("transcript json");
        let speakers: std::collections::BTreeSet<_> = t
            .segments
            .iter()
            .filter_map(|s| s.speaker.clone())
            .collect();
        assert_eq!(speakers.len(), 2, "{speakers:?}");
        let srt = String::from_utf8(blobs.get(&d.subtitles_srt).await.expect("srt")).expect("utf8");
        assert!(srt.contains("-->"));
    }
    // Transcribed once, whatever happens next: the same event again, or a new upload.
    let again = events(handler.handle(&state_change(&job, "COMPLETED")).await);
    assert_eq!(again.len(), 2);
    let late = events(handler.handle(&uploaded("ep-c", "late.wav", &source)).await);
    assert_eq!(
        late.len(),
        1,
        "a later upload reuses the transcript at once"
    );
    assert_eq!(db.work_count("transcribe", "ep-a").await.expect("count"), 1);

    // An event for a job podflow never started is refused, not guessed at.
    assert!(matches!(
        handler
            .handle(&state_change("someone-elses-job", "COMPLETED"))
            .await,
        Outcome::DeadLetter { .. }
    ));
    assert!(matches!(
        handler
            .handle(&state_change("podflow-unknown", "COMPLETED"))
            .await,
        Outcome::DeadLetter { .. }
    ));
}

/// Transcribe as a job that fails, or is throttled, on demand.
struct FailingJobs {
    throttled: bool,
}

#[async_trait]
impl TranscriptionJobs for FailingJobs {
    async fn start(&self, _job: &TranscriptionJobSpec) -> Result<bool, PortError> {
        if self.throttled {
            return Err(PortError::transient(
                "starting Transcribe job: LimitExceededException (too many jobs)",
            ));
        }
        Ok(true)
    }
    async fn state(&self, _name: &str) -> Result<JobState, PortError> {
        Ok(JobState::Failed(
            "The media format provided does not match the detected media format.".into(),
        ))
    }
}

#[tokio::test]
async fn a_failed_job_fails_its_episodes_with_transcribes_reason_and_throttling_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(podflow_embedded::FileBlobStore::new(dir.path()));
    let source = blobs
        .put("incoming/bad.m4a", b"garbage".to_vec())
        .await
        .expect("put");
    let handler = |throttled| BatchTranscriberHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        jobs: Arc::new(FailingJobs { throttled }),
    };
    assert!(matches!(
        handler(true).handle(&uploaded("ep-x", "bad.m4a", &source)).await,
        Outcome::Retry { ref reason, .. } if reason.contains("LimitExceededException")
    ));
    let failing = handler(false);
    assert!(events(failing.handle(&uploaded("ep-x", "bad.m4a", &source)).await).is_empty());
    let emitted = events(
        failing
            .handle(&state_change(&job_name(&source.sha256), "FAILED"))
            .await,
    );
    let failed = emitted[0]
        .decode::<TranscriptionFailed>()
        .expect("TranscriptionFailed");
    assert!(failed.reason.contains("bad.m4a") && failed.reason.contains("media format"));
    let steps = db.steps("ep-x").await.expect("steps");
    assert_eq!(steps[0].status, podflow_core::StepStatus::Failed);
}

/// A job's end that never got through (the last delivery failed, or EventBridge could not
/// hand it over) fails every episode waiting for the job, instead of leaving them waiting.
#[tokio::test]
async fn a_job_end_given_up_fails_every_episode_waiting_for_the_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(podflow_embedded::FileBlobStore::new(dir.path()));
    let source = blobs
        .put("incoming/a.m4a", b"audio".to_vec())
        .await
        .expect("put");
    let handler = BatchTranscriberHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        jobs: Arc::new(FailingJobs { throttled: false }),
    };
    for episode in ["ep-1", "ep-2"] {
        assert!(events(handler.handle(&uploaded(episode, "a.m4a", &source)).await).is_empty());
    }
    let reason = "EventBridge could not deliver it to podflow-Transcriber: NO_PERMISSIONS: denied";
    let given_up = handler
        .give_up(
            &state_change(&job_name(&source.sha256), "COMPLETED"),
            reason,
        )
        .await;
    let Outcome::DeadLetter { emit, reason: why } = given_up else {
        panic!("{given_up:?}");
    };
    assert_eq!(why, reason);
    let mut failed: Vec<String> = emit
        .iter()
        .map(|e| {
            let f = e
                .decode::<TranscriptionFailed>()
                .expect("TranscriptionFailed");
            assert_eq!(f.reason, reason);
            f.episode_id
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["ep-1", "ep-2"]);
    for episode in ["ep-1", "ep-2"] {
        let steps = db.steps(episode).await.expect("steps");
        assert_eq!(
            steps[0].status,
            podflow_core::StepStatus::Failed,
            "{episode}"
        );
    }
    // Given up again (a redelivery): the steps have ended, nothing is announced twice.
    match handler
        .give_up(
            &state_change(&job_name(&source.sha256), "COMPLETED"),
            reason,
        )
        .await
    {
        Outcome::DeadLetter { emit, .. } => assert!(emit.is_empty(), "{emit:?}"),
        other => panic!("{other:?}"),
    }
}
