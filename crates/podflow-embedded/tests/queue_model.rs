//! The bus and the prompt queue against small reference models. The bus: events published
//! any number of times, across crashes, reach each subscriber's inbox once per event id.
//! The prompt queue: random sequences of send, receive,
//! complete (done, retry, dead letter), visibility expiry and crash-and-reopen. After every
//! step the queue must agree with the model: what is received (and in which order), which
//! sends deduplication drops, what sits in the dead-letter queue, and how many messages are
//! pending — so nothing is lost, FIFO order holds within a group, a message is dead-lettered
//! after its receives are used up, and a dedup id is honoured.

use std::collections::HashSet;

use podflow_core::Outcome;
use podflow_embedded::{
    Db, QueueSpec, Received,
    queue::{PROMPT_DLQ, PROMPT_QUEUE},
};
use podflow_events::EventEnvelope;
use proptest::prelude::*;

const MAX_RECEIVES: u32 = 3;

#[derive(Debug, Clone)]
enum Step {
    Send {
        group: u8,
        dedup: u8,
    },
    Receive {
        max: usize,
    },
    Complete {
        pick: usize,
        how: How,
    },
    /// The visibility timeout of a held message runs out.
    Expire {
        pick: usize,
    },
    /// The process dies; the next one reopens the data directory and releases what was in
    /// flight (as `podflow run` does on start). The dead process's receipts are gone.
    Reopen,
}

#[derive(Debug, Clone, Copy)]
enum How {
    Done,
    Retry,
    DeadLetter,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..3, 0u8..8).prop_map(|(group, dedup)| Step::Send { group, dedup }),
        3 => (1usize..4).prop_map(|max| Step::Receive { max }),
        3 => (0usize..8, prop_oneof![Just(How::Done), Just(How::Retry), Just(How::DeadLetter)])
            .prop_map(|(pick, how)| Step::Complete { pick, how }),
        1 => (0usize..8).prop_map(|pick| Step::Expire { pick }),
        1 => Just(Step::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct ModelMessage {
    body: String,
    group: String,
    receives: u32,
    visible: bool,
    /// The receipt of its latest receive; an older one no longer acts on it.
    receipt: Option<String>,
}

#[derive(Default)]
struct Model {
    /// In send order (the queue's sequence).
    queue: Vec<ModelMessage>,
    dead: Vec<String>,
    seen_dedup: HashSet<String>,
    sent: usize,
}

impl Model {
    /// FIFO: a message is eligible when it is visible and no older message of its group is
    /// still in the queue.
    fn eligible(&self, max: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, m) in self.queue.iter().enumerate() {
            if out.len() == max {
                break;
            }
            let older_in_group = self.queue[..i].iter().any(|o| o.group == m.group);
            if m.visible && !older_in_group {
                out.push(i);
            }
        }
        out
    }

    fn by_receipt(&self, receipt: &str) -> Option<usize> {
        self.queue
            .iter()
            .position(|m| m.receipt.as_deref() == Some(receipt))
    }
}

fn open(dir: &std::path::Path) -> Db {
    let db = Db::open(dir).expect("open");
    db.declare_queue(&QueueSpec {
        max_receive_count: MAX_RECEIVES,
        ..QueueSpec::prompts()
    })
    .expect("declare");
    db
}

