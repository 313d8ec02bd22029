//! `podflow dlq list|replay` against a deployed stack's SQS prompt DLQ (when
//! `PODFLOW_PROMPT_DLQ_URL` and `PODFLOW_PROMPT_QUEUE_URL` are set).

use podflow_aws::dlq::{DeadLetterMessage, Rewrite, Select, SqsDeadLetterQueue};
use podflow_events::PromptJob;

use crate::commands::{EXIT_BAD_INPUT, EXIT_OK, ReplayChanges};

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

/// A prompt job with the operator's model; other messages go back unchanged.
fn rewritten(letter: &DeadLetterMessage, model: &str) -> Result<String, String> {
    match serde_json::from_str::<PromptJob>(&letter.body) {
        Ok(mut job) => {
            job.model = model.to_owned();
            serde_json::to_string(&job).map_err(|e| e.to_string())
        }
        Err(_) => Ok(letter.body.clone()),
    }
}

pub async fn replay(
    queues: &SqsQueues,
    ids: &[String],
    all: bool,
    changes: &ReplayChanges,
) -> anyhow::Result<i32> {
    if !all && ids.is_empty() {
        eprintln!("error: name the messages to replay (see `podflow dlq list`) or pass --all");
        return Ok(EXIT_BAD_INPUT);
    }
    if changes.prompt_version.is_some() {
        eprintln!(
            "error: --prompt-version is not supported against SQS yet (it needs the episode's transcript); replay with --model, or unchanged"
        );
        return Ok(EXIT_BAD_INPUT);
    }
    let dlq = open(queues).await;
    let pick = |l: &DeadLetterMessage| ids.contains(&l.message_id);
    let model = changes.model.clone();
    let rewrite = move |l: &DeadLetterMessage| match &model {
        Some(m) => rewritten(l, m),
        None => Ok(l.body.clone()),
    };
    let report = dlq
        .replay(
            (!all).then_some(&pick as &Select<'_>),
            changes.model.is_some().then_some(&rewrite as &Rewrite<'_>),
        )
        .await?;
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
