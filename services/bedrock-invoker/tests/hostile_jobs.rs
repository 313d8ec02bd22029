//! Forged prompt jobs: anyone who can send to the prompt queue can write a PromptJob, so the
//! invoker holds each job to the episode it names. A job whose output or input is outside
//! `episodes/<its episode_id>/prompts/`, whose keys break the schema, or whose input names
//! another bucket is dead-lettered with the reason — before the model is called, the store
//! is touched or anything is read or written.

mod one_prompt;

use bedrock_invoker::{InvokeHandler, RetryPolicy, parse_job};
use podflow_core::{BlobStore, Delivery, EpisodeStore, MessageHandler, Outcome, PromptStatus};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::{BlobRef, PromptJob, SCHEMA_VERSION, names};
use podflow_fakes::{FakeLlm, FakeLlmConfig};
use proptest::prelude::*;

struct Setup {
    dir: tempfile::TempDir,
    db: Db,
    handler: InvokeHandler,
    fake: FakeLlm,
    /// A valid job for episode `ep`.
    job: PromptJob,
}

const VICTIM_OUTPUT: &str = "episodes/victim/prompts/summary.md";
const VICTIM_AUDIO: &str = "episodes/victim/audio.mp3";

async fn setup() -> Setup {
    let fake = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake llm");
    let (dir, db, handler, job) =
        one_prompt::one_prompt(&fake.url, RetryPolicy::default().max_attempts).await;
    let blobs = FileBlobStore::new(dir.path());
    // Another episode's finished output, audio and prompt input, which no forged job may
    // touch.
    for (key, bytes) in [
        (VICTIM_OUTPUT, b"the victim's summary".to_vec()),
        (VICTIM_AUDIO, b"the victim's audio".to_vec()),
        (
            "episodes/victim/prompts/summary.v1.input.json",
            blobs.get(&job.input).await.expect("the job's input"),
        ),
    ] {
        blobs.put(key, bytes).await.expect("put");
    }
    Setup {
        dir,
        db,
        handler,
        fake,
        job,
    }
}

fn delivery(body: String) -> Delivery {
    Delivery {
        message_id: "m-1".into(),
        body,
        attempt: 1,
        deadline: None,
    }
}

/// The job as JSON with `change` applied: forged bodies need not be valid PromptJobs.
fn forged(job: &PromptJob, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v = serde_json::to_value(job).expect("json");
    change(&mut v);
    v.to_string()
}

