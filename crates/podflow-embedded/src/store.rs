//! [`EpisodeStore`] over SQLite: the local twin of the DynamoDB table.

use std::collections::BTreeMap;

use async_trait::async_trait;
use podflow_core::{
    EnvelopeFor, EpisodeRecord, EpisodeStore, PortError, PromptState, PromptStatus, PromptUpdate,
    StepState, StepStatus, StoredRevision,
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

impl Db {
    /// Puts each prompt as queued from scratch; with `keep_completed`, one completed at the
    /// same version keeps its state (planning), else it is queued again too (a re-run).
    fn queue_prompts(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
        keep_completed: bool,
    ) -> Result<(), PortError> {
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        for (id, version, model) in prompts {
            tx.execute(
                "INSERT INTO prompts(episode_id, prompt_id, prompt_version, model, status, updated_at) VALUES(?1,?2,?3,?4,'queued',?5)
                 ON CONFLICT(episode_id, prompt_id) DO UPDATE SET prompt_version=excluded.prompt_version,
                   model=excluded.model, status='queued', attempts=0, last_error=NULL, output=NULL,
                   throttles=0, throttled_since=NULL, updated_at=excluded.updated_at
                 WHERE ?6=0 OR prompts.status!='completed' OR prompts.prompt_version!=excluded.prompt_version",
                params![episode_id, id, version, model, now, keep_completed],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }
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
        self.queue_prompts(episode_id, prompts, true)
    }

    async fn requeue_prompts(
        &self,
        episode_id: &str,
        prompts: &[(String, u32, String)],
    ) -> Result<(), PortError> {
        self.queue_prompts(episode_id, prompts, false)
    }

    async fn update_prompt(
        &self,
        episode_id: &str,
        prompt_id: &str,
        update: &PromptUpdate,
    ) -> Result<(), PortError> {
        let now = now_ms();
        let conn = self.conn();
        let (status, attempt) = (update.status().as_str(), update.attempt());
        let result = match update {
            PromptUpdate::Running { .. } => conn.execute(
                "UPDATE prompts SET status=?3, attempts=?4, updated_at=?5 WHERE episode_id=?1 AND prompt_id=?2",
                params![episode_id, prompt_id, status, attempt, now],
            ),
            PromptUpdate::Throttled { error, .. } => conn.execute(
                "UPDATE prompts SET status=?3, attempts=?4, last_error=?5, updated_at=?6,
                   throttles=throttles+1, throttled_since=COALESCE(throttled_since, ?6)
                   WHERE episode_id=?1 AND prompt_id=?2",
                params![episode_id, prompt_id, status, attempt, error, now],
            ),
            PromptUpdate::Retrying { error, .. } => conn.execute(
                "UPDATE prompts SET status=?3, attempts=?4, last_error=?5, updated_at=?6 WHERE episode_id=?1 AND prompt_id=?2",
                params![episode_id, prompt_id, status, attempt, error, now],
            ),
            // A replay of a failed prompt starts a fresh throttling budget.
            PromptUpdate::Failed { error, .. } => conn.execute(
                "UPDATE prompts SET status=?3, attempts=?4, last_error=?5, updated_at=?6,
                   throttles=0, throttled_since=NULL WHERE episode_id=?1 AND prompt_id=?2",
                params![episode_id, prompt_id, status, attempt, error, now],
            ),
            PromptUpdate::Completed {
                output,
                input_tokens,
                output_tokens,
                ..
            } => conn.execute(
                "UPDATE prompts SET status=?3, attempts=?4, output=?5, input_tokens=?6, output_tokens=?7,
                   last_error=NULL, updated_at=?8 WHERE episode_id=?1 AND prompt_id=?2",
                params![
                    episode_id,
                    prompt_id,
                    status,
                    attempt,
                    serde_json::to_string(output).map_err(|e| corrupt("prompt output", e))?,
                    input_tokens,
                    output_tokens,
                    now
                ],
            ),
        };
        result.map(|_| ()).map_err(sql)
    }

    async fn prompts(&self, episode_id: &str) -> Result<Vec<PromptState>, PortError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT prompt_id, prompt_version, model, status, attempts, last_error, output, input_tokens,
                   output_tokens, throttles, throttled_since
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
                        throttles: r.get(9)?,
                        throttled_since_ms: r.get(10)?,
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

    async fn record_revision(
        &self,
        episode_id: &str,
        fingerprint: &str,
        envelope_for: &EnvelopeFor<'_>,
    ) -> Result<StoredRevision, PortError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let latest: Option<(u32, String, Option<String>)> = tx
            .query_row(
                "SELECT revision, fingerprint, envelope FROM summaries WHERE episode_id=?1
                 ORDER BY revision DESC LIMIT 1",
                [episode_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql)?;
        let stored = match latest {
            Some((revision, fp, Some(body))) if fp == fingerprint => StoredRevision {
                revision,
                envelope: serde_json::from_str(&body).map_err(|e| corrupt("summary", e))?,
                new: false,
            },
            other => {
                // A matching revision without its envelope was claimed by a build that
                // wrote the two apart and stopped in between: it is completed here.
                let revision = match &other {
                    Some((revision, fp, None)) if fp == fingerprint => *revision,
                    Some((revision, ..)) => revision + 1,
                    None => 1,
                };
                let envelope = envelope_for(revision);
                let body = serde_json::to_string(&envelope).map_err(|e| corrupt("summary", e))?;
                tx.execute(
                    "INSERT INTO summaries(episode_id, revision, fingerprint, claimed_at, envelope)
                     VALUES(?1,?2,?3,?4,?5)
                     ON CONFLICT(episode_id, revision) DO UPDATE SET envelope=excluded.envelope",
                    params![episode_id, revision, fingerprint, now_ms(), body],
                )
                .map_err(sql)?;
                StoredRevision {
                    revision,
                    envelope,
                    new: true,
                }
            }
        };
        tx.commit().map_err(sql)?;
        Ok(stored)
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

    #[tokio::test]
    async fn a_revision_claimed_without_its_envelope_is_completed_not_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        // What a build that claimed and saved in two writes left when it stopped between.
        db.conn()
            .execute(
                "INSERT INTO summaries(episode_id, revision, fingerprint, claimed_at) VALUES('ep', 1, 'fp', 0)",
                [],
            )
            .expect("insert");
        let envelope_for = |revision: u32| EventEnvelope {
            version: "0".into(),
            id: format!("ep:summary:r{revision}"),
            detail_type: "EpisodeSummarized".into(),
            source: "podflow.publisher".into(),
            account: String::new(),
            time: "2026-12-04T00:00:00Z".into(),
            region: String::new(),
            resources: Vec::new(),
            detail: serde_json::json!({ "revision": revision }),
        };
        let stored = db
            .record_revision("ep", "fp", &envelope_for)
            .await
            .expect("record");
        assert_eq!((stored.revision, stored.new), (1, true));
        assert_eq!(
            db.summary("ep", Some(1)).await.expect("summary"),
            Some(envelope_for(1))
        );
        let again = db
            .record_revision("ep", "fp", &envelope_for)
            .await
            .expect("record");
        assert_eq!((again.revision, again.new), (1, false));
    }
}
