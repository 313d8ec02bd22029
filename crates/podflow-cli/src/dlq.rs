//! `podflow dlq list|replay`: one flow over the `DeadLetterQueue` port, for the local
//! database's dead-letter queues or, when `PODFLOW_PROMPT_DLQ_URL` and
//! `PODFLOW_PROMPT_QUEUE_URL` are set, a deployed stack's SQS prompt DLQ; `list --events`
//! and `replay --events` work on the stack's event DLQ (`PODFLOW_EVENT_DLQ_URL`).

use std::{collections::HashMap, sync::Arc};

use podflow_aws::{
    dlq::SqsDeadLetterQueue, dynamodb::DynamoEpisodeStore, event_replay::EventRedelivery,
    s3::S3BlobStore,
};
use podflow_core::{DeadLetterMessage, DeadLetterQueue, EpisodeStore, ReplayReport, undelivered};
use podflow_embedded::queue::PROMPT_QUEUE;
use podflow_events::PromptJob;
use prompt_dispatcher::{DispatchHandler, ReplayVersion};

use crate::{
    commands::{EXIT_BAD_INPUT, EXIT_OK},
    runtime::Settings,
};

/// What an operator changes about the prompts they replay.
#[derive(Debug, Default)]
pub struct ReplayChanges {
    /// Run the replayed prompts on this model.
    pub model: Option<String>,
    /// Render the replayed prompts again from the catalog at this version.
    pub prompt_version: Option<ReplayVersion>,
}

impl ReplayChanges {
    fn any(&self) -> bool {
        self.model.is_some() || self.prompt_version.is_some()
    }
}

/// The messages to replay: the ones named, or all.
#[derive(Debug)]
pub struct Selection<'a> {
    pub ids: &'a [String],
    pub all: bool,
}

impl Selection<'_> {
    fn picks(&self, letter: &DeadLetterMessage) -> bool {
        self.all || self.ids.contains(&letter.message_id)
    }
}

/// A deployed stack's DLQ and the queue its messages go back to.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    pub dlq_url: String,
    pub queue_url: String,
}

/// The deployed stack's event dead-letter queue (stack output `EventDlqUrl`): its events go
/// back to the bus or to S3 ([`replay_events`]), not to a queue.
pub async fn event_dlq(url: &str) -> SqsDeadLetterQueue {
    let config = podflow_aws::sdk_config().await;
    SqsDeadLetterQueue::new(&config, url, "events")
}

impl SqsQueues {
    pub async fn open(&self) -> SqsDeadLetterQueue {
        let config = podflow_aws::sdk_config().await;
        SqsDeadLetterQueue::new(&config, &self.dlq_url, &self.queue_url)
    }
}

/// Sends the selected events of the stack's event DLQ at `url` back — podflow's onto the bus
/// `bus`, S3 uploads announced again by S3 — and deletes those that went. One that cannot
/// go (another AWS service's event) stays, with its reason (exit 1).
pub async fn replay_events(
    url: &str,
    bus: &str,
    selection: &Selection<'_>,
    json: bool,
) -> anyhow::Result<i32> {
    let config = podflow_aws::sdk_config().await;
    let dlq = SqsDeadLetterQueue::new(&config, url, "events");
    let to = EventRedelivery::new(&config, bus);
    let pick = |l: &DeadLetterMessage| selection.picks(l);
    let report = dlq
        .redeliver((!selection.all).then_some(&pick as _), &to)
        .await?;
    for id in selection.ids {
        if !report.moved.contains(id) && !report.refused.iter().any(|(r, _)| r == id) {
            eprintln!(
                "error: {id} is not in {} (see `podflow dlq list --events`)",
                dlq.location()
            );
        }
    }
    print_report(&report, &dlq, json);
    if json {
        println!("{}", report_json(&report));
    }
    Ok(if report.refused.is_empty() {
        EXIT_OK
    } else {
        EXIT_BAD_INPUT
    })
}

/// "episode prompt vN (model)" for a prompt job; "EpisodeUploaded episode" for an event
/// (also inside a Lambda on-failure record); else its FIFO group.
pub fn describe(body: &str, group: Option<&str>) -> String {
    if let Ok(j) = serde_json::from_str::<PromptJob>(body) {
        return format!(
            "{} prompt {} v{} ({})",
            j.episode_id, j.prompt_id, j.prompt_version, j.model
        );
    }
    let event = undelivered::LambdaFailure::read(body)
        .map(|failure| failure.event)
        .or_else(|| serde_json::from_str(body).ok());
    event
        .as_ref()
        .and_then(undelivered::event_summary)
        .unwrap_or_else(|| group.unwrap_or("event").to_owned())
}

