//! The v1 event details. Each carries `schema_version`, `episode_id` and `correlation_id`,
//! and refers to large payloads through [`BlobRef`] pointers — never inline, because SQS and
//! EventBridge cap a payload at 256 KB and transcripts or model output can exceed that.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{
    BUCKET_PATTERN, CORRELATION_ID_PATTERN, EPISODE_ID_PATTERN, KEY_PATTERN, MAX_KEY_CHARS,
    PROMPT_ID_PATTERN,
};

/// Implemented by every event detail: where it comes from and how it is labelled.
pub trait PodflowEvent: Serialize {
    /// EventBridge `detail-type`. A new major version gets a suffix (`EpisodeSummarized.v2`).
    const DETAIL_TYPE: &'static str;
    /// EventBridge `source`: the producing service.
    const SOURCE: &'static str;
}

/// A pointer to stored bytes: an S3 object (`bucket` set) or a file under the local data
/// directory (`bucket` absent, `key` relative to the data directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlobRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BUCKET_PATTERN))]
    pub bucket: Option<String>,
    /// Relative and `/`-separated, at most 1024 bytes (S3's limit), with no empty, `.` or
    /// `..` segment and no control character.
    #[schemars(length(min = 1, max = MAX_KEY_CHARS), regex(pattern = KEY_PATTERN))]
    pub key: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
}

macro_rules! event {
    ($ty:ident, $source:literal) => {
        impl PodflowEvent for $ty {
            const DETAIL_TYPE: &'static str = stringify!($ty);
            const SOURCE: &'static str = $source;
        }
    };
}

/// `schema_version` is `MAJOR.MINOR`; v1 consumers accept any `1.x`.
const VERSION_PATTERN: &str = r"^1\.[0-9]+$";

/// An episode's audio was accepted and recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeUploaded {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    /// The uploaded audio as received.
    pub source: BlobRef,
    /// The file name the producer gave it.
    pub original_name: String,
    /// Duration when the ingest step could probe it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}
event!(EpisodeUploaded, "podflow.ingest");

/// The podcast-ready MP3 exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeTranscoded {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    pub audio: BlobRef,
    pub duration_seconds: f64,
    pub bitrate_kbps: u32,
    /// True when an earlier transcode of the same content was reused.
    pub reused: bool,
}
event!(EpisodeTranscoded, "podflow.transcode-watcher");

/// The transcode could not be done; `reason` says why in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscodeFailed {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(length(min = 1))]
    pub reason: String,
}
event!(TranscodeFailed, "podflow.transcode-watcher");

/// The transcript and subtitles exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeTranscribed {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    /// podflow's normalized `transcript.json`.
    pub transcript: BlobRef,
    pub subtitles_srt: BlobRef,
    pub subtitles_vtt: BlobRef,
    pub duration_seconds: f64,
    pub language: String,
    /// Which engine and model produced it (e.g. `whisper.cpp`, `tiny.en`).
    pub engine: String,
    pub model: String,
    pub segment_count: u32,
    /// True when an earlier transcription of the same content was reused.
    pub reused: bool,
}
event!(EpisodeTranscribed, "podflow.transcriber");

/// Transcription could not be done; `reason` says why in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptionFailed {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(length(min = 1))]
    pub reason: String,
}
event!(TranscriptionFailed, "podflow.transcriber");

/// One prompt to run for one episode: the message on the prompt queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromptJob {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(regex(pattern = PROMPT_ID_PATTERN))]
    pub prompt_id: String,
    #[schemars(range(min = 1))]
    pub prompt_version: u32,
    /// The model to call (resolved at dispatch).
    #[schemars(length(min = 1))]
    pub model: String,
    /// Always explicit: providers reserve it against the tokens-per-minute quota.
    #[schemars(range(min = 1))]
    pub max_tokens: u32,
    pub temperature: f32,
    /// The rendered chat messages (JSON) in storage.
    pub input: BlobRef,
    /// Where the output should be written (data-dir relative key, or S3 key): under
    /// `episodes/<episode_id>/prompts/`, which the invoker checks.
    #[schemars(length(min = 1, max = MAX_KEY_CHARS), regex(pattern = KEY_PATTERN))]
    pub output_key: String,
}
event!(PromptJob, "podflow.prompt-dispatcher");

/// A prompt finished and its output is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromptCompleted {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(regex(pattern = PROMPT_ID_PATTERN))]
    pub prompt_id: String,
    #[schemars(range(min = 1))]
    pub prompt_version: u32,
    pub model: String,
    pub output: BlobRef,
    pub input_tokens: u32,
    pub output_tokens: u32,
    #[schemars(range(min = 1))]
    pub attempts: u32,
}
event!(PromptCompleted, "podflow.bedrock-invoker");

/// How a prompt failure was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Rate limited by the provider (HTTP 429, ThrottlingException...).
    Throttled,
    /// Temporary (5xx, timeouts, connection refused).
    Transient,
    /// Retrying cannot help (validation, access denied, unknown model, bad input).
    Permanent,
}

/// A prompt gave up and its message is in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromptFailed {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(regex(pattern = PROMPT_ID_PATTERN))]
    pub prompt_id: String,
    #[schemars(range(min = 1))]
    pub prompt_version: u32,
    pub model: String,
    #[schemars(length(min = 1))]
    pub reason: String,
    pub kind: FailureKind,
    #[schemars(range(min = 1))]
    pub attempts: u32,
}
event!(PromptFailed, "podflow.bedrock-invoker");

