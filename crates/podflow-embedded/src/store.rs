//! [`EpisodeStore`] over SQLite: the local twin of the DynamoDB table.

use std::collections::BTreeMap;

use async_trait::async_trait;
use podflow_core::{
    EpisodeRecord, EpisodeStore, PortError, PromptState, PromptStatus, PromptUpdate, StepState,
    StepStatus,
};
use podflow_events::{BlobRef, EventEnvelope};
use rusqlite::{OptionalExtension, params};

use crate::{Db, DbError, now_ms};

fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::storage(
        "embedded store",
        format!("stored {what} is unreadable: {e}"),
    )
}

fn sql(e: rusqlite::Error) -> PortError {
    DbError::Sql(e).into()
}

#[async_trait]
impl EpisodeStore for Db {
    async fn upsert_episode(&self, record: &EpisodeRecord) -> Result<bool, PortError> {
        let body = serde_json::to_string(record).map_err(|e| corrupt("episode", e))?;
        let n = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO episodes(episode_id, record, created_at) VALUES(?1,?2,?3)",
                params![record.episode_id, body, record.created_at_ms],
            )
            .map_err(sql)?;
        Ok(n == 1)
    }

    async fn episode(&self, episode_id: &str) -> Result<Option<EpisodeRecord>, PortError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM episodes WHERE episode_id=?1",
                [episode_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("episode", e)))
            .transpose()
    }

    async fn episodes(&self) -> Result<Vec<EpisodeRecord>, PortError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT record FROM episodes ORDER BY created_at, episode_id")
            .map_err(sql)?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        rows.iter()
            .map(|b| serde_json::from_str(b).map_err(|e| corrupt("episode", e)))
            .collect()
    }

    async fn step_started(&self, episode_id: &str, step: &str) -> Result<(), PortError> {
        self.conn()
            .execute(
                "INSERT INTO steps(episode_id, step, status, attempts, started_at) VALUES(?1,?2,'running',1,?3)
                 ON CONFLICT(episode_id, step) DO UPDATE SET status='running', attempts=attempts+1,
                   started_at=excluded.started_at, finished_at=NULL, note=NULL",
                params![episode_id, step, now_ms()],
            )
            .map_err(sql)?;
        Ok(())
    }

    async fn step_finished(
        &self,
        episode_id: &str,
        step: &str,
        status: StepStatus,
        note: Option<&str>,
    ) -> Result<(), PortError> {
        let now = now_ms();
        self.conn()
            .execute(
                "INSERT INTO steps(episode_id, step, status, attempts, started_at, finished_at, note) VALUES(?1,?2,?3,1,?4,?4,?5)
                 ON CONFLICT(episode_id, step) DO UPDATE SET status=excluded.status, finished_at=excluded.finished_at, note=excluded.note",
                params![episode_id, step, status.as_str(), now, note],
            )
            .map_err(sql)?;
        Ok(())
    }

    async fn steps(&self, episode_id: &str) -> Result<Vec<StepState>, PortError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT step, status, attempts, started_at, finished_at, note FROM steps WHERE episode_id=?1 ORDER BY started_at, rowid",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([episode_id], |r| {
                Ok(StepState {
                    step: r.get(0)?,
                    status: StepStatus::parse(&r.get::<_, String>(1)?),
                    attempts: r.get(2)?,
                    started_at_ms: r.get(3)?,
                    finished_at_ms: r.get(4)?,
                    note: r.get(5)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    async fn work_result(&self, key: &str) -> Result<Option<serde_json::Value>, PortError> {
        let body: Option<String> = self
            .conn()
            .query_row("SELECT result FROM work WHERE key=?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("work result", e)))
            .transpose()
    }

    async fn record_work(
        &self,
        key: &str,
        episode_id: &str,
        result: &serde_json::Value,
    ) -> Result<(), PortError> {
        let kind = key.split(':').next().unwrap_or(key);
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO work(key, result, created_at) VALUES(?1,?2,?3)
             ON CONFLICT(key) DO UPDATE SET result=excluded.result",
            params![key, result.to_string(), now],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO work_log(kind, key, episode_id, at) VALUES(?1,?2,?3,?4)",
            params![kind, key, episode_id, now],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    async fn work_count(&self, kind: &str, episode_id: &str) -> Result<u32, PortError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM work_log WHERE kind=?1 AND episode_id=?2",
                params![kind, episode_id],
                |r| r.get(0),
            )
            .map_err(sql)
    }

    async fn plan_prompts(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
    ) -> Result<(), PortError> {
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        for (id, version, model) in prompts {
            tx.execute(
                "INSERT INTO prompts(episode_id, prompt_id, prompt_version, model, status, updated_at) VALUES(?1,?2,?3,?4,'queued',?5)
                 ON CONFLICT(episode_id, prompt_id) DO UPDATE SET prompt_version=excluded.prompt_version,
                   model=excluded.model, status='queued', attempts=0, last_error=NULL, output=NULL,
                   updated_at=excluded.updated_at
                 WHERE prompts.status!='completed' OR prompts.prompt_version!=excluded.prompt_version",
                params![episode_id, id, version, model, now],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    async fn update_prompt(
        &self,
        episode_id: &str,
        prompt_id: &str,
        update: &PromptUpdate,
    ) -> Result<(), PortError> {
        let now = now_ms();
        let conn = self.conn();
        let result = match update {
            PromptUpdate::Running { attempt } => conn.execute(
                "UPDATE prompts SET status='running', attempts=?3, updated_at=?4 WHERE episode_id=?1 AND prompt_id=?2",
                params![episode_id, prompt_id, attempt, now],
            ),
            PromptUpdate::Retrying { attempt, error } => conn.execute(
                "UPDATE prompts SET status='queued', attempts=?3, last_error=?4, updated_at=?5 WHERE episode_id=?1 AND prompt_id=?2",
                params![episode_id, prompt_id, attempt, error, now],
            ),
            PromptUpdate::Completed {
                attempt,
                output,
                input_tokens,
                output_tokens,
            } => conn.execute(
                "UPDATE prompts SET status='completed', attempts=?3, output=?4, input_tokens=?5, output_tokens=?6,
                   last_error=NULL, updated_at=?7 WHERE episode_id=?1 AND prompt_id=?2",
                params![
                    episode_id,
                    prompt_id,
                    attempt,
                    serde_json::to_string(output).unwrap_or_default(),
                    input_tokens,
                    output_tokens,
                    now
                ],
            ),
            PromptUpdate::Failed { attempt, error } => conn.execute(
                "UPDATE prompts SET status='failed', attempts=?3, last_error=?4, updated_at=?5 WHERE episode_id=?1 AND prompt_id=?2",
                params![episode_id, prompt_id, attempt, error, now],
            ),
        };
        result.map(|_| ()).map_err(sql)
    }

    async fn prompts(&self, episode_id: &str) -> Result<Vec<PromptState>, PortError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT prompt_id, prompt_version, model, status, attempts, last_error, output, input_tokens, output_tokens
                 FROM prompts WHERE episode_id=?1 ORDER BY prompt_id",
            )
            .map_err(sql)?;
        let rows: Vec<(PromptState, Option<String>)> = stmt
            .query_map([episode_id], |r| {
                Ok((
                    PromptState {
                        prompt_id: r.get(0)?,
                        prompt_version: r.get(1)?,
                        model: r.get(2)?,
                        status: PromptStatus::parse(&r.get::<_, String>(3)?),
                        attempts: r.get(4)?,
                        last_error: r.get(5)?,
                        output: None,
                        input_tokens: r.get(7)?,
                        output_tokens: r.get(8)?,
                    },
                    r.get(6)?,
                ))
            })
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        rows.into_iter()
            .map(|(mut state, output)| {
                state.output = output
                    .map(|o| {
                        serde_json::from_str::<BlobRef>(&o).map_err(|e| corrupt("prompt output", e))
                    })
                    .transpose()?;
                Ok(state)
            })
            .collect()
    }

    async fn put_artifact(
        &self,
        episode_id: &str,
        name: &str,
        blob: &BlobRef,
    ) -> Result<(), PortError> {
        let body = serde_json::to_string(blob).map_err(|e| corrupt("artifact", e))?;
        self.conn()
            .execute(
                "INSERT INTO artifacts(episode_id, name, blob) VALUES(?1,?2,?3)
                 ON CONFLICT(episode_id, name) DO UPDATE SET blob=excluded.blob",
                params![episode_id, name, body],
            )
            .map_err(sql)?;
        Ok(())
    }

    async fn artifacts(&self, episode_id: &str) -> Result<BTreeMap<String, BlobRef>, PortError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT name, blob FROM artifacts WHERE episode_id=?1")
            .map_err(sql)?;
        let rows: Vec<(String, String)> = stmt
            .query_map([episode_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        rows.into_iter()
            .map(|(n, b)| {
                Ok((
                    n,
                    serde_json::from_str(&b).map_err(|e| corrupt("artifact", e))?,
                ))
            })
            .collect()
    }

    async fn claim_revision(
        &self,
        episode_id: &str,
        fingerprint: &str,
    ) -> Result<(u32, bool), PortError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let latest: Option<(u32, String)> = tx
            .query_row(
                "SELECT revision, fingerprint FROM summaries WHERE episode_id=?1 ORDER BY revision DESC LIMIT 1",
                [episode_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
        let claim = match latest {
            Some((rev, fp)) if fp == fingerprint => (rev, false),
            other => {
                let rev = other.map_or(1, |(r, _)| r + 1);
                tx.execute(
                    "INSERT INTO summaries(episode_id, revision, fingerprint, claimed_at) VALUES(?1,?2,?3,?4)",
                    params![episode_id, rev, fingerprint, now_ms()],
                )
                .map_err(sql)?;
                (rev, true)
            }
        };
        tx.commit().map_err(sql)?;
        Ok(claim)
    }

    async fn save_summary(
        &self,
        episode_id: &str,
        revision: u32,
        envelope: &EventEnvelope,
    ) -> Result<(), PortError> {
        let body = serde_json::to_string(envelope).map_err(|e| corrupt("summary", e))?;
        self.conn()
            .execute(
                "UPDATE summaries SET envelope=?3 WHERE episode_id=?1 AND revision=?2",
                params![episode_id, revision, body],
            )
            .map_err(sql)?;
        Ok(())
    }

    async fn summary(
        &self,
        episode_id: &str,
        revision: Option<u32>,
    ) -> Result<Option<EventEnvelope>, PortError> {
        let body: Option<Option<String>> = self
            .conn()
            .query_row(
                "SELECT envelope FROM summaries WHERE episode_id=?1 AND (?2 IS NULL OR revision=?2)
                 ORDER BY revision DESC LIMIT 1",
                params![episode_id, revision],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        body.flatten()
            .map(|b| serde_json::from_str(&b).map_err(|e| corrupt("summary", e)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn meets_the_episode_store_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        podflow_fakes::store_contract::check_episode_store(std::sync::Arc::new(db)).await;
    }
}