#[tokio::test]
async fn forged_jobs_are_dead_lettered_before_anything_is_read_or_written() {
    let s = setup().await;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another episode's output",
            forged(&s.job, |v| v["output_key"] = VICTIM_OUTPUT.into()),
            "output_key \"episodes/victim/prompts/summary.md\" is outside `episodes/ep/prompts/`",
        ),
        (
            "its own episode id, outside the prompts folder",
            forged(&s.job, |v| {
                v["episode_id"] = "victim".into();
                v["output_key"] = VICTIM_AUDIO.into();
            }),
            "output_key \"episodes/victim/audio.mp3\" is outside `episodes/victim/prompts/`",
        ),
        (
            "a path climbing out of the prompts folder",
            forged(&s.job, |v| {
                v["output_key"] = "episodes/ep/prompts/../../victim/audio.mp3".into()
            }),
            "PromptJob breaks its schema",
        ),
        (
            "another episode's input",
            forged(&s.job, |v| {
                v["input"]["key"] = "episodes/victim/prompts/summary.v1.input.json".into()
            }),
            "input key \"episodes/victim/prompts/summary.v1.input.json\" is outside `episodes/ep/prompts/`",
        ),
        (
            "another bucket",
            forged(&s.job, |v| {
                v["input"]["bucket"] = "someone-elses-bucket".into()
            }),
            "its input is in bucket `someone-elses-bucket`, not this stack's",
        ),
        (
            "a control character in the key",
            forged(&s.job, |v| {
                v["output_key"] = "episodes/ep/prompts/summary\u{1b}[2J.md".into()
            }),
            "PromptJob breaks its schema",
        ),
        (
            "an episode id with a slash",
            forged(&s.job, |v| v["episode_id"] = "ep/../victim".into()),
            "PromptJob breaks its schema",
        ),
        (
            "not JSON",
            "{\"schema_version\": \"1.1\",".into(),
            "not a PromptJob",
        ),
    ];
    for (what, body, says) in cases {
        for give_up in [false, true] {
            let outcome = if give_up {
                s.handler
                    .give_up(&delivery(body.clone()), "receives used up")
                    .await
            } else {
                s.handler.handle(&delivery(body.clone())).await
            };
            match outcome {
                Outcome::DeadLetter { emit, reason } => {
                    assert!(emit.is_empty(), "{what}: {emit:?}");
                    assert!(reason.contains(says), "{what}: {reason}");
                    // One line, whatever the job held.
                    assert!(!reason.contains(char::is_control), "{what}: {reason:?}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
    // Nothing was called, read into the store, or written.
    assert_eq!(s.fake.stats().requests, 0);
    let root = s.dir.path();
    assert_eq!(
        std::fs::read(root.join(VICTIM_OUTPUT)).expect("victim output"),
        b"the victim's summary"
    );
    assert_eq!(
        std::fs::read(root.join(VICTIM_AUDIO)).expect("victim audio"),
        b"the victim's audio"
    );
    assert!(!root.join("episodes/ep/prompts/summary.md").exists());
    assert!(s.db.prompts("victim").await.expect("prompts").is_empty());
    let ep = s.db.prompts("ep").await.expect("prompts");
    assert_eq!(ep[0].status, PromptStatus::Queued, "{ep:?}");

    // The genuine job still runs.
    match s
        .handler
        .handle(&delivery(serde_json::to_string(&s.job).expect("json")))
        .await
    {
        Outcome::Done { emit, .. } => assert_eq!(emit.len(), 1),
        other => panic!("{other:?}"),
    }
    assert!(root.join("episodes/ep/prompts/summary.md").exists());
}

/// Hostile values for the fields a forger controls.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ep".to_owned()),
        Just("episodes/ep/prompts/summary.md".to_owned()),
        Just("episodes/ep/prompts/".to_owned()),
        Just("episodes/ep/prompts/../x.md".to_owned()),
        Just("episodes/ep/prompts//x.md".to_owned()),
        "episodes/(ep|victim|\\.\\.|ep/prompts)/(prompts/)?[a-z./\\x00\\n]{0,12}",
        "[a-z./\\-\\x00\\n\u{85}]{0,16}",
        "\\PC{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Whatever a forger writes, an accepted job reads and writes only under its own
    /// episode's prompts folder, in this stack's bucket; a refused one says why.
    #[test]
    fn an_accepted_job_stays_in_its_episodes_prompts_folder(
        episode in hostile(),
        output_key in hostile(),
        input_key in hostile(),
        bucket in prop::option::of(prop_oneof![Just("home".to_owned()), hostile()]),
        home in prop::option::of(Just("home")),
    ) {
        let job = PromptJob {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: episode,
            correlation_id: "c".into(),
            prompt_id: "summary".into(),
            prompt_version: 1,
            model: "m".into(),
            max_tokens: 10,
            temperature: 0.2,
            input: BlobRef { bucket, key: input_key, size: 1, sha256: "0".repeat(64) },
            output_key,
        };
        match parse_job(&serde_json::to_string(&job).expect("json"), home) {
            Ok(accepted) => {
                let prefix = format!("episodes/{}/prompts/", accepted.episode_id);
                prop_assert!(names::check_episode_id(&accepted.episode_id).is_ok());
                for key in [&accepted.output_key, &accepted.input.key] {
                    prop_assert!(key.starts_with(&prefix), "{key:?}");
                    prop_assert!(names::check_key(key).is_ok(), "{key:?}");
                }
                prop_assert_eq!(accepted.input.bucket.as_deref(), home);
            }
            Err(refused) => prop_assert!(!refused.to_string().trim().is_empty()),
        }
    }
}

/// The invoker is the PromptJob's consumer (the job travels on the queue, not through an
/// envelope): it takes every valid example and refuses every invalid one, with a reason.
#[test]
fn the_invoker_accepts_exactly_the_valid_examples() {
    use podflow_events::{PodflowEvent, schema};
    for valid in [true, false] {
        let files = schema::json_files(&schema::examples_dir(PromptJob::DETAIL_TYPE, valid));
        assert!(!files.is_empty());
        for file in files {
            let body = std::fs::read_to_string(&file).expect("example");
            match parse_job(&body, None) {
                Ok(_) => assert!(valid, "{} was accepted", file.display()),
                Err(e) => {
                    assert!(!valid, "{}: {e}", file.display());
                    assert!(!e.to_string().trim().is_empty());
                }
            }
        }
    }
}
