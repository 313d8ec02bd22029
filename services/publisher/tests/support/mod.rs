//! Shared by the publisher's tests: an episode's state as the upstream services leave it.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use podflow_core::{
    BlobStore, Delivery, EpisodeRecord, EpisodeStore, Outcome, PromptUpdate, StepState, StepStatus,
};
use podflow_embedded::Db;
use podflow_events::{BlobRef, EventEnvelope, PromptCompleted, SCHEMA_VERSION};

/// Writes a `seconds`-long 330 Hz tone as a 128 kbit/s MP3 at `path`: the episode's audio.
pub fn tone_mp3(path: &std::path::Path, seconds: f64) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=330:duration={seconds}"))
        .args(["-codec:a", "libmp3lame", "-b:a", "128k"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made {}", path.display());
}

/// `record` (whose source is the episode's MP3) transcoded, transcribed to `transcript`
/// and dispatched, with `prompts` planned at version 1 on `model`.
pub async fn ready_for_prompts(
    db: &Db,
    record: EpisodeRecord,
    transcript: &BlobRef,
    prompts: &[&str],
    model: &str,
) {
    let episode = record.episode_id.clone();
    let audio = record.source.clone();
    db.upsert_episode(&record).await.expect("episode");
    for step in ["transcode", "transcribe", "dispatch"] {
        db.step_started(&episode, step).await.expect("step");
        db.step_finished(&episode, step, StepStatus::Done, None)
            .await
            .expect("step");
    }
    db.put_artifact(&episode, "audio", &audio).await.expect("a");
    db.put_artifact(&episode, "transcript", transcript)
        .await
        .expect("t");
    let plan: Vec<(String, u32, String)> = prompts
        .iter()
        .map(|p| ((*p).to_owned(), 1, model.to_owned()))
        .collect();
    db.plan_prompts(&episode, &plan).await.expect("plan");
}

/// A prompt of an episode as the invoker completes it: `answer` stored as its output, its
/// state completed with these token counts, and the `PromptCompleted` delivery returned.
pub struct Completion<'a> {
    pub episode: &'a str,
    pub correlation_id: &'a str,
    pub model: &'a str,
    pub prompt: &'a str,
    pub answer: &'a str,
    pub tokens: (u32, u32),
}

impl Completion<'_> {
    pub async fn finish(&self, db: &Db, blobs: &dyn BlobStore) -> Delivery {
        let (input_tokens, output_tokens) = self.tokens;
        let output = blobs
            .put(
                &format!("episodes/{}/prompts/{}.md", self.episode, self.prompt),
                self.answer.as_bytes().to_vec(),
            )
            .await
            .expect("output");
        db.update_prompt(
            self.episode,
            self.prompt,
            &PromptUpdate::Completed {
                attempt: 1,
                output: output.clone(),
                input_tokens,
                output_tokens,
            },
        )
        .await
        .expect("completed");
        delivery(&EventEnvelope::wrap(&PromptCompleted {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: self.episode.into(),
            correlation_id: self.correlation_id.into(),
            prompt_id: self.prompt.into(),
            prompt_version: 1,
            model: self.model.into(),
            output,
            input_tokens,
            output_tokens,
            attempts: 1,
        }))
    }
}

/// `envelope` as its first delivery.
pub fn delivery(envelope: &EventEnvelope) -> Delivery {
    Delivery {
        message_id: envelope.id.clone(),
        body: serde_json::to_string(envelope).expect("json"),
        attempt: 1,
        deadline: None,
    }
}

/// The events a finished outcome emits.
pub fn events_of(outcome: Outcome) -> Vec<EventEnvelope> {
    match outcome {
        Outcome::Done { emit, .. } => emit,
        other => panic!("expected Done, got {other:?}"),
    }
}

/// The state of `episode`'s step `name`, which must exist.
pub async fn step_state(db: &Db, episode: &str, name: &str) -> StepState {
    db.steps(episode)
        .await
        .expect("steps")
        .into_iter()
        .find(|s| s.step == name)
        .unwrap_or_else(|| panic!("no {name} step"))
}