/// Prints what waits in `dlq`: a table, or a JSON line per message.
pub async fn list(dlq: &dyn DeadLetterQueue, json: bool) -> anyhow::Result<i32> {
    let letters = dlq.list().await?;
    if json {
        for l in &letters {
            println!("{}", serde_json::to_string(l)?);
        }
    } else if letters.is_empty() {
        println!("nothing waits in {}", dlq.location());
    } else {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_header(["message id", "from", "what", "receives", "reason"]);
        for l in &letters {
            table.add_row([
                l.message_id.clone(),
                l.source_queue.clone(),
                describe(&l.body, l.group_id.as_deref()),
                l.receive_count.to_string(),
                l.reason
                    .clone()
                    .unwrap_or_else(|| "moved after its last receive".into()),
            ]);
        }
        println!("{table}");
    }
    Ok(EXIT_OK)
}

/// What a replay did: the queue's report, the prompt jobs that went back (as sent), and the
/// exit code so far.
#[derive(Debug)]
pub struct Replayed {
    pub report: ReplayReport,
    pub jobs: Vec<PromptJob>,
    pub exit: i32,
}

/// Moves the selected messages back to their queue, prompt jobs changed as asked; prompts
/// that go back are planned again in `store` first (so status and the publisher's fan-in
/// wait for them). Every message that can go back does; one that cannot stays, with its reason
/// printed. `dispatcher` re-renders prompts (`--prompt-version`).
pub async fn replay(
    dlq: &dyn DeadLetterQueue,
    selection: &Selection<'_>,
    changes: &ReplayChanges,
    dispatcher: Option<&DispatchHandler>,
    store: Option<&dyn EpisodeStore>,
    json: bool,
) -> anyhow::Result<Replayed> {
    let letters: Vec<DeadLetterMessage> = dlq
        .list()
        .await?
        .into_iter()
        .filter(|l| selection.picks(l))
        .collect();
    for id in selection.ids {
        if !letters.iter().any(|l| &l.message_id == id) {
            eprintln!(
                "error: {id} is not in {} (see `podflow dlq list`)",
                dlq.location()
            );
        }
    }
    let (bodies, jobs) = rewritten(&letters, changes, dispatcher).await;
    // Planned before they move, so a worker that runs a moved prompt at once cannot finish
    // it before it is marked queued again.
    if let Some(store) = store {
        for (id, job) in &jobs {
            if bodies.get(id).is_some_and(Result::is_ok) {
                store
                    .plan_prompts(
                        &job.episode_id,
                        &[(job.prompt_id.clone(), job.prompt_version, job.model.clone())],
                    )
                    .await?;
            }
        }
    }
    let pick = |l: &DeadLetterMessage| selection.picks(l);
    let rewrite = |l: &DeadLetterMessage| match bodies.get(&l.message_id) {
        Some(body) => body.clone(),
        // Dead-lettered after the listing: its change was never prepared.
        None if serde_json::from_str::<PromptJob>(&l.body).is_ok() => Err(
            "it reached the dead-letter queue after the replay began; replay it again".to_owned(),
        ),
        None => Ok(l.body.clone()),
    };
    let report = dlq
        .replay(
            (!selection.all).then_some(&pick as _),
            changes.any().then_some(&rewrite as _),
        )
        .await?;
    let moved: Vec<PromptJob> = jobs
        .into_iter()
        .filter(|(id, _)| report.moved.contains(id))
        .map(|(_, job)| job)
        .collect();
    print_report(&report, dlq, json);
    let exit = if report.refused.is_empty() {
        EXIT_OK
    } else {
        EXIT_BAD_INPUT
    };
    Ok(Replayed {
        report,
        jobs: moved,
        exit,
    })
}

/// Each picked prompt job with the operator's changes: re-rendered from the catalog at the
/// asked version, then the model swapped. The bodies map holds a changed body or why a
/// message cannot be changed; other messages go back as they are.
async fn rewritten(
    letters: &[DeadLetterMessage],
    changes: &ReplayChanges,
    dispatcher: Option<&DispatchHandler>,
) -> (
    HashMap<String, Result<String, String>>,
    Vec<(String, PromptJob)>,
) {
    let mut bodies = HashMap::new();
    let mut jobs = Vec::new();
    for letter in letters {
        let Ok(mut job) = serde_json::from_str::<PromptJob>(&letter.body) else {
            continue; // not a prompt job: it goes back as it is
        };
        if let Some(version) = changes.prompt_version {
            let Some(d) = dispatcher else {
                bodies.insert(
                    letter.message_id.clone(),
                    Err("re-rendering needs the prompt catalog".to_owned()),
                );
                continue;
            };
            match d.rerender(&job, version).await {
                Ok(fresh) => job = fresh,
                Err(e) => {
                    bodies.insert(letter.message_id.clone(), Err(podflow_core::report(&e)));
                    continue;
                }
            }
        }
        if let Some(model) = &changes.model {
            job.model.clone_from(model);
        }
        bodies.insert(
            letter.message_id.clone(),
            serde_json::to_string(&job).map_err(|e| e.to_string()),
        );
        jobs.push((letter.message_id.clone(), job));
    }
    (bodies, jobs)
}

