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
    /// then applies the outcome atomically.
    pub async fn process(&self, received: Received) {
        process(&self.db, &self.queue, self.handler.as_ref(), received).await;
    }

    /// Runs until `stop` turns true. In-flight work is abandoned on stop; its messages
    /// become visible again (after the visibility timeout, or at once for the next runner).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut tasks = JoinSet::new();
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
                tasks.spawn(async move { this.process(received).await });
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
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

async fn process(db: &Db, queue: &QueueSpec, handler: &dyn MessageHandler, received: Received) {
    let delivery = Delivery {
        message_id: received.message_id.clone(),
        body: received.body.clone(),
        attempt: received.receive_count,
    };
    let heartbeat = {
        let db = db.clone();
        let receipt = received.receipt.clone();
        let timeout = queue.visibility_timeout;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(timeout / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = db.change_visibility(&receipt, timeout) {
                    tracing::warn!(error = %e, "could not extend visibility");
                }
            }
        })
    };
    let outcome = match &received.exhausted {
        // Used up: the handler ends the step or prompt, then the message is dead-lettered.
        Some(reason) => handler.give_up(&delivery, reason).await,
        None => handler.handle(&delivery).await,
    };
    heartbeat.abort();
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
}
