//! The worker loop: receive from a queue, hand each message to a [`MessageHandler`], apply
//! its [`Outcome`] — the local twin of an SQS event source mapping in front of a Lambda.

use std::{sync::Arc, time::Duration};

use podflow_core::{Delivery, MessageHandler, Outcome};
use tokio::{sync::watch, task::JoinSet};

use crate::{Db, QueueSpec, Received};

/// How often an idle worker looks for delayed messages that have become visible; new
/// messages wake it at once.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Drives one handler over one queue with bounded concurrency.
pub struct Worker {
    db: Db,
    queue: QueueSpec,
    handler: Arc<dyn MessageHandler>,
    concurrency: usize,
}

impl Worker {
    pub fn new(
        db: Db,
        queue: QueueSpec,
        handler: Arc<dyn MessageHandler>,
        concurrency: usize,
    ) -> Self {
        Self {
            db,
            queue,
            handler,
            concurrency: concurrency.max(1),
        }
    }

    /// Processes one received message: runs the handler while keeping the message hidden
    /// (a heartbeat extends its visibility, so long transcriptions are not redelivered),
    /// within the queue's maximum handler time and with panics caught, then applies the
    /// outcome atomically.
    pub async fn process(&self, received: Received) {
        process(&self.db, &self.queue, &self.handler, received, None).await;
    }

    /// Runs until `stop` turns true. In-flight work is abandoned on stop; its messages
    /// become visible again (after the visibility timeout, or at once for the next runner).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut tasks = JoinSet::new();
        // Every handler task holds a clone of `alive`; when all are gone, so are the
        // handlers' futures and the tools they started (a tool is killed when dropped).
        let (alive, mut handlers_gone) = tokio::sync::mpsc::channel::<()>(1);
        loop {
            if *stop.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let free = this.concurrency.saturating_sub(tasks.len());
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            // Register for wake-ups before looking, so a message sent in between is not missed.
            let notified = this.db.new_message.notified();
            let batch = match this.db.receive(&this.queue.name, free) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(queue = %this.queue.name, error = %e, "receive failed; retrying");
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for received in batch {
                let this = this.clone();
                let alive = alive.clone();
                tasks.spawn(async move {
                    process(&this.db, &this.queue, &this.handler, received, Some(alive)).await;
                });
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        // An aborted task is dropped at the runtime's next turn, not at `abort`: wait for
        // it, so a process that exits next leaves no tool running.
        drop(alive);
        if tokio::time::timeout(HANDLER_STOP_WAIT, handlers_gone.recv())
            .await
            .is_err()
        {
            tracing::warn!(queue = %this.queue.name, "a stopped handler did not end within 5 s (busy outside an await); stopping without it");
        }
    }
}

/// Runs a worker until Ctrl-C: the body of each service's standalone binary.
pub async fn run_until_ctrl_c(workers: Vec<Worker>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(w.run(stop_rx.clone())))
        .collect();
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
}

/// How long a stopping worker waits for its aborted handlers to be dropped.
const HANDLER_STOP_WAIT: Duration = Duration::from_secs(5);

/// Aborts a spawned task when dropped: a stopped worker takes its handlers with it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps a message hidden while its handler runs; never ends by itself.
async fn heartbeat(db: Db, receipt: String, timeout: Duration) {
    let mut tick = tokio::time::interval(timeout / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = db.change_visibility(&receipt, timeout) {
            tracing::warn!(error = %e, "could not extend visibility");
        }
    }
}

