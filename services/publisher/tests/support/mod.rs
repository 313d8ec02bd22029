//! Shared by the publisher's tests: an episode's state as the upstream services leave it.
use podflow_core::{EpisodeRecord, EpisodeStore, StepStatus};
use podflow_embedded::Db;
use podflow_events::BlobRef;

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
