//! The behaviour every [`EpisodeStore`] must have, run against each adapter (SQLite in
//! `podflow-embedded`, DynamoDB on moto in `podflow-aws`), so the two cannot drift.

use std::sync::Arc;

use podflow_core::{
    EpisodeRecord, EpisodeStore, PromptStatus, PromptUpdate, StepStatus, content::work_key,
};
use podflow_events::{BlobRef, EventEnvelope};
use serde_json::json;

fn blob(key: &str) -> BlobRef {
    BlobRef {
        bucket: None,
        key: key.into(),
        size: 1,
        sha256: "0".repeat(64),
    }
}

fn record(id: &str, created_at_ms: i64) -> EpisodeRecord {
    EpisodeRecord {
        episode_id: id.into(),
        correlation_id: format!("corr-{id}"),
        original_name: format!("{id}.m4a"),
        source: blob(&format!("incoming/{id}.m4a")),
        created_at_ms,
    }
}

/// Runs every check; panics with the failing one. `store` must be empty.
pub async fn check_episode_store(store: Arc<dyn EpisodeStore>) {
    episodes_are_recorded_once(store.as_ref()).await;
    steps_count_attempts(store.as_ref()).await;
    work_is_stored_and_logged(store.as_ref()).await;
    planning_keeps_completed_prompts(store.as_ref()).await;
    artifacts_are_named(store.as_ref()).await;
    revisions_are_recorded_once_with_their_envelope(store.as_ref()).await;
    racing_claims_share_one_revision(store).await;
}

async fn episodes_are_recorded_once(store: &dyn EpisodeStore) {
    assert!(
        store
            .upsert_episode(&record("ep-b", 2))
            .await
            .expect("upsert")
    );
    assert!(
        store
            .upsert_episode(&record("ep-a", 1))
            .await
            .expect("upsert")
    );
    let mut changed = record("ep-a", 1);
    changed.original_name = "renamed.m4a".into();
    assert!(
        !store.upsert_episode(&changed).await.expect("upsert"),
        "known episodes are not replaced"
    );
    assert_eq!(
        store.episode("ep-a").await.expect("get"),
        Some(record("ep-a", 1))
    );
    assert_eq!(store.episode("nope").await.expect("get"), None);
    let ids: Vec<String> = store
        .episodes()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.episode_id)
        .collect();
    assert_eq!(ids, ["ep-a", "ep-b"], "oldest first");
}

async fn steps_count_attempts(store: &dyn EpisodeStore) {
    store
        .step_started("ep-a", "transcribe")
        .await
        .expect("start");
    store
        .step_finished(
            "ep-a",
            "transcribe",
            StepStatus::Failed,
            Some("ffmpeg crashed"),
        )
        .await
        .expect("finish");
    store
        .step_started("ep-a", "transcribe")
        .await
        .expect("start");
    let steps = store.steps("ep-a").await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].status, steps[0].attempts),
        (StepStatus::Running, 2)
    );
    assert_eq!(steps[0].note, None, "a restart clears the old note");
    assert_eq!(steps[0].finished_at_ms, None);
    store
        .step_finished("ep-a", "transcribe", StepStatus::Done, None)
        .await
        .expect("finish");
    // Finishing a step never started records it with one attempt.
    store
        .step_finished(
            "ep-a",
            "publish",
            StepStatus::Done,
            Some("reused earlier work"),
        )
        .await
        .expect("finish");
    let steps = store.steps("ep-a").await.expect("steps");
    let by_name = |n: &str| steps.iter().find(|s| s.step == n).cloned().expect(n);
    let t = by_name("transcribe");
    assert_eq!((t.status, t.attempts), (StepStatus::Done, 2));
    assert!(t.finished_at_ms.is_some_and(|f| f >= t.started_at_ms));
    let p = by_name("publish");
    assert_eq!(
        (p.status, p.attempts, p.note.as_deref()),
        (StepStatus::Done, 1, Some("reused earlier work"))
    );
    assert!(store.steps("ep-b").await.expect("steps").is_empty());
}

async fn work_is_stored_and_logged(store: &dyn EpisodeStore) {
    let key = work_key("transcribe", "abc", "tiny");
    assert_eq!(store.work_result(&key).await.expect("get"), None);
    store
        .record_work(&key, "ep-a", &json!({"segments": 3}))
        .await
        .expect("record");
    assert_eq!(
        store.work_result(&key).await.expect("get"),
        Some(json!({"segments": 3}))
    );
    store
        .record_work(&key, "ep-a", &json!({"segments": 4}))
        .await
        .expect("record");
    assert_eq!(
        store.work_result(&key).await.expect("get"),
        Some(json!({"segments": 4}))
    );
    assert_eq!(
        store.work_count("transcribe", "ep-a").await.expect("count"),
        2
    );
    assert_eq!(
        store.work_count("transcribe", "ep-b").await.expect("count"),
        0
    );
    assert_eq!(
        store.work_count("transcode", "ep-a").await.expect("count"),
        0
    );
}

