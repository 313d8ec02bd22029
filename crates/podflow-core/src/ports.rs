//! Ports: the small traits handlers (and the operator's commands) depend on. Each has a
//! local adapter (`podflow-embedded`, `podflow-speech`) and an AWS one (`podflow-aws`);
//! handlers never know which.
//!
//! One file on purpose: the ports are the contract between handlers and adapters, read
//! together.

use std::{path::PathBuf, time::Duration};

use async_trait::async_trait;
use podflow_events::{BlobRef, EventEnvelope};
use serde::{Deserialize, Serialize};

use crate::PortError;

/// Milliseconds since the Unix epoch: the timestamps every store writes.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Stored bytes addressed by key (S3 objects, or files under the data directory).
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<BlobRef, PortError>;
    /// Moves a finished file (written by ffmpeg, say) into the store under `key`, with the
    /// SHA-256 and size the caller read as it wrote or copied it
    /// (`podflow_media::store_file` hashes a file first): an episode of gigabytes is not
    /// read a second time to hash it.
    async fn put_hashed_file(
        &self,
        key: &str,
        file: &std::path::Path,
        sha256: &str,
        size: u64,
    ) -> Result<BlobRef, PortError>;
    async fn get(&self, blob: &BlobRef) -> Result<Vec<u8>, PortError>;
    /// The same bytes under `key`, copied inside the store (S3's CopyObject, a file copy
    /// locally): a cached result reused for another episode is not downloaded and stored
    /// again.
    async fn copy(&self, blob: &BlobRef, key: &str) -> Result<BlobRef, PortError>;
    /// An object already in the store (an upload) with its size and SHA-256, read as a
    /// stream: episodes can be gigabytes.
    async fn digest(&self, key: &str) -> Result<BlobRef, PortError>;
    /// A path on this machine for tools that need one (ffmpeg, whisper); `None` for remote
    /// stores, whose adapters download first.
    fn local_path(&self, blob: &BlobRef) -> Option<PathBuf>;
    /// A scratch path on this machine where a tool may write before `put_hashed_file`.
    fn scratch_path(&self, name: &str) -> PathBuf;
    /// A link a person can open: a pre-signed GET valid for `valid_for` on S3, a `file://`
    /// URL locally.
    async fn share_url(
        &self,
        blob: &BlobRef,
        valid_for: std::time::Duration,
    ) -> Result<String, PortError>;
    /// The bucket this store keeps its objects in (S3); `None` for a local store. A
    /// [`BlobRef`] naming another bucket is not this stack's, and a consumer refuses it.
    fn bucket(&self) -> Option<&str> {
        None
    }
}

/// Where an episode came from and what identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    pub episode_id: String,
    pub correlation_id: String,
    pub original_name: String,
    pub source: BlobRef,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Done,
    Failed,
}

impl StepStatus {
    /// The status a store wrote with [`StepStatus::as_str`]; anything else reads as running.
    pub fn parse(stored: &str) -> Self {
        match stored {
            "done" => StepStatus::Done,
            "failed" => StepStatus::Failed,
            _ => StepStatus::Running,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
    }
}

/// One pipeline step of one episode (ingest, transcode, transcribe, dispatch, publish).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub step: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// What went wrong (failed), or a remark such as "reused earlier work" (done).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl PromptStatus {
    /// The status a store wrote with [`PromptStatus::as_str`]; anything else reads as queued.
    pub fn parse(stored: &str) -> Self {
        match stored {
            "running" => PromptStatus::Running,
            "completed" => PromptStatus::Completed,
            "failed" => PromptStatus::Failed,
            _ => PromptStatus::Queued,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PromptStatus::Queued => "queued",
            PromptStatus::Running => "running",
            PromptStatus::Completed => "completed",
            PromptStatus::Failed => "failed",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, PromptStatus::Completed | PromptStatus::Failed)
    }
}

/// A prompt the dispatcher planned for an episode, and how it is going.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptState {
    pub prompt_id: String,
    pub prompt_version: u32,
    pub model: String,
    pub status: PromptStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub output: Option<BlobRef>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Deliveries the provider throttled: they do not count as failed attempts.
    pub throttles: u32,
    /// When the provider first throttled this prompt (ms since the epoch): the start of its
    /// throttling time budget.
    pub throttled_since_ms: Option<i64>,
}

