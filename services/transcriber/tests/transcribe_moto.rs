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
    podflow_fakes::moto::create_bucket(&config, BUCKET).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(S3BlobStore::new(&config, BUCKET, true));
    let handler = BatchTranscriberHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        jobs: Arc::new(TranscribeJobs::new(
            &config,
            BUCKET,
            "en-US".parse().expect("a Transcribe code"),
        )),
        speakers: Default::default(),
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

/// The output of a job that identified its language (German), two speakers: in the shape of
/// the recorded output above (`localstack_transcript_speaker_diarization.json`: items with
/// ids and speaker labels, `speaker_labels`, `audio_segments`, string times and
/// confidences), with the two fields Amazon Transcribe's language-identification guide
/// documents for such jobs: `results.language_code` and `results.language_identification`
/// (codes with string scores, best first).
const GERMAN_IDENTIFIED_OUTPUT: &str = r#"{
  "accountId": "111111111111",
  "jobName": "podflow-job",
  "results": {
    "language_code": "de-DE",
    "language_identification": [
      {"score": "0.9914", "code": "de-DE"},
      {"score": "0.0052", "code": "de-CH"},
      {"score": "0.0013", "code": "nl-NL"},
      {"score": "0.0008", "code": "en-US"},
      {"score": "0.0004", "code": "da-DK"}
    ],
    "audio_segments": [
      {"end_time": "1.81", "id": 0, "items": [0, 1, 2, 3, 4, 5], "speaker_label": "spk_0", "start_time": "0.0", "transcript": "Guten Tag, herzlich willkommen."},
      {"end_time": "4.02", "id": 1, "items": [6, 7, 8, 9, 10, 11], "speaker_label": "spk_1", "start_time": "2.31", "transcript": "Heute sprechen wir über Berlin."}
    ],
    "items": [
      {"alternatives": [{"confidence": "0.997", "content": "Guten"}], "end_time": "0.41", "id": 0, "speaker_label": "spk_0", "start_time": "0.12", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.999", "content": "Tag"}], "end_time": "0.69", "id": 1, "speaker_label": "spk_0", "start_time": "0.41", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.0", "content": ","}], "id": 2, "speaker_label": "spk_0", "type": "punctuation"},
      {"alternatives": [{"confidence": "0.998", "content": "herzlich"}], "end_time": "1.2", "id": 3, "speaker_label": "spk_0", "start_time": "0.75", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.996", "content": "willkommen"}], "end_time": "1.81", "id": 4, "speaker_label": "spk_0", "start_time": "1.2", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.0", "content": "."}], "id": 5, "speaker_label": "spk_0", "type": "punctuation"},
      {"alternatives": [{"confidence": "0.999", "content": "Heute"}], "end_time": "2.71", "id": 6, "speaker_label": "spk_1", "start_time": "2.4", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.998", "content": "sprechen"}], "end_time": "3.1", "id": 7, "speaker_label": "spk_1", "start_time": "2.71", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.999", "content": "wir"}], "end_time": "3.25", "id": 8, "speaker_label": "spk_1", "start_time": "3.1", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.995", "content": "über"}], "end_time": "3.5", "id": 9, "speaker_label": "spk_1", "start_time": "3.25", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.993", "content": "Berlin"}], "end_time": "4.02", "id": 10, "speaker_label": "spk_1", "start_time": "3.5", "type": "pronunciation"},
      {"alternatives": [{"confidence": "0.0", "content": "."}], "id": 11, "speaker_label": "spk_1", "type": "punctuation"}
    ],
    "speaker_labels": {
      "channel_label": "ch_0",
      "segments": [
        {"end_time": "1.81", "items": [
          {"end_time": "0.41", "speaker_label": "spk_0", "start_time": "0.12"},
          {"end_time": "0.69", "speaker_label": "spk_0", "start_time": "0.41"},
          {"end_time": "1.2", "speaker_label": "spk_0", "start_time": "0.75"},
          {"end_time": "1.81", "speaker_label": "spk_0", "start_time": "1.2"}
        ], "speaker_label": "spk_0", "start_time": "0.0"},
        {"end_time": "4.02", "items": [
          {"end_time": "2.71", "speaker_label": "spk_1", "start_time": "2.4"},
          {"end_time": "3.1", "speaker_label": "spk_1", "start_time": "2.71"},
          {"end_time": "3.25", "speaker_label": "spk_1", "start_time": "3.1"},
          {"end_time": "3.5", "speaker_label": "spk_1", "start_time": "3.25"},
          {"end_time": "4.02", "speaker_label": "spk_1", "start_time": "3.5"}
        ], "speaker_label": "spk_1", "start_time": "2.31"}
      ],
      "speakers": 2
    },
    "transcripts": [{"transcript": "Guten Tag, herzlich willkommen. Heute sprechen wir über Berlin."}]
  },
  "status": "COMPLETED"
}"#;