fn run(steps: Vec<Step>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = open(dir.path());
    let mut model = Model::default();
    let mut held: Vec<Received> = Vec::new();
    for step in steps {
        match step {
            Step::Send { group, dedup } => {
                let body = format!("m{}", model.sent);
                model.sent += 1;
                let (group, dedup) = (format!("g{group}"), format!("d{dedup}"));
                let sent = db
                    .send(PROMPT_QUEUE, &body, Some(&group), Some(&dedup))
                    .expect("send");
                let fresh = model.seen_dedup.insert(dedup.clone());
                assert_eq!(sent.is_some(), fresh, "dedup id {dedup}");
                if fresh {
                    model.queue.push(ModelMessage {
                        body,
                        group,
                        receives: 0,
                        visible: true,
                        receipt: None,
                    });
                }
            }
            Step::Receive { max } => {
                let got = db.receive(PROMPT_QUEUE, max).expect("receive");
                let expected = model.eligible(max);
                let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
                let wanted: Vec<&str> = expected
                    .iter()
                    .map(|&i| model.queue[i].body.as_str())
                    .collect();
                assert_eq!(bodies, wanted, "received");
                for (r, &i) in got.iter().zip(&expected) {
                    let m = &mut model.queue[i];
                    assert_eq!(
                        r.exhausted.is_some(),
                        m.receives >= MAX_RECEIVES,
                        "{} after {} receives",
                        m.body,
                        m.receives
                    );
                    m.receives += 1;
                    assert_eq!(r.receive_count, m.receives);
                    m.visible = false;
                    m.receipt = Some(r.receipt.clone());
                }
                held.extend(got);
            }
            Step::Complete { pick, how } => {
                if held.is_empty() {
                    continue;
                }
                let r = held.remove(pick % held.len());
                let outcome = match how {
                    How::Done => Outcome::nothing(),
                    How::Retry => Outcome::Retry {
                        delay: std::time::Duration::ZERO,
                        reason: "again".into(),
                    },
                    How::DeadLetter => Outcome::DeadLetter {
                        emit: Vec::new(),
                        reason: "hopeless".into(),
                    },
                };
                db.complete(&r, &outcome).expect("complete");
                if let Some(i) = model.by_receipt(&r.receipt) {
                    match how {
                        How::Done => {
                            model.queue.remove(i);
                        }
                        How::Retry => {
                            model.queue[i].visible = true;
                            model.queue[i].receipt = None;
                        }
                        How::DeadLetter => {
                            let m = model.queue.remove(i);
                            model.dead.push(m.body);
                        }
                    }
                }
            }
            Step::Expire { pick } => {
                if held.is_empty() {
                    continue;
                }
                let r = &held[pick % held.len()];
                db.change_visibility(&r.receipt, std::time::Duration::ZERO)
                    .expect("expire");
                if let Some(i) = model.by_receipt(&r.receipt) {
                    model.queue[i].visible = true;
                }
            }
            Step::Reopen => {
                drop(db);
                db = open(dir.path());
                db.release_in_flight().expect("release");
                held.clear();
                for m in &mut model.queue {
                    m.visible = true;
                    m.receipt = None;
                }
            }
        }
        assert_eq!(
            db.pending(&[PROMPT_QUEUE]).expect("pending") as usize,
            model.queue.len(),
            "pending"
        );
        let mut dead: Vec<String> = db
            .dead_letters()
            .expect("dlq")
            .into_iter()
            .inspect(|d| {
                assert_eq!(d.dlq, PROMPT_DLQ);
                assert_eq!(d.source_queue, PROMPT_QUEUE);
            })
            .map(|d| d.body)
            .collect();
        let mut expected_dead = model.dead.clone();
        dead.sort();
        expected_dead.sort();
        assert_eq!(dead, expected_dead, "dead letters");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_agrees_with_its_model(steps in prop::collection::vec(step(), 1..60)) {
        run(steps);
    }
}

fn completed(n: u8) -> EventEnvelope {
    EventEnvelope {
        version: "0".into(),
        id: format!("ep:prompt:p{n}:v1:completed"),
        detail_type: "PromptCompleted".into(),
        source: "podflow.bedrock-invoker".into(),
        account: String::new(),
        time: "2026-12-04T00:00:00Z".into(),
        region: String::new(),
        resources: Vec::new(),
        detail: serde_json::json!({"schema_version": "1.0", "episode_id": "ep", "prompt_id": format!("p{n}")}),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// `Some(n)` publishes event n (again, maybe); `None` is a crash and reopen.
    #[test]
    fn the_bus_delivers_each_event_once_per_subscriber(
        steps in prop::collection::vec(prop::option::weighted(0.85, 0u8..10), 1..40)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = QueueSpec::inbox("publisher");
        let mut db = Db::open(dir.path()).expect("open");
        db.declare_queue(&inbox).expect("declare");
        let mut published = HashSet::new();
        for step in steps {
            match step {
                Some(n) => {
                    db.publish(&[completed(n)]).expect("publish");
                    published.insert(n);
                }
                None => {
                    drop(db);
                    db = Db::open(dir.path()).expect("reopen");
                    db.declare_queue(&inbox).expect("declare");
                }
            }
            prop_assert_eq!(
                db.pending(&["publisher"]).expect("pending") as usize,
                published.len()
            );
            prop_assert_eq!(db.events_for("ep").expect("events").len(), published.len());
        }
        let mut bodies: Vec<String> = db
            .receive("publisher", 100)
            .expect("receive")
            .into_iter()
            .map(|r| EventEnvelope::from_json(&r.body).expect("envelope").id)
            .collect();
        bodies.sort();
        let mut expected: Vec<String> = published.iter().map(|&n| completed(n).id).collect();
        expected.sort();
        prop_assert_eq!(bodies, expected);
    }
}