/// A change to a prompt's state.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptUpdate {
    Running {
        attempt: u32,
    },
    Retrying {
        attempt: u32,
        error: String,
    },
    /// The provider asked to slow down: back in the queue, the throttle counted (not as a
    /// failed attempt) and the budget's start kept from the first throttle.
    Throttled {
        attempt: u32,
        error: String,
    },
    Completed {
        attempt: u32,
        output: BlobRef,
        input_tokens: u32,
        output_tokens: u32,
    },
    Failed {
        attempt: u32,
        error: String,
    },
}

impl PromptUpdate {
    /// The status the prompt moves to: a retry puts it back in the queue.
    pub fn status(&self) -> PromptStatus {
        match self {
            PromptUpdate::Running { .. } => PromptStatus::Running,
            PromptUpdate::Retrying { .. } | PromptUpdate::Throttled { .. } => PromptStatus::Queued,
            PromptUpdate::Completed { .. } => PromptStatus::Completed,
            PromptUpdate::Failed { .. } => PromptStatus::Failed,
        }
    }

    pub fn attempt(&self) -> u32 {
        match self {
            PromptUpdate::Running { attempt }
            | PromptUpdate::Retrying { attempt, .. }
            | PromptUpdate::Throttled { attempt, .. }
            | PromptUpdate::Completed { attempt, .. }
            | PromptUpdate::Failed { attempt, .. } => *attempt,
        }
    }
}

/// Per-episode state (DynamoDB on AWS, SQLite locally). Every write is idempotent, so a
/// duplicate delivery or a retry after a crash leaves the same state.
#[async_trait]
pub trait EpisodeStore: Send + Sync {
    /// Records an episode; returns false if it was already known (nothing changes then).
    async fn upsert_episode(&self, record: &EpisodeRecord) -> Result<bool, PortError>;
    async fn episode(&self, episode_id: &str) -> Result<Option<EpisodeRecord>, PortError>;
    async fn episodes(&self) -> Result<Vec<EpisodeRecord>, PortError>;

    async fn step_started(&self, episode_id: &str, step: &str) -> Result<(), PortError>;
    async fn step_finished(
        &self,
        episode_id: &str,
        step: &str,
        status: StepStatus,
        note: Option<&str>,
    ) -> Result<(), PortError>;
    async fn steps(&self, episode_id: &str) -> Result<Vec<StepState>, PortError>;

    /// The stored result of expensive work, by content key (see [`crate::content::work_key`]).
    async fn work_result(&self, key: &str) -> Result<Option<serde_json::Value>, PortError>;
    /// Stores a result of expensive work that was just done, and logs that it was done.
    async fn record_work(
        &self,
        key: &str,
        episode_id: &str,
        result: &serde_json::Value,
    ) -> Result<(), PortError>;
    /// How many times work of this kind was actually executed for an episode (the log
    /// behind "never transcribed twice").
    async fn work_count(&self, kind: &str, episode_id: &str) -> Result<u32, PortError>;

    /// Adds planned prompts; a prompt already planned at the same version keeps its state.
    async fn plan_prompts(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
    ) -> Result<(), PortError>;
    /// Queues prompts again from scratch, completed or not: a person rejected their
    /// outputs, so they run once more (the new output replaces the old).
    async fn requeue_prompts(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
    ) -> Result<(), PortError>;
    async fn update_prompt(
        &self,
        episode_id: &str,
        prompt_id: &str,
        update: &PromptUpdate,
    ) -> Result<(), PortError>;
    async fn prompts(&self, episode_id: &str) -> Result<Vec<PromptState>, PortError>;

    /// Names a stored output of an episode (`audio`, `transcript`...).
    async fn put_artifact(
        &self,
        episode_id: &str,
        name: &str,
        blob: &BlobRef,
    ) -> Result<(), PortError>;
    async fn artifacts(
        &self,
        episode_id: &str,
    ) -> Result<std::collections::BTreeMap<String, BlobRef>, PortError>;

    /// Records the outcome `fingerprint` as the episode's next summary revision with the
    /// envelope `envelope_for(revision)`, in one atomic write; unless the latest revision has
    /// the same fingerprint, whose stored envelope comes back instead (`new: false`). Two
    /// publishers racing on one outcome share one revision, and a crash never leaves a
    /// revision without its envelope.
    async fn record_revision(
        &self,
        episode_id: &str,
        fingerprint: &str,
        envelope_for: &EnvelopeFor<'_>,
    ) -> Result<StoredRevision, PortError>;
    /// A stored summary: the given revision, or the latest with `None`.
    async fn summary(
        &self,
        episode_id: &str,
        revision: Option<u32>,
    ) -> Result<Option<EventEnvelope>, PortError>;
}