/// What moved and what did not, for a person (errors always, on standard error).
fn print_report(report: &ReplayReport, dlq: &dyn DeadLetterQueue, json: bool) {
    for (id, why) in &report.refused {
        eprintln!("error: {id} not replayed: {why}");
    }
    if json {
        return;
    }
    if let Some(task) = &report.move_task {
        println!(
            "the queue is moving every message out of {} (move task {task})",
            dlq.location()
        );
    }
    for id in &report.moved {
        println!("replayed {id}");
    }
    if report.moved.is_empty() && report.refused.is_empty() && report.move_task.is_none() {
        println!("nothing to replay");
    }
}

/// The report as one JSON object (`--json` on SQS, where no episode reports follow).
fn report_json(report: &ReplayReport) -> serde_json::Value {
    let refused: Vec<serde_json::Value> = report
        .refused
        .iter()
        .map(|(id, why)| serde_json::json!({"message_id": id, "reason": why}))
        .collect();
    serde_json::json!({
        "moved": report.moved,
        "refused": refused,
        "move_task": report.move_task,
    })
}

/// The stack's state and blobs (`PODFLOW_TABLE`, `PODFLOW_BUCKET`), which re-rendering a
/// prompt on AWS needs: the episode's transcript and context.
pub fn stack_dispatcher(
    settings: &Settings,
    config: &aws_config::SdkConfig,
) -> Result<DispatchHandler, String> {
    let setting = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!("--prompt-version on SQS needs {name} (the stack's; see docs/runbook.md)")
            })
    };
    Ok(DispatchHandler {
        store: Arc::new(DynamoEpisodeStore::new(config, &setting("PODFLOW_TABLE")?)),
        blobs: Arc::new(S3BlobStore::new(config, &setting("PODFLOW_BUCKET")?, false)),
        override_dir: settings.prompts_dir.clone(),
        default_model: settings.llm_model.clone(),
        queue: PROMPT_QUEUE.into(),
        // Only re-renders prompts: which engine writes the texts does not matter here.
        text_engine: podflow_core::TextEngine::default(),
    })
}

/// `podflow dlq replay` against a deployed stack's SQS DLQ.
pub async fn replay_on_sqs(
    queues: &SqsQueues,
    selection: &Selection<'_>,
    changes: &ReplayChanges,
    settings: &Settings,
    json: bool,
) -> anyhow::Result<i32> {
    let config = podflow_aws::sdk_config().await;
    let dispatcher = match changes.prompt_version {
        Some(_) => match stack_dispatcher(settings, &config) {
            Ok(d) => Some(d),
            Err(why) => {
                eprintln!("error: {why}");
                return Ok(EXIT_BAD_INPUT);
            }
        },
        None => None,
    };
    let dlq = SqsDeadLetterQueue::new(&config, &queues.dlq_url, &queues.queue_url);
    let store = dispatcher.as_ref().map(|d| d.store.as_ref());
    let replayed = replay(&dlq, selection, changes, dispatcher.as_ref(), store, json).await?;
    if json {
        println!("{}", report_json(&replayed.report));
    }
    Ok(replayed.exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_report_lists_moved_and_refused_messages() {
        let report = ReplayReport {
            move_task: None,
            moved: vec!["m-1".into()],
            refused: vec![("m-2".into(), "no such prompt version".into())],
        };
        let json = report_json(&report);
        assert_eq!(json["moved"][0], "m-1");
        assert_eq!(json["refused"][0]["message_id"], "m-2");
        assert_eq!(json["refused"][0]["reason"], "no such prompt version");
        assert!(json["move_task"].is_null());
    }

    #[test]
    fn prompt_jobs_are_described_and_others_fall_back_to_their_group() {
        let job = include_str!("../../../events-schema/examples/PromptJob/valid/01.json");
        let parsed: PromptJob = serde_json::from_str(job).expect("example job");
        assert_eq!(
            describe(job, Some("g")),
            format!(
                "{} prompt {} v{} ({})",
                parsed.episode_id, parsed.prompt_id, parsed.prompt_version, parsed.model
            )
        );
        assert_eq!(describe("not json", Some("ep-1")), "ep-1");
        assert_eq!(describe("{}", None), "event");
    }
}