async fn planning_keeps_completed_prompts(store: &dyn EpisodeStore) {
    let plan = vec![
        ("summary".to_owned(), 1, "haiku".to_owned()),
        ("titles".to_owned(), 1, "haiku".to_owned()),
        ("chapters".to_owned(), 2, "sonnet".to_owned()),
    ];
    store.plan_prompts("ep-a", &plan).await.expect("plan");
    store
        .update_prompt("ep-a", "summary", &PromptUpdate::Running { attempt: 1 })
        .await
        .expect("running");
    store
        .update_prompt(
            "ep-a",
            "summary",
            &PromptUpdate::Completed {
                attempt: 1,
                output: blob("out/summary.md"),
                input_tokens: 500,
                output_tokens: 60,
            },
        )
        .await
        .expect("completed");
    store
        .update_prompt(
            "ep-a",
            "titles",
            &PromptUpdate::Retrying {
                attempt: 1,
                error: "throttled".into(),
            },
        )
        .await
        .expect("retrying");
    // Throttles are counted, and the budget starts at the first one.
    for attempt in [2, 3] {
        store
            .update_prompt(
                "ep-a",
                "chapters",
                &PromptUpdate::Throttled {
                    attempt,
                    error: "429".into(),
                },
            )
            .await
            .expect("throttled");
        if attempt == 2 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let chapters = store.prompts("ep-a").await.expect("prompts").remove(0);
    assert_eq!(
        (chapters.status, chapters.attempts, chapters.throttles),
        (PromptStatus::Queued, 3, 2)
    );
    let since = chapters.throttled_since_ms.expect("throttled since");
    assert!(since > 0 && since <= podflow_core_now_ms(), "{since}");
    store
        .update_prompt(
            "ep-a",
            "chapters",
            &PromptUpdate::Throttled {
                attempt: 4,
                error: "429".into(),
            },
        )
        .await
        .expect("throttled");
    let again = store.prompts("ep-a").await.expect("prompts").remove(0);
    assert_eq!(again.throttled_since_ms, Some(since), "kept from the first");
    assert_eq!(again.throttles, 3);
    store
        .update_prompt(
            "ep-a",
            "titles",
            &PromptUpdate::Failed {
                attempt: 3,
                error: "throttled".into(),
            },
        )
        .await
        .expect("failed");
    // Updating a prompt that was never planned changes nothing.
    store
        .update_prompt("ep-a", "ghost", &PromptUpdate::Running { attempt: 1 })
        .await
        .expect("no-op");
    let states = store.prompts("ep-a").await.expect("prompts");
    let ids: Vec<&str> = states.iter().map(|p| p.prompt_id.as_str()).collect();
    assert_eq!(ids, ["chapters", "summary", "titles"], "by prompt id");
    assert_eq!(states[1].status, PromptStatus::Completed);
    assert_eq!(states[1].output, Some(blob("out/summary.md")));
    assert_eq!((states[1].input_tokens, states[1].output_tokens), (500, 60));
    assert_eq!(states[2].status, PromptStatus::Failed);
    assert_eq!(states[2].last_error.as_deref(), Some("throttled"));
    assert_eq!(states[2].attempts, 3);
    assert_eq!(
        (states[2].throttles, states[2].throttled_since_ms),
        (0, None)
    );

    // Planning again (a replay): completed prompts keep their output, failed ones are
    // queued afresh, and a new version of a completed prompt runs again.
    let mut replan = plan.clone();
    replan[2].1 = 2;
    replan.push(("summary".to_owned(), 1, "haiku".to_owned()));
    store.plan_prompts("ep-a", &replan).await.expect("replan");
    let states = store.prompts("ep-a").await.expect("prompts");
    assert_eq!(states[1].status, PromptStatus::Completed);
    assert_eq!(
        (
            states[2].status,
            states[2].attempts,
            states[2].last_error.clone()
        ),
        (PromptStatus::Queued, 0, None)
    );
    assert_eq!(
        (states[0].throttles, states[0].throttled_since_ms),
        (0, None),
        "a new plan starts a fresh throttling budget"
    );
    store
        .plan_prompts("ep-a", &[("summary".to_owned(), 2, "sonnet".to_owned())])
        .await
        .expect("new version");
    let summary = store.prompts("ep-a").await.expect("prompts").remove(1);
    assert_eq!(
        (
            summary.status,
            summary.prompt_version,
            summary.model.as_str(),
            summary.output
        ),
        (PromptStatus::Queued, 2, "sonnet", None)
    );

    // A person rejected a completed output: requeued at the same version, on the model
    // asked for, with nothing of the old run kept (planning would keep it).
    store
        .update_prompt(
            "ep-a",
            "summary",
            &PromptUpdate::Completed {
                attempt: 1,
                output: blob("out/summary-v2.md"),
                input_tokens: 400,
                output_tokens: 50,
            },
        )
        .await
        .expect("completed v2");
    let again = [("summary".to_owned(), 2, "opus".to_owned())];
    store
        .plan_prompts("ep-a", &again)
        .await
        .expect("plan keeps it");
    let kept = store.prompts("ep-a").await.expect("prompts").remove(1);
    assert_eq!(kept.status, PromptStatus::Completed);
    store
        .requeue_prompts("ep-a", &again)
        .await
        .expect("requeue");
    let requeued = store.prompts("ep-a").await.expect("prompts").remove(1);
    assert_eq!(
        (
            requeued.status,
            requeued.prompt_version,
            requeued.model.as_str(),
            requeued.output,
            requeued.attempts
        ),
        (PromptStatus::Queued, 2, "opus", None, 0)
    );
}

async fn artifacts_are_named(store: &dyn EpisodeStore) {
    store
        .put_artifact("ep-a", "audio", &blob("a1"))
        .await
        .expect("put");
    store
        .put_artifact("ep-a", "transcript", &blob("t1"))
        .await
        .expect("put");
    store
        .put_artifact("ep-a", "audio", &blob("a2"))
        .await
        .expect("replace");
    let artifacts = store.artifacts("ep-a").await.expect("list");
    assert_eq!(artifacts.len(), 2);
    assert_eq!(artifacts["audio"], blob("a2"));
    assert!(store.artifacts("ep-b").await.expect("list").is_empty());
}

fn summary_envelope(episode: &str, revision: u32, outcome: &str) -> EventEnvelope {
    EventEnvelope {
        version: "0".into(),
        id: format!("{episode}:summary:r{revision}"),
        detail_type: "EpisodeSummarized".into(),
        source: "podflow.publisher".into(),
        account: String::new(),
        time: "2026-11-22T10:00:00Z".into(),
        region: String::new(),
        resources: Vec::new(),
        detail: json!({"revision": revision, "outcome": outcome}),
    }
}

/// Records `outcome` for `episode`; the envelope names the outcome it was built for.
async fn record_outcome(
    store: &dyn EpisodeStore,
    episode: &str,
    outcome: &str,
) -> (u32, bool, String) {
    let envelope_for = |revision| summary_envelope(episode, revision, outcome);
    let stored = store
        .record_revision(episode, outcome, &envelope_for)
        .await
        .expect("record");
    assert_eq!(
        stored.envelope.detail["revision"],
        json!(stored.revision),
        "the envelope is the one built for its revision"
    );
    let built_for = stored.envelope.detail["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (stored.revision, stored.new, built_for)
}

async fn revisions_are_recorded_once_with_their_envelope(store: &dyn EpisodeStore) {
    assert_eq!(store.summary("ep-a", None).await.expect("summary"), None);
    assert_eq!(
        record_outcome(store, "ep-a", "fp-1").await,
        (1, true, "fp-1".into())
    );
    // The same outcome again: the stored revision and envelope, nothing new.
    assert_eq!(
        record_outcome(store, "ep-a", "fp-1").await,
        (1, false, "fp-1".into())
    );
    assert_eq!(
        record_outcome(store, "ep-a", "fp-2").await,
        (2, true, "fp-2".into())
    );
    assert_eq!(
        store.summary("ep-a", None).await.expect("summary"),
        Some(summary_envelope("ep-a", 2, "fp-2"))
    );
    assert_eq!(
        store.summary("ep-a", Some(1)).await.expect("summary"),
        Some(summary_envelope("ep-a", 1, "fp-1"))
    );
    assert_eq!(store.summary("ep-a", Some(7)).await.expect("summary"), None);
    // Going back to an earlier outcome is a new revision, not the old one.
    assert_eq!(
        record_outcome(store, "ep-a", "fp-1").await,
        (3, true, "fp-1".into())
    );
    assert_eq!(
        record_outcome(store, "ep-b", "fp-1").await,
        (1, true, "fp-1".into())
    );
}

async fn racing_claims_share_one_revision(store: Arc<dyn EpisodeStore>) {
    let claims = (0..6).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { record_outcome(store.as_ref(), "ep-race", "same-outcome").await })
    });
    let mut results = Vec::new();
    for claim in claims {
        results.push(claim.await.expect("joined"));
    }
    assert!(results.iter().all(|(rev, ..)| *rev == 1), "{results:?}");
    assert_eq!(
        results.iter().filter(|(_, fresh, _)| *fresh).count(),
        1,
        "{results:?}"
    );
    assert!(
        store
            .summary("ep-race", Some(1))
            .await
            .expect("summary")
            .is_some(),
        "a recorded revision always has its envelope"
    );
}

fn podflow_core_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
