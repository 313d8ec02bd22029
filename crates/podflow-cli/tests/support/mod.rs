//! Helpers the CLI's test files share.

use std::path::Path;

use podflow_core::EpisodeStore;
use podflow_embedded::Db;

/// The note of an episode's step, read from the store ("" when it has none).
pub async fn step_note(data: &Path, episode_id: &str, step: &str) -> String {
    let db = Db::open(data).expect("db");
    db.steps(episode_id)
        .await
        .expect("steps")
        .into_iter()
        .find(|s| s.step == step)
        .and_then(|s| s.note)
        .unwrap_or_default()
}
