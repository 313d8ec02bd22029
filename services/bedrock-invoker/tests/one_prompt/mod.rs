//! One planned prompt of episode `ep` (its stored input, its job) and an invoker over it,
//! for the tests that send that job through the Lambda path or forge it.

use std::{sync::Arc, time::Duration};

use bedrock_invoker::{
    InvokeHandler, RetryPolicy,
    openai::OpenAiCompatible,
    ratelimit::{LimitsConfig, Throttle},
};
use podflow_core::{BlobStore, EpisodeStore, PromptInput, TRANSCRIPT_MARKER};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::{PromptJob, SCHEMA_VERSION};

/// `prompt` of episode `ep` planned on `model-a`, its input (the transcript `transcript`)
/// stored, and the job the dispatcher would send for it.
pub async fn planned_job(
    db: &Db,
    blobs: &FileBlobStore,
    prompt: &str,
    transcript: &str,
) -> PromptJob {
    let input = PromptInput {
        system: "You write show notes.".into(),
        user: format!("Summarise:\n\n{TRANSCRIPT_MARKER}"),
        transcript: transcript.into(),
        ..PromptInput::default()
    };
    let input = blobs
        .put(
            &format!("episodes/ep/prompts/{prompt}.v1.input.json"),
            serde_json::to_vec(&input).expect("json"),
        )
        .await
        .expect("put");
    db.plan_prompts("ep", &[(prompt.to_owned(), 1, "model-a".into())])
        .await
        .expect("plan");
    PromptJob {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: "ep".into(),
        correlation_id: "c".into(),
        prompt_id: prompt.into(),
        prompt_version: 1,
        model: "model-a".into(),
        max_tokens: 100,
        temperature: 0.2,
        input,
        output_key: format!("episodes/ep/prompts/{prompt}.md"),
    }
}

/// One planned prompt, its job, and an invoker that gives up after `max_attempts` model
/// failures.
pub async fn one_prompt(
    llm_url: &str,
    max_attempts: u32,
) -> (tempfile::TempDir, Db, InvokeHandler, PromptJob) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = Arc::new(FileBlobStore::new(dir.path()));
    let job = planned_job(
        &db,
        &blobs,
        "summary",
        "Speaker 1: Retries are not failures.",
    )
    .await;
    let handler = InvokeHandler {
        store: Arc::new(db.clone()),
        blobs,
        llm: Arc::new(OpenAiCompatible::new(
            llm_url,
            None,
            Duration::from_secs(10),
        )),
        throttle: Arc::new(Throttle::new(
            LimitsConfig::default(),
            Duration::from_secs(60),
        )),
        retry: RetryPolicy {
            max_attempts,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
    };
    (dir, db, handler, job)
}
