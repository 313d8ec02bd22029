//! Queues with SQS semantics, and the event bus built on them.
//!
//! - Standard queues: any visible message may be received.
//! - FIFO queues: within a message group only the oldest message is eligible, and not while
//!   it is in flight, so a group is processed in order, one message at a time; different
//!   groups run in parallel. A `dedup_id` seen within [`DEDUP_WINDOW_MS`] is dropped.
//! - Receiving hides a message for the visibility timeout and counts the receive. A message
//!   received `max_receive_count` times and still not deleted comes once more marked
//!   [`Received::exhausted`], so its handler can end its step or prompt before it moves to
//!   the DLQ (SQS's redrive policy would move it silently).
//! - The bus: publishing an event stores it once (by id) and puts one message into the inbox
//!   queue of each subscribed service (`podflow_events::routing`).
//!
//! The queue's SQL and its semantics are one unit; a quarter of the file is their tests.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use podflow_core::{
    DeadLetterMessage, DeadLetterQueue, Outcome, PickLetter, PortError, QueuedJob, ReplayReport,
    RewriteLetter,
};
use podflow_events::{EventEnvelope, routing};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::{Db, DbError, now_ms};

/// SQS keeps deduplication ids for five minutes.
pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// A queue's configuration (the local twin of the queue's SQS attributes).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub name: String,
    pub fifo: bool,
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
    pub dlq: Option<String>,
    /// The longest one handler run may take; past it the run is stopped and the message
    /// released for a retry (a hang must not hold a message, or a run, forever).
    pub max_handler_time: Duration,
}

impl QueueSpec {
    /// A service inbox on the bus: standard queue, its own DLQ.
    pub fn inbox(service: &str) -> Self {
        Self {
            name: service.to_owned(),
            fifo: false,
            visibility_timeout: Duration::from_secs(60),
            max_receive_count: 10,
            dlq: Some(format!("{service}-dlq")),
            max_handler_time: Duration::from_secs(30 * 60),
        }
    }

    /// The same queue with another maximum handler time.
    pub fn with_max_handler_time(self, max_handler_time: Duration) -> Self {
        Self {
            max_handler_time,
            ..self
        }
    }

    /// The prompt queue: FIFO with a FIFO DLQ.
    pub fn prompts() -> Self {
        Self {
            name: PROMPT_QUEUE.to_owned(),
            fifo: true,
            visibility_timeout: Duration::from_secs(120),
            // A backstop: the invoker gives up (and says why) before this is reached. High,
            // because throttled deliveries do not count as attempts: a prompt may be
            // throttled for its whole throttling budget (retries at most 30 s apart).
            max_receive_count: 200,
            dlq: Some(PROMPT_DLQ.to_owned()),
            // Each LLM call is bounded by its own timeout; this catches anything else (a
            // long transcript's map-reduce makes many calls, and keeps finished parts).
            max_handler_time: Duration::from_secs(60 * 60),
        }
    }
}

pub use podflow_events::routing::{PROMPT_DLQ, PROMPT_QUEUE};

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// Its receives are used up: why, for the handler's `give_up`. It goes to the DLQ with
    /// whatever the handler returns.
    pub exhausted: Option<String>,
}

/// A message sitting in a dead-letter queue.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub dlq: String,
    pub source_queue: String,
    pub group_id: Option<String>,
    pub receive_count: u32,
    pub last_error: Option<String>,
    pub enqueued_at_ms: i64,
    pub body: String,
}

