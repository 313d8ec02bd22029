//! What `run` and `status` show about an episode, read from the store.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use podflow_core::{EpisodeStore, PromptState, PromptStatus, StepState, StepStatus};
use podflow_embedded::Db;
use podflow_events::{CostBlock, EpisodeSummarized};
use serde::Serialize;
use serde_json::json;

/// One line on what an episode cost.
fn cost_line(cost: &CostBlock) -> String {
    let usd = |v: Option<f64>| v.map_or_else(|| "no price".to_owned(), |v| format!("${v:.4}"));
    let mut parts = vec![format!(
        "{:.1} audio min on {} ({})",
        cost.audio_minutes,
        cost.transcription_engine,
        usd(cost.transcription_usd)
    )];
    for m in &cost.models {
        parts.push(format!(
            "{}: {} in / {} out tokens ({})",
            m.model,
            m.input_tokens,
            m.output_tokens,
            usd(m.usd)
        ));
    }
    format!(
        "estimated cost ${:.4}: {}",
        cost.total_usd,
        parts.join(" · ")
    )
}

/// Table cells stay readable; the full text is in `--json` and `podflow dlq list`.
fn shorten(text: &str) -> String {
    const MAX: usize = 110;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

/// An episode's state.
#[derive(Debug, Serialize)]
pub struct EpisodeReport {
    pub episode_id: String,
    pub original_name: String,
    /// `done`, `partial` (some prompts failed), `failed` (a step failed), `in_progress`, or
    /// `awaiting_approval` (a proposal waits for `podflow approve` / `reject`).
    pub status: String,
    pub steps: Vec<StepState>,
    pub prompts: Vec<PromptState>,
    pub summary_revision: Option<u32>,
    /// The show's files of the latest summary, by name.
    pub files: Vec<String>,
    pub cost: Option<CostBlock>,
}

impl EpisodeReport {
    pub async fn load(db: &Db, episode_id: &str) -> anyhow::Result<Option<Self>> {
        let Some(record) = db.episode(episode_id).await? else {
            return Ok(None);
        };
        let steps = db.steps(episode_id).await?;
        let prompts = db.prompts(episode_id).await?;
        let summary = db.summary(episode_id, None).await?;
        let summary_revision = summary
            .as_ref()
            .and_then(|s| s.detail.get("revision"))
            .and_then(|r| r.as_u64())
            .map(|r| r as u32);
        let summary: Option<EpisodeSummarized> = summary.and_then(|s| s.decode().ok());
        let files = summary
            .iter()
            .flat_map(|s| s.files.iter().map(|f| f.name.clone()))
            .collect();
        let cost = summary.and_then(|s| s.cost);
        // A Slack message that could not be sent is shown, but the episode is not failed.
        let step_failed = steps
            .iter()
            .any(|s| s.status == StepStatus::Failed && s.step != "notify");
        let prompt_failed = prompts.iter().any(|p| p.status == PromptStatus::Failed);
        let published = steps
            .iter()
            .any(|s| s.step == "publish" && s.status == StepStatus::Done);
        let unfinished = prompts.iter().any(|p| !p.status.is_terminal());
        // A proposal waits for a person (`podflow approve` / `reject`).
        let awaiting = steps
            .iter()
            .any(|s| s.step == "approve" && s.status == StepStatus::Running);
        let status = if step_failed {
            "failed"
        } else if awaiting && !unfinished {
            "awaiting_approval"
        } else if !published || unfinished {
            "in_progress"
        } else if prompt_failed {
            "partial"
        } else {
            "done"
        };
        Ok(Some(Self {
            episode_id: episode_id.to_owned(),
            original_name: record.original_name,
            status: status.to_owned(),
            steps,
            prompts,
            summary_revision,
            files,
            cost,
        }))
    }

    /// One line for the live progress display.
    pub fn progress_line(&self) -> String {
        let step = |name: &str| match self.steps.iter().find(|s| s.step == name).map(|s| s.status) {
            Some(StepStatus::Done) => format!("{name} ✓"),
            Some(StepStatus::Failed) => format!("{name} ✗"),
            Some(StepStatus::Running) => format!("{name} …"),
            None => format!("{name} ·"),
        };
        let done = self
            .prompts
            .iter()
            .filter(|p| p.status == PromptStatus::Completed)
            .count();
        let failed = self
            .prompts
            .iter()
            .filter(|p| p.status == PromptStatus::Failed)
            .count();
        let mut prompts = format!("prompts {done}/{}", self.prompts.len());
        if failed > 0 {
            prompts.push_str(&format!(" ({failed} failed)"));
        }
        format!(
            "{}  {}  {}  {}  {}  {}",
            self.episode_id,
            step("transcode"),
            step("transcribe"),
            step("dispatch"),
            prompts,
            step("publish")
        )
    }

    pub fn table(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["step", "status", "attempts", "duration", "note"]);
        for s in &self.steps {
            let duration = s
                .finished_at_ms
                .map(|f| format!("{:.1}s", (f - s.started_at_ms).max(0) as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            table.add_row([
                s.step.clone(),
                s.status.as_str().to_owned(),
                s.attempts.to_string(),
                duration,
                shorten(s.note.as_deref().unwrap_or_default()),
            ]);
        }
        for p in &self.prompts {
            table.add_row([
                format!("prompt {} v{}", p.prompt_id, p.prompt_version),
                p.status.as_str().to_owned(),
                p.attempts.to_string(),
                "-".into(),
                match p.status {
                    PromptStatus::Completed => format!(
                        "{} ({} in / {} out tokens)",
                        p.model, p.input_tokens, p.output_tokens
                    ),
                    _ => shorten(p.last_error.as_deref().unwrap_or_default()),
                },
            ]);
        }
        let mut text = format!(
            "{} ({}): {}\n{table}",
            self.episode_id, self.original_name, self.status
        );
        if let Some(cost) = &self.cost {
            text.push_str(&format!("\n{}", cost_line(cost)));
        }
        text
    }

    /// The `--json` object of `podflow run`.
    pub fn run_json(&self, data_dir: &std::path::Path) -> serde_json::Value {
        let dir = data_dir.join("episodes").join(&self.episode_id);
        let path = |name: &str| {
            let p = dir.join(name);
            p.is_file().then(|| p.display().to_string())
        };
        let prompts: serde_json::Map<String, serde_json::Value> = self
            .prompts
            .iter()
            .filter(|p| p.status == PromptStatus::Completed)
            .filter_map(|p| {
                Some((
                    p.prompt_id.clone(),
                    json!(path(&format!("prompts/{}.md", p.prompt_id))?),
                ))
            })
            .collect();
        json!({
            "episode_id": self.episode_id,
            "status": self.status,
            "data_dir": data_dir.display().to_string(),
            "outputs": {
                "audio": path("audio.mp3"),
                "transcript": path("transcript.json"),
                "subtitles_srt": path("subtitles.srt"),
                "subtitles_vtt": path("subtitles.vtt"),
                "episode_summarized": path("episode-summarized.json"),
                "prompts": prompts,
                "files": self.files.iter().filter_map(|f| Some((f.clone(), json!(path(f)?)))).collect::<serde_json::Map<_, _>>(),
            },
            "cost": self.cost,
            "failed_prompts": self.prompts.iter().filter(|p| p.status == PromptStatus::Failed)
                .map(|p| json!({"prompt_id": p.prompt_id, "reason": p.last_error})).collect::<Vec<_>>(),
            "failed_steps": self.steps.iter().filter(|s| s.status == StepStatus::Failed)
                .map(|s| json!({"step": s.step, "reason": s.note})).collect::<Vec<_>>(),
        })
    }
}