/// `auto` starts the job with IdentifyLanguage and no LanguageCode (Transcribe fails a job
/// given both), speaker labels still on; the language the output names is the transcript's
/// and the event's. A two-letter language starts the job in Transcribe's code for it.
#[tokio::test]
async fn auto_asks_transcribe_to_identify_the_language_and_the_transcript_records_it() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    podflow_fakes::moto::create_bucket(&config, BUCKET).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(S3BlobStore::new(&config, BUCKET, true));
    let handler = |language: &str| BatchTranscriberHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        jobs: Arc::new(TranscribeJobs::new(
            &config,
            BUCKET,
            language.parse().expect("a language"),
        )),
        speakers: Default::default(),
    };
    let transcribe = aws_sdk_transcribe::Client::new(&config);
    let job_of = |name: &str| {
        let transcribe = transcribe.clone();
        let name = name.to_owned();
        async move {
            transcribe
                .get_transcription_job()
                .transcription_job_name(name)
                .send()
                .await
                .expect("job")
                .transcription_job
                .expect("job")
        }
    };

    let auto = handler("auto");
    let source = blobs
        .put("incoming/folge-7.wav", b"RIFF-german".repeat(100))
        .await
        .expect("upload");
    let job = job_name(&source.sha256);
    assert!(
        events(
            auto.handle(&uploaded("ep-de", "folge-7.wav", &source))
                .await
        )
        .is_empty()
    );
    // moto's first description is of the queued job, as it was asked for (it makes up an
    // identified language, en-US, only once the job runs).
    let asked = job_of(&job).await;
    assert_eq!(asked.identify_language(), Some(true));
    assert_eq!(
        asked.language_code(),
        None,
        "no LanguageCode beside IdentifyLanguage"
    );
    assert_eq!(
        asked.settings().and_then(|s| s.show_speaker_labels()),
        Some(true)
    );

    blobs
        .put(
            &output_key(&job),
            GERMAN_IDENTIFIED_OUTPUT.as_bytes().to_vec(),
        )
        .await
        .expect("output");
    let mut outcome = auto.handle(&state_change(&job, "COMPLETED")).await;
    for _ in 0..5 {
        if !matches!(outcome, Outcome::Retry { .. }) {
            break;
        }
        outcome = auto.handle(&state_change(&job, "COMPLETED")).await;
    }
    let emitted = events(outcome);
    let done = emitted[0]
        .decode::<EpisodeTranscribed>()
        .expect("EpisodeTranscribed");
    assert_eq!(done.language, "de");
    let t: Transcript =
        serde_json::from_slice(&blobs.get(&done.transcript).await.expect("transcript"))
            .expect("transcript json");
    assert_eq!(t.language, "de");
    assert_eq!(
        t.full_text(),
        "Guten Tag, herzlich willkommen. Heute sprechen wir über Berlin."
    );
    let speakers: Vec<_> = t
        .segments
        .iter()
        .filter_map(|s| s.speaker.clone())
        .collect();
    assert_eq!(speakers, ["spk_0", "spk_1"]);

    // A two-letter language: Transcribe's code for it, and no identification.
    let german = handler("de");
    let other = blobs
        .put("incoming/folge-8.wav", b"RIFF-deutsch".repeat(100))
        .await
        .expect("upload");
    assert!(
        events(
            german
                .handle(&uploaded("ep-de2", "folge-8.wav", &other))
                .await
        )
        .is_empty()
    );
    let asked = job_of(&job_name(&other.sha256)).await;
    assert_eq!(
        asked.language_code(),
        Some(&aws_sdk_transcribe::types::LanguageCode::DeDe)
    );
    assert_ne!(asked.identify_language(), Some(true));
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
        speakers: Default::default(),
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
        speakers: Default::default(),
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