/// What a panic carried, in words.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// Runs the handler (or its give-up) in its own task, so a panic is caught, with the
/// heartbeat beside it in the same `select!`, so the heartbeat ends with the handler, and
/// under the queue's maximum handler time, so a hang releases the message for a retry.
/// A panic or an overrun counts as a failed attempt; at the last one the message is
/// dead-lettered with that reason.
async fn run_handler(
    db: &Db,
    queue: &QueueSpec,
    handler: &Arc<dyn MessageHandler>,
    received: &Received,
    delivery: &Delivery,
    alive: Option<tokio::sync::mpsc::Sender<()>>,
) -> Outcome {
    let mut task = AbortOnDrop(tokio::spawn({
        let handler = Arc::clone(handler);
        let delivery = delivery.clone();
        let exhausted = received.exhausted.clone();
        async move {
            let _alive = alive;
            match exhausted {
                // Used up: the handler ends the step or prompt, then the message is
                // dead-lettered.
                Some(reason) => handler.give_up(&delivery, &reason).await,
                None => handler.handle(&delivery).await,
            }
        }
    }));
    let joined = tokio::select! {
        joined = tokio::time::timeout(queue.max_handler_time, &mut task.0) => joined,
        _ = heartbeat(db.clone(), received.receipt.clone(), queue.visibility_timeout) => {
            unreachable!("the heartbeat never ends")
        }
    };
    let (reason, delay) = match joined {
        Ok(Ok(outcome)) => return outcome,
        Ok(Err(e)) if e.is_panic() => {
            let reason = format!(
                "{} panicked: {}",
                handler.name(),
                panic_text(e.into_panic())
            );
            tracing::error!(
                service = handler.name(), message = %received.message_id,
                attempt = received.receive_count, %reason, "handler panicked"
            );
            // Like a crash: the message comes back after its visibility timeout.
            (reason, queue.visibility_timeout)
        }
        Ok(Err(_)) => (format!("{} was cancelled", handler.name()), Duration::ZERO),
        Err(_) => {
            let reason = format!(
                "{} took longer than {} s and was stopped",
                handler.name(),
                queue.max_handler_time.as_secs()
            );
            tracing::warn!(
                service = handler.name(), message = %received.message_id,
                attempt = received.receive_count, %reason, "handler overran"
            );
            (reason, Duration::ZERO)
        }
    };
    if received.exhausted.is_some() {
        // Giving up itself failed: dead-letter without its events rather than loop.
        Outcome::DeadLetter {
            emit: Vec::new(),
            reason,
        }
    } else {
        Outcome::Retry { delay, reason }
    }
}

