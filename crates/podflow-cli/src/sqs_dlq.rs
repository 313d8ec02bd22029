//! `podflow dlq list|replay` against a deployed stack's SQS prompt DLQ (when
//! `PODFLOW_PROMPT_DLQ_URL` and `PODFLOW_PROMPT_QUEUE_URL` are set).

use std::{collections::HashMap, sync::Arc};

use podflow_aws::{
    dlq::{DeadLetterMessage, Rewrite, Select, SqsDeadLetterQueue},
    dynamodb::DynamoEpisodeStore,
    s3::S3BlobStore,
};
use podflow_embedded::queue::PROMPT_QUEUE;
use podflow_events::PromptJob;
use prompt_dispatcher::DispatchHandler;

use crate::{
    commands::{EXIT_BAD_INPUT, EXIT_OK, ReplayChanges},
    runtime::Settings,
};

/// The DLQ and the queue its messages go back to.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    pub dlq_url: String,
    pub queue_url: String,
}

async fn open(queues: &SqsQueues) -> SqsDeadLetterQueue {
    let config = podflow_aws::sdk_config().await;
    SqsDeadLetterQueue::new(&config, &queues.dlq_url, &queues.queue_url)
}

/// "episode prompt vN (model)" for a prompt job, else its FIFO group.
pub fn describe(body: &str, group: Option<&str>) -> String {
    serde_json::from_str::<PromptJob>(body).map_or_else(
        |_| group.unwrap_or("event").to_owned(),
        |j| {
            format!(
                "{} prompt {} v{} ({})",
                j.episode_id, j.prompt_id, j.prompt_version, j.model
            )
        },
    )
}

pub async fn list(queues: &SqsQueues, json: bool) -> anyhow::Result<i32> {
    let letters = open(queues).await.list().await?;
    if json {
        for l in &letters {
            println!("{}", serde_json::to_string(l)?);
        }
    } else if letters.is_empty() {
        println!("{} is empty", queues.dlq_url);
    } else {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_header(["message id", "what", "receives", "reason"]);
        for l in &letters {
            table.add_row([
                l.message_id.clone(),
                describe(&l.body, l.group_id.as_deref()),
                l.receive_count.to_string(),
                l.reason
                    .clone()
                    .unwrap_or_else(|| "moved by SQS after maxReceiveCount".into()),
            ]);
        }
        println!("{table}");
    }
    Ok(EXIT_OK)
}

/// What a replay sends back for each message it changes (by message id): the new body,
/// or why it stays in the DLQ.
type Rewritten = HashMap<String, Result<String, String>>;

/// The stack's state and blobs (`PODFLOW_TABLE`, `PODFLOW_BUCKET`), which re-rendering a
/// prompt needs: the episode's transcript and context.
fn stack_dispatcher(
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
    })
}

/// Each picked prompt job with the operator's changes: re-rendered from the catalog at the
/// asked version (async, so done before the replay), then the model swapped. Messages that
/// are not prompt jobs are left out (they go back unchanged).
async fn rewritten(
    letters: &[DeadLetterMessage],
    changes: &ReplayChanges,
    dispatcher: Option<&DispatchHandler>,
) -> (Rewritten, Vec<(String, PromptJob)>) {
    let mut out = HashMap::new();
    let mut jobs = Vec::new();
    for letter in letters {
        let Ok(mut job) = serde_json::from_str::<PromptJob>(&letter.body) else {
            continue;
        };
        if let (Some(version), Some(d)) = (changes.prompt_version, dispatcher) {
            match d.rerender(&job, version).await {
                Ok(fresh) => job = fresh,
                Err(e) => {
                    out.insert(letter.message_id.clone(), Err(e.to_string()));
                    continue;
                }
            }
        }
        if let Some(model) = &changes.model {
            job.model.clone_from(model);
        }
        let body = serde_json::to_string(&job).map_err(|e| e.to_string());
        out.insert(letter.message_id.clone(), body);
        jobs.push((letter.message_id.clone(), job));
    }
    (out, jobs)
}

pub async fn replay(
    queues: &SqsQueues,
    ids: &[String],
    all: bool,
    changes: &ReplayChanges,
    settings: &Settings,
) -> anyhow::Result<i32> {
    if !all && ids.is_empty() {
        eprintln!("error: name the messages to replay (see `podflow dlq list`) or pass --all");
        return Ok(EXIT_BAD_INPUT);
    }
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
    let pick = |l: &DeadLetterMessage| all || ids.contains(&l.message_id);
    let changing = changes.model.is_some() || changes.prompt_version.is_some();
    let (bodies, jobs) = if changing {
        let picked: Vec<DeadLetterMessage> =
            dlq.list().await?.into_iter().filter(|l| pick(l)).collect();
        rewritten(&picked, changes, dispatcher.as_ref()).await
    } else {
        (HashMap::new(), Vec::new())
    };
    let rewrite = |l: &DeadLetterMessage| {
        bodies
            .get(&l.message_id)
            .cloned()
            .unwrap_or_else(|| Ok(l.body.clone()))
    };
    let report = dlq
        .replay(
            (!all).then_some(&pick as &Select<'_>),
            changing.then_some(&rewrite as &Rewrite<'_>),
        )
        .await?;
    // Re-rendered prompts are planned at their new version, so status and the publisher's
    // fan-in wait for them.
    if let Some(d) = &dispatcher {
        for (id, job) in &jobs {
            if report.moved.contains(id) {
                d.store
                    .plan_prompts(
                        &job.episode_id,
                        &[(job.prompt_id.clone(), job.prompt_version, job.model.clone())],
                    )
                    .await?;
            }
        }
    }
    if let Some(task) = &report.move_task {
        println!(
            "SQS is moving every message back to {} (move task {task})",
            queues.queue_url
        );
        return Ok(EXIT_OK);
    }
    for id in &report.moved {
        println!("replayed {id}");
    }
    for (id, why) in &report.refused {
        eprintln!("error: {id} not replayed: {why}");
    }
    for id in ids.iter().filter(|id| !report.moved.contains(id)) {
        if !report.refused.iter().any(|(r, _)| r == id) {
            eprintln!(
                "error: {id} is not in {} (see `podflow dlq list`)",
                queues.dlq_url
            );
        }
    }
    if report.moved.is_empty() && report.refused.is_empty() {
        println!("nothing to replay");
    }
    Ok(if report.refused.is_empty() {
        EXIT_OK
    } else {
        EXIT_BAD_INPUT
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