/// Counts of messages per queue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueDepth {
    pub queue: String,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Db {
    /// Declares a queue (idempotent).
    pub fn declare_queue(&self, spec: &QueueSpec) -> Result<(), DbError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO queues(name, fifo, visibility_ms, max_receive_count, dlq) VALUES(?1,?2,?3,?4,?5)
             ON CONFLICT(name) DO UPDATE SET fifo=excluded.fifo, visibility_ms=excluded.visibility_ms,
               max_receive_count=excluded.max_receive_count, dlq=excluded.dlq",
            params![
                spec.name,
                spec.fifo,
                spec.visibility_timeout.as_millis() as i64,
                spec.max_receive_count,
                spec.dlq
            ],
        )?;
        if let Some(dlq) = &spec.dlq {
            conn.execute(
                "INSERT OR IGNORE INTO queues(name, fifo, visibility_ms, max_receive_count, dlq) VALUES(?1,?2,30000,0,NULL)",
                params![dlq, spec.fifo],
            )?;
        }
        Ok(())
    }

    /// Sends a message. Returns the message id, or `None` when a FIFO dedup id within the
    /// window dropped it.
    pub fn send(
        &self,
        queue: &str,
        body: &str,
        group_id: Option<&str>,
        dedup_id: Option<&str>,
    ) -> Result<Option<String>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = send_in(&tx, queue, body, group_id, dedup_id, now_ms())?;
        tx.commit()?;
        drop(conn);
        self.new_message.notify_waiters();
        Ok(id)
    }

    /// Publishes events on the bus: each is stored once (a repeated id is ignored, which
    /// makes re-publishing after a crash harmless) and routed to its subscribers' inboxes.
    pub fn publish(&self, events: &[EventEnvelope]) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        publish_in(&tx, events, self.duplicate_deliveries)?;
        tx.commit()?;
        drop(conn);
        self.new_message.notify_waiters();
        Ok(())
    }

    /// Receives up to `max` messages from a queue.
    pub fn receive(&self, queue: &str, max: usize) -> Result<Vec<Received>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        let (visibility_ms, max_receive, dlq): (i64, u32, Option<String>) = tx
            .prepare_cached(
                "SELECT visibility_ms, max_receive_count, dlq FROM queues WHERE name=?1",
            )?
            .query_row([queue], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
            .ok_or_else(|| DbError::Corrupt(format!("queue {queue} was never declared")))?;
        let candidates: Vec<(i64, String, String, u32, Option<String>)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT m.seq, m.id, m.body, m.receive_count, m.last_error FROM messages m
                 WHERE m.queue=?1 AND m.visible_at<=?2
                   AND (m.group_id IS NULL OR NOT EXISTS(
                        SELECT 1 FROM messages o WHERE o.queue=m.queue AND o.group_id=m.group_id AND o.seq<m.seq))
                 ORDER BY m.seq LIMIT ?3",
            )?;
            stmt.query_map(params![queue, now, (max * 2) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for (seq, id, body, count, last_error) in candidates {
            if out.len() >= max {
                break;
            }
            let exhausted = (max_receive > 0 && count >= max_receive && dlq.is_some()).then(|| {
                let mut reason = format!(
                    "received {count} times without being processed (maxReceiveCount {max_receive})"
                );
                if let Some(last) = last_error {
                    reason.push_str(&format!("; last error: {last}"));
                }
                reason
            });
            let receipt = new_id();
            tx.prepare_cached(
                "UPDATE messages SET receive_count=receive_count+1, visible_at=?2, in_flight=1, receipt=?3 WHERE seq=?1",
            )?
            .execute(params![seq, now + visibility_ms, receipt])?;
            out.push(Received {
                message_id: id,
                receipt,
                body,
                receive_count: count + 1,
                exhausted,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Extends (or shortens) how long a received message stays hidden.
    pub fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE messages SET visible_at=?2 WHERE receipt=?1 AND in_flight=1",
            params![receipt, now_ms() + timeout.as_millis() as i64],
        )?;
        Ok(n == 1)
    }

    /// Deletes a received message (the handler succeeded).
    pub fn delete(&self, receipt: &str) -> Result<bool, DbError> {
        let n = self
            .conn()
            .execute("DELETE FROM messages WHERE receipt=?1", [receipt])?;
        Ok(n == 1)
    }

    /// Applies a handler's outcome for a received message, atomically with everything the
    /// outcome publishes or sends.
    pub fn complete(&self, received: &Received, outcome: &Outcome) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        let seq: Option<i64> = tx
            .prepare_cached("SELECT seq FROM messages WHERE receipt=?1")?
            .query_row([&received.receipt], |r| r.get(0))
            .optional()?;
        let mut sent = false;
        match outcome {
            Outcome::Done { emit, jobs } => {
                if let Some(seq) = seq {
                    tx.prepare_cached("DELETE FROM messages WHERE seq=?1")?
                        .execute([seq])?;
                }
                publish_in(&tx, emit, self.duplicate_deliveries)?;
                for job in jobs {
                    send_job_in(&tx, job, now)?;
                }
                sent = !emit.is_empty() || !jobs.is_empty();
            }
            Outcome::Retry { delay, reason } => {
                if let Some(seq) = seq {
                    tx.execute(
                        "UPDATE messages SET visible_at=?2, in_flight=0, last_error=?3 WHERE seq=?1",
                        params![seq, now + delay.as_millis() as i64, reason],
                    )?;
                }
            }
            Outcome::DeadLetter { emit, reason } => {
                if let Some(seq) = seq {
                    let queue: String =
                        tx.query_row("SELECT queue FROM messages WHERE seq=?1", [seq], |r| {
                            r.get(0)
                        })?;
                    let dlq: Option<String> = tx
                        .query_row("SELECT dlq FROM queues WHERE name=?1", [&queue], |r| {
                            r.get(0)
                        })
                        .optional()?
                        .flatten();
                    match dlq {
                        Some(dlq) => move_to_dlq(&tx, seq, &dlq, reason)?,
                        None => {
                            tx.execute("DELETE FROM messages WHERE seq=?1", [seq])?;
                        }
                    }
                }
                publish_in(&tx, emit, self.duplicate_deliveries)?;
                sent = !emit.is_empty();
            }
        }
        tx.commit()?;
        drop(conn);
        if sent {
            self.new_message.notify_waiters();
        }
        Ok(())
    }

    /// Makes every in-flight message visible again. Only for a runner holding the
    /// [`crate::RunnerLock`]: in-flight messages then belong to a run that died.
    pub fn release_in_flight(&self) -> Result<usize, DbError> {
        let n = self.conn().execute(
            "UPDATE messages SET in_flight=0, visible_at=?1 WHERE in_flight=1",
            [now_ms()],
        )?;
        Ok(n)
    }

    /// Messages still to be processed in the given queues (visible, delayed or in flight).
    pub fn pending(&self, queues: &[&str]) -> Result<u64, DbError> {
        let conn = self.conn();
        let mut total = 0u64;
        for q in queues {
            let n: i64 =
                conn.query_row("SELECT COUNT(*) FROM messages WHERE queue=?1", [q], |r| {
                    r.get(0)
                })?;
            total += n as u64;
        }
        Ok(total)
    }

    /// Depth of every declared queue.
    pub fn depths(&self) -> Result<Vec<QueueDepth>, DbError> {
        let conn = self.conn();
        let now = now_ms();
        let mut stmt = conn.prepare(
            "SELECT q.name,
                    COALESCE(SUM(m.in_flight=0 AND m.visible_at<=?1),0),
                    COALESCE(SUM(m.in_flight=1),0),
                    COALESCE(SUM(m.in_flight=0 AND m.visible_at>?1),0)
             FROM queues q LEFT JOIN messages m ON m.queue=q.name GROUP BY q.name ORDER BY q.name",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok(QueueDepth {
                queue: r.get(0)?,
                visible: r.get::<_, i64>(1)? as u64,
                in_flight: r.get::<_, i64>(2)? as u64,
                delayed: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Everything in dead-letter queues.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT m.id, m.queue, m.source_queue, m.group_id, m.receive_count, m.last_error, m.enqueued_at, m.body
             FROM messages m WHERE m.source_queue IS NOT NULL ORDER BY m.seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeadLetter {
                message_id: r.get(0)?,
                dlq: r.get(1)?,
                source_queue: r.get(2)?,
                group_id: r.get(3)?,
                receive_count: r.get(4)?,
                last_error: r.get(5)?,
                enqueued_at_ms: r.get(6)?,
                body: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves dead letters back to the queue they came from (SQS's redrive), with their group
    /// and dedup ids and a fresh receive count. `rewrite` may change a body on the way (an
    /// operator swapping a prompt's model). Returns the ids moved.
    pub fn redrive(
        &self,
        message_ids: Option<&[String]>,
        rewrite: &dyn Fn(&DeadLetter) -> Option<String>,
    ) -> Result<Vec<String>, DbError> {
        let letters = self.dead_letters()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        let mut moved = Vec::new();
        for letter in letters {
            if message_ids.is_some_and(|ids| !ids.contains(&letter.message_id)) {
                continue;
            }
            let body = rewrite(&letter).unwrap_or_else(|| letter.body.clone());
            tx.execute(
                "UPDATE messages SET queue=?2, source_queue=NULL, receive_count=0, in_flight=0,
                   receipt=NULL, visible_at=?3, body=?4, seq=(SELECT COALESCE(MAX(seq),0)+1 FROM messages)
                 WHERE id=?1",
                params![letter.message_id, letter.source_queue, now, body],
            )?;
            moved.push(letter.message_id);
        }
        tx.commit()?;
        drop(conn);
        self.new_message.notify_waiters();
        Ok(moved)
    }

    /// Every event published about an episode, oldest first (for status and tests).
    pub fn events_for(&self, episode_id: &str) -> Result<Vec<EventEnvelope>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT body FROM events WHERE episode_id=?1 ORDER BY seq")?;
        let rows = stmt.query_map([episode_id], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            let body = body?;
            out.push(
                serde_json::from_str(&body)
                    .map_err(|e| DbError::Corrupt(format!("stored event: {e}")))?,
            );
        }
        Ok(out)
    }
}

fn send_in(
    tx: &Transaction<'_>,
    queue: &str,
    body: &str,
    group_id: Option<&str>,
    dedup_id: Option<&str>,
    now: i64,
) -> Result<Option<String>, DbError> {
    if let Some(dedup) = dedup_id {
        let fresh: Option<i64> = tx
            .query_row(
                "SELECT expires_at FROM dedup WHERE queue=?1 AND dedup_id=?2",
                params![queue, dedup],
                |r| r.get(0),
            )
            .optional()?;
        if fresh.is_some_and(|expires| expires > now) {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO dedup(queue, dedup_id, expires_at) VALUES(?1,?2,?3)
             ON CONFLICT(queue, dedup_id) DO UPDATE SET expires_at=excluded.expires_at",
            params![queue, dedup, now + DEDUP_WINDOW_MS],
        )?;
    }
    let id = new_id();
    tx.prepare_cached(
        "INSERT INTO messages(id, queue, group_id, dedup_id, body, enqueued_at, visible_at) VALUES(?1,?2,?3,?4,?5,?6,?6)",
    )?
    .execute(params![id, queue, group_id, dedup_id, body, now])?;
    Ok(Some(id))
}

fn send_job_in(tx: &Transaction<'_>, job: &QueuedJob, now: i64) -> Result<(), DbError> {
    send_in(
        tx,
        &job.queue,
        &job.body,
        Some(&job.group_id),
        Some(&job.dedup_id),
        now,
    )?;
    Ok(())
}

fn publish_in(
    tx: &Transaction<'_>,
    events: &[EventEnvelope],
    duplicate: bool,
) -> Result<(), DbError> {
    let now = now_ms();
    for event in events {
        let body = serde_json::to_string(event)
            .map_err(|e| DbError::Corrupt(format!("event {}: {e}", event.id)))?;
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO events(id, detail_type, episode_id, body, published_at) VALUES(?1,?2,?3,?4,?5)",
            )?
            .execute(params![event.id, event.detail_type, event.episode_id(), body, now])?;
        if inserted == 0 {
            continue; // already published (a retried handler re-emitting the same event)
        }
        for service in routing::subscribers(&event.detail_type) {
            send_in(tx, service, &body, None, None, now)?;
            if duplicate {
                send_in(tx, service, &body, None, None, now)?;
            }
        }
    }
    Ok(())
}

fn move_to_dlq(tx: &Transaction<'_>, seq: i64, dlq: &str, reason: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE messages SET source_queue=queue, queue=?2, in_flight=0, receipt=NULL, last_error=?3,
           visible_at=?4, seq=(SELECT COALESCE(MAX(seq),0)+1 FROM messages) WHERE seq=?1",
        params![seq, dlq, reason, now_ms()],
    )?;
    Ok(())
}

/// The local dead-letter queues as `podflow dlq` sees them: every DLQ in the database.
#[async_trait]
impl DeadLetterQueue for Db {
    fn location(&self) -> String {
        format!("the dead-letter queues in {}", self.path().display())
    }

    async fn list(&self) -> Result<Vec<DeadLetterMessage>, PortError> {
        let letters = self
            .dead_letters()
            .map_err(|e| PortError::storage("reading the dead-letter queues", e))?;
        Ok(letters
            .into_iter()
            .map(|l| DeadLetterMessage {
                message_id: l.message_id,
                source_queue: l.source_queue,
                body: l.body,
                group_id: l.group_id,
                receive_count: l.receive_count,
                reason: l.last_error,
            })
            .collect())
    }

    /// One transaction moves every picked letter whose rewrite succeeded.
    async fn replay(
        &self,
        pick: Option<&PickLetter<'_>>,
        rewrite: Option<&RewriteLetter<'_>>,
    ) -> Result<ReplayReport, PortError> {
        let mut report = ReplayReport::default();
        let mut bodies = HashMap::new();
        for letter in DeadLetterQueue::list(self).await? {
            if pick.is_some_and(|pick| !pick(&letter)) {
                continue;
            }
            match rewrite.map_or_else(|| Ok(letter.body.clone()), |w| w(&letter)) {
                Ok(body) => {
                    bodies.insert(letter.message_id, body);
                }
                Err(why) => report.refused.push((letter.message_id, why)),
            }
        }
        let ids: Vec<String> = bodies.keys().cloned().collect();
        report.moved = self
            .redrive(Some(&ids), &|l| bodies.get(&l.message_id).cloned())
            .map_err(|e| PortError::storage("moving dead letters back", e))?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        db.declare_queue(&QueueSpec {
            visibility_timeout: Duration::from_millis(200),
            max_receive_count: 2,
            ..QueueSpec::prompts()
        })
        .expect("declare");
        (dir, db)
    }

    #[tokio::test]
    async fn the_dead_letter_port_replays_the_picked_letters_and_keeps_refused_ones() {
        let (_d, db) = db();
        for g in ["g1", "g2", "g3"] {
            db.send(PROMPT_QUEUE, &format!("job {g}"), Some(g), Some(g))
                .expect("send");
        }
        // Two receives each; the third comes marked exhausted and is dead-lettered.
        for _ in 0..2 {
            let _ = db.receive(PROMPT_QUEUE, 10).expect("receive");
            std::thread::sleep(Duration::from_millis(250));
        }
        for received in db.receive(PROMPT_QUEUE, 10).expect("receive") {
            let reason = received.exhausted.clone().expect("exhausted");
            db.complete(
                &received,
                &Outcome::DeadLetter {
                    emit: Vec::new(),
                    reason,
                },
            )
            .expect("dead-letter");
        }
        let letters = DeadLetterQueue::list(&db).await.expect("list");
        assert_eq!(letters.len(), 3);
        assert!(letters.iter().all(|l| {
            l.source_queue == PROMPT_QUEUE
                && l.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("maxReceiveCount"))
        }));
        let pick = |l: &DeadLetterMessage| l.group_id.as_deref() != Some("g1");
        let rewrite = |l: &DeadLetterMessage| match l.group_id.as_deref() {
            Some("g3") => Err("no such prompt version".to_owned()),
            _ => Ok(format!("{} v2", l.body)),
        };
        let report = DeadLetterQueue::replay(&db, Some(&pick), Some(&rewrite))
            .await
            .expect("replay");
        assert_eq!(report.moved.len(), 1);
        assert_eq!(report.refused.len(), 1);
        assert_eq!(report.refused[0].1, "no such prompt version");
        let left: Vec<Option<String>> = DeadLetterQueue::list(&db)
            .await
            .expect("list")
            .into_iter()
            .map(|l| l.group_id)
            .collect();
        assert_eq!(left, vec![Some("g1".to_owned()), Some("g3".to_owned())]);
        let back = db.receive(PROMPT_QUEUE, 10).expect("receive");
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].body.as_str(), back[0].receive_count),
            ("job g2 v2", 1)
        );
    }

    #[test]
    fn fifo_groups_are_in_order_and_one_at_a_time() {
        let (_d, db) = db();
        for (g, b) in [("a", "a1"), ("a", "a2"), ("b", "b1")] {
            db.send(PROMPT_QUEUE, b, Some(g), None).expect("send");
        }
        let got = db.receive(PROMPT_QUEUE, 10).expect("receive");
        let bodies: Vec<_> = got.iter().map(|r| r.body.as_str()).collect();
        assert_eq!(bodies, ["a1", "b1"], "a2 waits for a1");
        assert!(db.receive(PROMPT_QUEUE, 10).expect("receive").is_empty());
        assert!(db.delete(&got[0].receipt).expect("delete"));
        let next = db.receive(PROMPT_QUEUE, 10).expect("receive");
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].body, "a2");
    }

    #[test]
    fn dedup_ids_drop_repeats_within_the_window() {
        let (_d, db) = db();
        assert!(
            db.send(PROMPT_QUEUE, "x", Some("g"), Some("d1"))
                .expect("send")
                .is_some()
        );
        assert!(
            db.send(PROMPT_QUEUE, "x", Some("g"), Some("d1"))
                .expect("send")
                .is_none()
        );
        assert!(
            db.send(PROMPT_QUEUE, "y", Some("g"), Some("d2"))
                .expect("send")
                .is_some()
        );
        assert_eq!(db.pending(&[PROMPT_QUEUE]).expect("pending"), 2);
    }

    #[test]
    fn invisible_until_timeout_then_dead_lettered_after_max_receives_and_redriven() {
        let (_d, db) = db();
        db.send(PROMPT_QUEUE, "job", Some("g"), Some("d"))
            .expect("send");
        let first = db.receive(PROMPT_QUEUE, 1).expect("r1");
        assert_eq!(first[0].receive_count, 1);
        assert!(db.receive(PROMPT_QUEUE, 1).expect("hidden").is_empty());
        std::thread::sleep(Duration::from_millis(250));
        let second = db.receive(PROMPT_QUEUE, 1).expect("r2");
        assert_eq!(second[0].receive_count, 2);
        assert_eq!(second[0].exhausted, None);
        std::thread::sleep(Duration::from_millis(250));
        // Third receive: maxReceiveCount (2) reached → delivered once more, marked, for its
        // handler to end its work; what the handler returns moves it to the DLQ.
        let third = db.receive(PROMPT_QUEUE, 1).expect("r3");
        let reason = third[0].exhausted.clone().expect("exhausted");
        db.complete(
            &third[0],
            &Outcome::DeadLetter {
                emit: Vec::new(),
                reason,
            },
        )
        .expect("dead-letter");
        assert!(db.receive(PROMPT_QUEUE, 1).expect("r4").is_empty());
        let dead = db.dead_letters().expect("dlq");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].dlq, PROMPT_DLQ);
        assert_eq!(dead[0].source_queue, PROMPT_QUEUE);
        assert_eq!(dead[0].group_id.as_deref(), Some("g"));
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("maxReceiveCount")
        );
        let moved = db
            .redrive(None, &|_| Some("job v2".into()))
            .expect("redrive");
        assert_eq!(moved, vec![dead[0].message_id.clone()]);
        let again = db.receive(PROMPT_QUEUE, 1).expect("after redrive");
        assert_eq!(
            (again[0].body.as_str(), again[0].receive_count),
            ("job v2", 1)
        );
    }

    #[test]
    fn outcome_is_applied_atomically_with_what_it_publishes() {
        let (_d, db) = db();
        db.declare_queue(&QueueSpec::inbox("transcriber"))
            .expect("declare");
        db.declare_queue(&QueueSpec::inbox("transcode-watcher"))
            .expect("declare");
        db.send(PROMPT_QUEUE, "job", Some("g"), None).expect("send");
        let r = db.receive(PROMPT_QUEUE, 1).expect("receive").remove(0);
        let event = EventEnvelope {
            version: "0".into(),
            id: "evt-1".into(),
            detail_type: "EpisodeUploaded".into(),
            source: "test".into(),
            account: String::new(),
            time: String::new(),
            region: String::new(),
            resources: vec![],
            detail: serde_json::json!({"episode_id": "ep"}),
        };
        db.complete(&r, &Outcome::done(vec![event.clone()]))
            .expect("complete");
        assert_eq!(db.pending(&[PROMPT_QUEUE]).expect("p"), 0);
        assert_eq!(
            db.pending(&["transcriber", "transcode-watcher"])
                .expect("p"),
            2
        );
        // Publishing the same event id again routes nothing more.
        db.publish(&[event]).expect("republish");
        assert_eq!(
            db.pending(&["transcriber", "transcode-watcher"])
                .expect("p"),
            2
        );
        assert_eq!(db.events_for("ep").expect("events").len(), 1);
    }

    #[test]
    fn retry_delays_and_dead_letter_moves_with_reason() {
        let (_d, db) = db();
        db.send(PROMPT_QUEUE, "job", Some("g"), None).expect("send");
        let r = db.receive(PROMPT_QUEUE, 1).expect("receive").remove(0);
        db.complete(
            &r,
            &Outcome::Retry {
                delay: Duration::from_millis(100),
                reason: "429".into(),
            },
        )
        .expect("retry");
        assert!(db.receive(PROMPT_QUEUE, 1).expect("delayed").is_empty());
        std::thread::sleep(Duration::from_millis(120));
        let r = db.receive(PROMPT_QUEUE, 1).expect("receive").remove(0);
        db.complete(
            &r,
            &Outcome::DeadLetter {
                emit: vec![],
                reason: "unknown model".into(),
            },
        )
        .expect("dlq");
        let dead = db.dead_letters().expect("dlq");
        assert_eq!(dead[0].last_error.as_deref(), Some("unknown model"));
    }

    #[test]
    fn committed_messages_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Db::open(dir.path()).expect("open");
            db.declare_queue(&QueueSpec::prompts()).expect("declare");
            db.send(PROMPT_QUEUE, "durable", Some("g"), None)
                .expect("send");
            db.receive(PROMPT_QUEUE, 1).expect("receive");
        }
        let db = Db::open(dir.path()).expect("reopen");
        assert_eq!(db.release_in_flight().expect("release"), 1);
        let r = db.receive(PROMPT_QUEUE, 1).expect("receive");
        assert_eq!(r[0].body, "durable");
        assert_eq!(r[0].receive_count, 2);
    }
}