async fn process(
    db: &Db,
    queue: &QueueSpec,
    handler: &Arc<dyn MessageHandler>,
    received: Received,
    alive: Option<tokio::sync::mpsc::Sender<()>>,
) {
    let delivery = Delivery {
        message_id: received.message_id.clone(),
        body: received.body.clone(),
        attempt: received.receive_count,
        deadline: None,
    };
    let outcome = run_handler(db, queue, handler, &received, &delivery, alive).await;
    podflow_core::crash::point(&format!("runner.before_ack.{}", handler.name()));
    match &outcome {
        Outcome::Done { emit, jobs } => tracing::debug!(
            service = handler.name(), message = %received.message_id,
            events = emit.len(), jobs = jobs.len(), "handled"
        ),
        Outcome::Retry { delay, reason } => tracing::info!(
            service = handler.name(), message = %received.message_id,
            attempt = received.receive_count, delay_ms = delay.as_millis() as u64, %reason, "will retry"
        ),
        Outcome::DeadLetter { reason, .. } => tracing::warn!(
            service = handler.name(), message = %received.message_id, %reason, "dead-lettered"
        ),
    }
    if let Err(e) = db.complete(&received, &outcome) {
        // The message stays in flight and is redelivered after its visibility timeout;
        // handlers are idempotent, so doing the work again is safe.
        tracing::error!(service = handler.name(), error = %e, "could not record the outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Flaky {
        calls: AtomicU32,
    }

    #[async_trait]
    impl MessageHandler for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn handle(&self, delivery: &Delivery) -> Outcome {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if delivery.attempt < 3 {
                Outcome::Retry {
                    delay: Duration::from_millis(10),
                    reason: "not yet".into(),
                }
            } else {
                Outcome::nothing()
            }
        }
    }

    #[tokio::test]
    async fn retries_until_the_handler_succeeds_then_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let spec = QueueSpec::inbox("flaky");
        db.declare_queue(&spec).expect("declare");
        db.send("flaky", "m", None, None).expect("send");
        let handler = Arc::new(Flaky {
            calls: AtomicU32::new(0),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(Worker::new(db.clone(), spec, handler.clone(), 2).run(stop_rx));
        for _ in 0..200 {
            if db.pending(&["flaky"]).expect("pending") == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).expect("stop");
        worker.await.expect("join");
        assert_eq!(db.pending(&["flaky"]).expect("pending"), 0);
        assert_eq!(handler.calls.load(Ordering::SeqCst), 3);
    }

    /// Asks for a retry every time; giving up announces the failure.
    struct Hopeless {
        attempts: AtomicU32,
        given_up: std::sync::Mutex<Vec<(u32, String)>>,
    }

    #[async_trait]
    impl MessageHandler for Hopeless {
        fn name(&self) -> &'static str {
            "hopeless"
        }
        async fn handle(&self, _delivery: &Delivery) -> Outcome {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            Outcome::Retry {
                delay: Duration::from_millis(10),
                reason: "store unreachable".into(),
            }
        }
        async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
            self.given_up
                .lock()
                .expect("lock")
                .push((delivery.attempt, reason.to_owned()));
            Outcome::DeadLetter {
                emit: vec![podflow_events::EventEnvelope::wrap(
                    &podflow_events::TranscodeFailed {
                        schema_version: "1.0".into(),
                        episode_id: "ep".into(),
                        correlation_id: "c".into(),
                        reason: reason.to_owned(),
                    },
                )],
                reason: reason.to_owned(),
            }
        }
    }

    #[tokio::test]
    async fn a_message_whose_receives_are_used_up_ends_with_its_handlers_failure_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let spec = QueueSpec {
            max_receive_count: 3,
            ..QueueSpec::inbox("hopeless")
        };
        db.declare_queue(&spec).expect("declare");
        db.send("hopeless", "m", None, None).expect("send");
        let handler = Arc::new(Hopeless {
            attempts: AtomicU32::new(0),
            given_up: std::sync::Mutex::new(Vec::new()),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(Worker::new(db.clone(), spec, handler.clone(), 2).run(stop_rx));
        for _ in 0..200 {
            if db.pending(&["hopeless"]).expect("pending") == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).expect("stop");
        worker.await.expect("join");
        assert_eq!(handler.attempts.load(Ordering::SeqCst), 3);
        let given_up = handler.given_up.lock().expect("lock").clone();
        assert_eq!(given_up.len(), 1, "{given_up:?}");
        assert_eq!(given_up[0].0, 4, "the receive after the last attempt");
        assert!(
            given_up[0].1.contains("maxReceiveCount 3")
                && given_up[0].1.contains("last error: store unreachable"),
            "{}",
            given_up[0].1
        );
        let failed = db.events_for("ep").expect("events");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].detail_type, "TranscodeFailed");
        let dead = db.dead_letters().expect("dlq");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].dlq, "hopeless-dlq");
    }

    /// Panics on every delivery.
    struct Panicky {
        calls: AtomicU32,
    }

    #[async_trait]
    impl MessageHandler for Panicky {
        fn name(&self) -> &'static str {
            "panicky"
        }
        async fn handle(&self, _delivery: &Delivery) -> Outcome {
            self.calls.fetch_add(1, Ordering::SeqCst);
            panic!("index out of bounds in the test handler");
        }
    }

    /// Hangs on its first delivery, succeeds on the next.
    struct HangsOnce {
        calls: AtomicU32,
    }

    #[async_trait]
    impl MessageHandler for HangsOnce {
        fn name(&self) -> &'static str {
            "hangs-once"
        }
        async fn handle(&self, _delivery: &Delivery) -> Outcome {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                std::future::pending::<()>().await;
            }
            Outcome::nothing()
        }
    }

    async fn drain(db: &Db, spec: QueueSpec, handler: Arc<dyn MessageHandler>) {
        let queue = spec.name.clone();
        db.declare_queue(&spec).expect("declare");
        db.send(&queue, "m", None, None).expect("send");
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(Worker::new(db.clone(), spec, handler, 1).run(stop_rx));
        for _ in 0..500 {
            if db.pending(&[queue.as_str()]).expect("pending") == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).expect("stop");
        worker.await.expect("join");
        assert_eq!(db.pending(&[queue.as_str()]).expect("pending"), 0);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_retried_after_its_visibility_then_dead_lettered_with_the_panic()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let handler = Arc::new(Panicky {
            calls: AtomicU32::new(0),
        });
        let spec = QueueSpec {
            visibility_timeout: Duration::from_millis(300),
            max_receive_count: 2,
            ..QueueSpec::inbox("panicky")
        };
        let started = std::time::Instant::now();
        drain(&db, spec, handler.clone()).await;
        assert_eq!(handler.calls.load(Ordering::SeqCst), 2);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the retry waited for the visibility timeout"
        );
        let dead = db.dead_letters().expect("dlq");
        assert_eq!(dead.len(), 1);
        let reason = dead[0].last_error.clone().unwrap_or_default();
        assert!(
            reason.contains("panicky panicked: index out of bounds in the test handler"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_handler_that_overruns_its_time_is_stopped_and_the_message_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let handler = Arc::new(HangsOnce {
            calls: AtomicU32::new(0),
        });
        let spec = QueueSpec::inbox("hangs-once").with_max_handler_time(Duration::from_millis(200));
        drain(&db, spec, handler.clone()).await;
        assert_eq!(handler.calls.load(Ordering::SeqCst), 2);
        assert!(db.dead_letters().expect("dlq").is_empty());
    }
}