/// Builds a summary revision's envelope from its number.
pub type EnvelopeFor<'a> = dyn Fn(u32) -> EventEnvelope + Send + Sync + 'a;

/// A summary revision as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRevision {
    pub revision: u32,
    pub envelope: EventEnvelope,
    /// Whether this call recorded it (else an earlier delivery did, for the same outcome).
    pub new: bool,
}

/// One delivery of a message (a bus event or a queue job) to a handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub body: String,
    /// 1 on the first delivery (SQS `ApproximateReceiveCount`).
    pub attempt: u32,
    /// When the runtime stops waiting for this delivery (a Lambda invocation's deadline);
    /// a handler that would wait past it returns the message with a delay instead.
    pub deadline: Option<std::time::Instant>,
}

/// What a handler made of a delivery. The runtime applies it atomically: acknowledging the
/// message and publishing `emit` happen together or not at all.
#[derive(Debug)]
pub enum Outcome {
    /// Processed; publish these events and send these jobs.
    Done {
        emit: Vec<EventEnvelope>,
        jobs: Vec<QueuedJob>,
    },
    /// Not processed; deliver again after `delay` (backoff).
    Retry { delay: Duration, reason: String },
    /// Will never succeed; move to the dead-letter queue with `reason`, publishing `emit`
    /// (e.g. a `PromptFailed`) in the same step.
    DeadLetter {
        emit: Vec<EventEnvelope>,
        reason: String,
    },
}

impl Outcome {
    pub fn done(emit: Vec<EventEnvelope>) -> Self {
        Outcome::Done {
            emit,
            jobs: Vec::new(),
        }
    }
    pub fn nothing() -> Self {
        Self::done(Vec::new())
    }
}

/// A service's entry point: one message in, one [`Outcome`] out. Lambda wrappers and the
/// local runner both drive handlers through this trait.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// The service name (also its inbox queue locally).
    fn name(&self) -> &'static str;
    async fn handle(&self, delivery: &Delivery) -> Outcome;
    /// Ends a message that will not be delivered again: its receives are used up (each
    /// attempt asked for a retry, or the process died during it). Records its step or
    /// prompt as failed and returns the `…Failed` events that say so, in a dead letter with
    /// `reason`, so nothing downstream waits for it forever. A `Retry` means the failure
    /// could not be recorded yet (the store is down); the runner asks again. By default
    /// the message is only dead-lettered.
    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        let _ = delivery;
        Outcome::DeadLetter {
            emit: Vec::new(),
            reason: reason.to_owned(),
        }
    }
}

/// A job for a queue other than the bus (the prompt FIFO queue), sent atomically with the
/// handler's acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    pub queue: String,
    /// FIFO message group: messages of one group are processed in order, one at a time.
    pub group_id: String,
    /// FIFO deduplication id: a second send with the same id inside the window is dropped.
    pub dedup_id: String,
    pub body: String,
}

/// What a media file holds, as far as podflow cares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    pub duration_seconds: f64,
    pub codec: String,
    pub channels: u32,
    pub sample_rate: u32,
}

/// Reads what a media file holds (ffprobe locally).
#[async_trait]
pub trait MediaProbe: Send + Sync {
    async fn probe(&self, file: &std::path::Path) -> Result<MediaInfo, PortError>;
}

/// Options for the podcast MP3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mp3Options {
    pub bitrate_kbps: u32,
    /// ID3 title.
    pub title: String,
}

/// Makes the podcast MP3 (ffmpeg locally, MediaConvert on AWS).
#[async_trait]
pub trait Transcoder: Send + Sync {
    async fn to_mp3(
        &self,
        input: &std::path::Path,
        output: &std::path::Path,
        options: &Mp3Options,
    ) -> Result<MediaInfo, PortError>;
}

/// Where notifications go (a Slack incoming webhook, an SNS topic).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Names the target for notes and logs, without secrets.
    fn describe(&self) -> String;
    /// `message` is a Slack Block Kit message (`text` + `blocks`); other targets use
    /// `text` and pass the whole message to machine subscribers.
    async fn send(&self, message: &serde_json::Value) -> Result<(), PortError>;
}

