//! Shared by the storm test and the prompt benchmark: real embedded queue, real invoker,
//! real OpenAI-compatible adapter, fake server.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bedrock_invoker::{
    InvokeHandler, RetryPolicy,
    openai::OpenAiCompatible,
    ratelimit::{LimitsConfig, Throttle},
};
use podflow_core::{BlobStore, EpisodeStore, PromptInput, TRANSCRIPT_MARKER};
use podflow_embedded::{Db, FileBlobStore, QueueSpec, Worker, queue::PROMPT_QUEUE};
use podflow_events::{PromptJob, SCHEMA_VERSION};
use tokio::sync::watch;

/// One prompt job to run.
pub struct Job {
    pub episode: String,
    pub prompt: String,
    pub model: String,
    pub text: String,
    pub max_tokens: u32,
}

pub struct Setup {
    pub llm_url: String,
    pub limits: LimitsConfig,
    pub minute: Duration,
    pub retry: RetryPolicy,
    pub client_timeout: Duration,
    pub concurrency: usize,
}

pub struct Finished {
    pub db: Db,
    #[allow(dead_code)] // read by the benchmark, not the storm test
    pub makespan: Duration,
    _dir: tempfile::TempDir,
}

pub async fn run(setup: Setup, jobs: Vec<Job>) -> Finished {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let spec = QueueSpec {
        max_receive_count: 50,
        ..QueueSpec::prompts()
    };
    db.declare_queue(&spec).expect("declare");
    let blobs = Arc::new(FileBlobStore::new(dir.path()));
    for job in &jobs {
        let input = PromptInput {
            system: "You are a test.".into(),
            user: format!(
                "{} {}: summarise.\n\n{TRANSCRIPT_MARKER}",
                job.episode, job.prompt
            ),
            transcript: job.text.clone(),
            ..PromptInput::default()
        };
        let key = format!(
            "episodes/{}/prompts/{}.v1.input.json",
            job.episode, job.prompt
        );
        let input = blobs
            .put(&key, serde_json::to_vec(&input).expect("json"))
            .await
            .expect("put");
        db.plan_prompts(&job.episode, &[(job.prompt.clone(), 1, job.model.clone())])
            .await
            .expect("plan");
        let message = PromptJob {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: job.episode.clone(),
            correlation_id: "c".into(),
            prompt_id: job.prompt.clone(),
            prompt_version: 1,
            model: job.model.clone(),
            max_tokens: job.max_tokens,
            temperature: 0.2,
            input,
            output_key: format!("episodes/{}/prompts/{}.md", job.episode, job.prompt),
        };
        let group = format!("{}:{}", job.episode, job.prompt);
        db.send(
            PROMPT_QUEUE,
            &serde_json::to_string(&message).expect("json"),
            Some(&group),
            Some(&group),
        )
        .expect("send");
    }
    let handler = InvokeHandler {
        store: Arc::new(db.clone()),
        blobs,
        llm: Arc::new(OpenAiCompatible::new(
            &setup.llm_url,
            None,
            setup.client_timeout,
        )),
        throttle: Arc::new(Throttle::new(setup.limits, setup.minute)),
        retry: setup.retry,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let worker = tokio::spawn(
        Worker::new(db.clone(), spec, Arc::new(handler), setup.concurrency).run(stop_rx),
    );
    // A guard against hanging forever, not a performance assertion.
    while db.pending(&[PROMPT_QUEUE]).expect("pending") > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "prompt queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let makespan = start.elapsed();
    stop_tx.send(true).expect("stop");
    worker.await.expect("worker");
    Finished {
        db,
        makespan,
        _dir: dir,
    }
}