/// Overall state of a summarized episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SummaryStatus {
    /// Every step and every prompt succeeded.
    Complete,
    /// Some prompts or steps failed; what exists is listed.
    Partial,
}

/// A prompt output listed in [`EpisodeSummarized`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromptOutput {
    #[schemars(regex(pattern = PROMPT_ID_PATTERN))]
    pub prompt_id: String,
    pub prompt_version: u32,
    pub model: String,
    pub output: BlobRef,
}

/// A prompt that failed, listed in [`EpisodeSummarized`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailedPrompt {
    #[schemars(regex(pattern = PROMPT_ID_PATTERN))]
    pub prompt_id: String,
    pub prompt_version: u32,
    pub model: String,
    pub reason: String,
}

/// A pipeline step that failed, listed in [`EpisodeSummarized`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailedStep {
    pub step: String,
    pub reason: String,
}

/// A file the publisher made for the show (`show-notes.md`, `chapters.json`,
/// `clips/1.mp3`...), listed in [`EpisodeSummarized`] (since 1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PublishedFile {
    /// Path inside the episode's folder.
    #[schemars(length(min = 1, max = MAX_KEY_CHARS), regex(pattern = KEY_PATTERN))]
    pub name: String,
    pub file: BlobRef,
}

/// What an episode cost, estimated from a price table (since 1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostBlock {
    /// Minutes of audio transcribed.
    #[schemars(range(min = 0.0))]
    pub audio_minutes: f64,
    /// The speech-to-text engine (`whisper.cpp`, `amazon-transcribe`).
    pub transcription_engine: String,
    /// Absent when the price table has no price for the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcription_usd: Option<f64>,
    pub models: Vec<ModelCost>,
    /// The sum of every priced item.
    #[schemars(range(min = 0.0))]
    pub total_usd: f64,
    /// Engines and models the price table has no price for (left out of the total).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
}

/// Tokens one model used for an episode, and what they cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelCost {
    #[schemars(length(min = 1))]
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Absent when the price table has no price for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
}

/// Everything podflow produced for an episode. Public contract for other teams.
///
/// Published once per distinct outcome: `revision` starts at 1 and increments when a later
/// success (a replayed prompt) changes what is available; the same outcome is never
/// published twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeSummarized {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(range(min = 1))]
    pub revision: u32,
    pub status: SummaryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<BlobRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<BlobRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitles_srt: Option<BlobRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitles_vtt: Option<BlobRef>,
    pub outputs: Vec<PromptOutput>,
    pub failed_prompts: Vec<FailedPrompt>,
    pub failed_steps: Vec<FailedStep>,
    /// The show's files made from the outputs (since 1.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PublishedFile>,
    /// Estimated cost (since 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostBlock>,
}
event!(EpisodeSummarized, "podflow.publisher");

/// A summary revision awaiting a person's approval (shows with `approval = "required"`):
/// the candidates they choose from and edit. Nothing is published (no feed item, no tags,
/// no `EpisodeSummarized`) until an [`EpisodeApproved`] for this proposal arrives.
///
/// `proposal` starts at 1 and increments when a new outcome (a re-run prompt) is proposed;
/// the same outcome is never proposed twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeProposed {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(range(min = 1))]
    pub proposal: u32,
    pub status: SummaryStatus,
    /// Suggested titles, best first (may be empty: the file's name is used then).
    pub titles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub chapters: Vec<ProposedChapter>,
    /// The draft files (show notes, chapters…) as they would be published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PublishedFile>,
    /// Prompts that failed (their outputs come from the extractive engine or are missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_prompts: Vec<FailedPrompt>,
}
event!(EpisodeProposed, "podflow.publisher");

/// A chapter in an [`EpisodeProposed`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProposedChapter {
    #[schemars(range(min = 0.0))]
    pub start_time: f64,
    #[schemars(length(min = 1))]
    pub title: String,
}

/// A person approved a proposal, with the title they chose or wrote and, optionally, the
/// summary as they edited it. Sent by `podflow approve`, `podflow serve` or Slack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeApproved {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(range(min = 1))]
    pub proposal: u32,
    #[schemars(length(min = 1, max = 300))]
    pub title: String,
    /// The summary as edited; absent: the proposed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Who approved (`cli`, `web`, a Slack user id).
    #[schemars(length(min = 1))]
    pub approved_by: String,
}
event!(EpisodeApproved, "podflow.approval");

/// A person rejected a proposal, saying why; the prompts in `rerun` run again (at
/// `prompt_version`, on `model`, when given) and their outcome is proposed anew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeRejected {
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub schema_version: String,
    #[schemars(regex(pattern = EPISODE_ID_PATTERN))]
    pub episode_id: String,
    #[schemars(regex(pattern = CORRELATION_ID_PATTERN))]
    pub correlation_id: String,
    #[schemars(range(min = 1))]
    pub proposal: u32,
    #[schemars(length(min = 1))]
    pub note: String,
    /// Prompt ids to run again (empty: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = PROMPT_ID_PATTERN)))]
    pub rerun: Vec<String>,
    /// Run them on this model instead of the one they used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Render them from this version of the prompt catalog (`latest` or a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(latest|[1-9][0-9]*)$"))]
    pub prompt_version: Option<String>,
    #[schemars(length(min = 1))]
    pub rejected_by: String,
}
event!(EpisodeRejected, "podflow.approval");