/// Publishes events on the bus (EventBridge PutEvents on AWS). Locally the embedded
/// runtime publishes inside the acknowledging transaction instead.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// All or an error: entries that failed are retried by the adapter, and what still
    /// fails is reported, never dropped.
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), PortError>;
}

/// Sends jobs to their queue (SQS FIFO on AWS), with their group and dedup ids.
#[async_trait]
pub trait JobSender: Send + Sync {
    async fn send_jobs(&self, jobs: &[QueuedJob]) -> Result<(), PortError>;
}

/// A message that will never succeed, with the reason, on its way to a dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub reason: String,
    /// The FIFO group of the original message (kept so a redrive stays in order).
    pub group_id: Option<String>,
}

/// What a queue consumer can do to its deliveries besides acknowledging them.
#[async_trait]
pub trait DeliveryControl: Send + Sync {
    /// Hides a delivery for `delay` before it is received again (backoff without sleeping).
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError>;
    /// Moves a message to the dead-letter queue now, with its reason.
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError>;
}

/// Counts deliveries of one event to one consumer, for a transport that redelivers without
/// saying which attempt it is: Lambda retries a failed asynchronous invocation (an
/// EventBridge rule's target) with the same event and no attempt number, then hands it to
/// the on-failure destination, where nothing would fail its step.
#[async_trait]
pub trait DeliveryCounter: Send + Sync {
    /// Records one more delivery of `event_id` to `consumer` and returns how many there
    /// have been, this one included.
    async fn count_delivery(&self, consumer: &str, event_id: &str) -> Result<u32, PortError>;
}

/// Cuts clips and stitches a trailer from the podcast MP3 (ffmpeg).
#[async_trait]
pub trait ClipCutter: Send + Sync {
    /// `[start, end)` seconds of `input` as an MP3 at `output`, with `fade` seconds of fade
    /// in and out so a clip never starts or stops on a click.
    async fn cut(
        &self,
        input: &std::path::Path,
        start: f64,
        end: f64,
        fade: f64,
        output: &std::path::Path,
    ) -> Result<(), PortError>;
    /// The parts played one after another as one MP3.
    async fn join(&self, parts: &[PathBuf], output: &std::path::Path) -> Result<(), PortError>;
}

/// Speech to text (local Whisper, Amazon Transcribe on AWS).
#[async_trait]
pub trait SpeechToText: Send + Sync {
    /// Engine name recorded in transcripts (`whisper.cpp`).
    fn engine(&self) -> &str;
    /// Model name recorded in transcripts (`tiny.en`).
    fn model(&self) -> &str;
    /// Identifies the exact weights, so a model change is new work and not a cache hit.
    fn model_fingerprint(&self) -> &str;
    /// Loads the model if needed; an error says what is wrong with the setup.
    fn prepare(&self) -> Result<(), PortError> {
        Ok(())
    }
    /// Something the step's note should tell the user after `prepare` (e.g. that another
    /// engine stood in for one that could not load).
    fn notice(&self) -> Option<String> {
        None
    }
    /// `duration_seconds`: the audio's length when the caller knows it (the upload event
    /// carries it), so that the engine does not probe the file again.
    async fn transcribe(
        &self,
        audio: &std::path::Path,
        duration_seconds: Option<f64>,
    ) -> Result<crate::transcript::Transcript, PortError>;
}

/// The stored input of a prompt job (written by the dispatcher, read by the invoker): what
/// is sent to the model. Stored as a blob because it embeds the transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptInput {
    pub system: String,
    /// The rendered template; where the transcript goes it holds [`TRANSCRIPT_MARKER`].
    pub user: String,
    /// The transcript view, kept apart so an invoker can split it when it does not fit the
    /// model's context.
    #[serde(default)]
    pub transcript: String,
    /// Where in `user` (byte offsets) the template put [`TRANSCRIPT_MARKER`]. Only there is
    /// the transcript inserted: a value that holds the marker's text (an episode file named
    /// `{{transcript}}.mp3` as the title) stays text. Absent from inputs stored before it
    /// existed, which have every marker replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_at: Option<Vec<usize>>,
}

/// Where a [`PromptInput`]'s transcript is inserted into its `user` text.
pub const TRANSCRIPT_MARKER: &str = "{{transcript}}";

impl PromptInput {
    /// The user message with `transcript` (the whole transcript, or notes on it) in place.
    pub fn user_with(&self, transcript: &str) -> String {
        let Some(slots) = &self.transcript_at else {
            return self.user.replace(TRANSCRIPT_MARKER, transcript);
        };
        let mut out = String::new();
        let mut from = 0;
        for &at in slots {
            // A slot that holds no marker (an input edited by hand) is left alone.
            let holds_marker = self
                .user
                .get(at..)
                .is_some_and(|rest| rest.starts_with(TRANSCRIPT_MARKER));
            if at < from || !holds_marker {
                continue;
            }
            out.push_str(&self.user[from..at]);
            out.push_str(transcript);
            from = at + TRANSCRIPT_MARKER.len();
        }
        out.push_str(&self.user[from..]);
        out
    }
}

/// A batch transcription job (Amazon Transcribe): started once per audio, finished by the
/// service later, which announces it with a state-change event.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionJobSpec {
    /// Derived from the audio's hash, so starting the same audio twice is a no-op.
    pub name: String,
    pub media: BlobRef,
    /// Where the service writes its transcript JSON, in the blob store's bucket.
    pub output_key: String,
    pub max_speakers: u32,
}

/// Where a transcription job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Running,
    /// `language`: the language the job transcribed in, as the service names it (`de-DE`),
    /// given or identified, when it says.
    Completed {
        language: Option<String>,
    },
    Failed(String),
}

/// A message waiting in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterMessage {
    pub message_id: String,
    /// The queue it came from, and goes back to when replayed.
    pub source_queue: String,
    pub body: String,
    pub group_id: Option<String>,
    /// Receives before it was dead-lettered.
    pub receive_count: u32,
    /// Why podflow dead-lettered it; none when the queue moved it after its last receive.
    pub reason: Option<String>,
}

/// Picks the dead letters to replay.
pub type PickLetter<'a> = dyn Fn(&DeadLetterMessage) -> bool + Send + Sync + 'a;
/// The body a dead letter goes back with; `Err` keeps it where it is, with that reason.
pub type RewriteLetter<'a> =
    dyn Fn(&DeadLetterMessage) -> Result<String, String> + Send + Sync + 'a;

/// What a replay did.
#[derive(Debug, Default, PartialEq)]
pub struct ReplayReport {
    /// The queue moves every message itself (SQS's move task): its handle.
    pub move_task: Option<String>,
    /// Messages sent back to their queue, by dead-letter message id.
    pub moved: Vec<String>,
    /// Messages left in the dead-letter queue, with why (the rewrite refused them).
    pub refused: Vec<(String, String)>,
}

/// The dead-letter queues an operator inspects and replays (`podflow dlq`): the local
/// database's, or a deployed stack's SQS DLQ.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Where the letters are, for messages ("the local dead-letter queues", a queue URL).
    fn location(&self) -> String;
    /// Everything waiting; nothing is removed.
    async fn list(&self) -> Result<Vec<DeadLetterMessage>, PortError>;
    /// Moves the letters `pick` picks (all without it) back to their queue with the body
    /// `rewrite` gives (unchanged without it), with their group and a fresh receive count.
    async fn replay(
        &self,
        pick: Option<&PickLetter<'_>>,
        rewrite: Option<&RewriteLetter<'_>>,
    ) -> Result<ReplayReport, PortError>;
}

/// Starts transcription jobs and reads their state (Amazon Transcribe).
#[async_trait]
pub trait TranscriptionJobs: Send + Sync {
    /// Starts `job`; `Ok(false)` when a job of that name already exists.
    async fn start(&self, job: &TranscriptionJobSpec) -> Result<bool, PortError>;
    async fn state(&self, name: &str) -> Result<JobState, PortError>;
}

/// A transcode job (AWS Elemental MediaConvert): the podcast MP3 of one audio file.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeJobSpec {
    pub media: BlobRef,
    /// The output's key without its extension (the service adds `.mp3`).
    pub output_base: String,
    pub bitrate_kbps: u32,
    /// The same for the same audio and options, so a repeated create returns the job that
    /// already exists instead of transcoding again.
    pub idempotency_token: String,
    /// Carried by the job into its state-change events.
    pub metadata: Vec<(String, String)>,
}

/// Creates transcode jobs (MediaConvert); their ends arrive as events.
#[async_trait]
pub trait TranscodeJobs: Send + Sync {
    /// The job's id.
    async fn create(&self, job: &TranscodeJobSpec) -> Result<String, PortError>;
}
