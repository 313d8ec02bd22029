//! Where approval state lives in the [`EpisodeStore`], shared by the publisher (which
//! proposes and records decisions) and the prompt-dispatcher (which re-runs a rejected
//! proposal's prompts only once the publisher has recorded the rejection).
//!
//! Both proposals and decisions use the store's revision sequence, its one atomic
//! "first writer numbers it" primitive: proposals are numbered in `<episode>#proposals`
//! (one per distinct outcome), and the decision on an outcome is revision 1 of
//! `<episode>#decision:<outcome>` — whoever claims it first decides, so two people
//! deciding at once cannot both win.

use podflow_events::EventEnvelope;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{EpisodeStore, PortError, content::sha256_hex};

/// The revision sequence proposals are numbered in.
pub fn proposals_of(episode_id: &str) -> String {
    format!("{episode_id}#proposals")
}

fn decisions_of(episode_id: &str, outcome: &str) -> String {
    format!("{episode_id}#decision:{outcome}")
}

/// The work key holding a proposal's outcome fingerprint.
pub fn outcome_key(episode_id: &str, proposal: u32) -> String {
    format!("proposal:{episode_id}:{proposal}")
}

/// The work key the dispatcher records when it re-runs a rejected proposal's prompts;
/// their count is part of every later outcome, so a re-run is proposed anew even when its
/// answers come back the same.
pub fn rerun_key(episode_id: &str, proposal: u32) -> String {
    format!("{RERUN_KIND}:{episode_id}:{proposal}")
}

/// The kind of [`rerun_key`]s (for `work_count`).
pub const RERUN_KIND: &str = "rerun";

/// The latest proposal's envelope and the outcome it was made from. A proposal whose
/// outcome is not recorded yet (a publisher between its two writes) reads as none.
pub async fn latest(
    store: &dyn EpisodeStore,
    episode_id: &str,
) -> Result<Option<(EventEnvelope, String)>, PortError> {
    let Some(envelope) = store.summary(&proposals_of(episode_id), None).await? else {
        return Ok(None);
    };
    let Some(number) = envelope
        .detail
        .get("proposal")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
    else {
        return Ok(None);
    };
    let outcome = store
        .work_result(&outcome_key(episode_id, number))
        .await?
        .and_then(|v| v.as_str().map(str::to_owned));
    Ok(outcome.map(|o| (envelope, o)))
}

/// The decision taken on an outcome (as its JSON), if any: the first one recorded.
pub async fn decision(
    store: &dyn EpisodeStore,
    episode_id: &str,
    outcome: &str,
) -> Result<Option<Value>, PortError> {
    Ok(store
        .summary(&decisions_of(episode_id, outcome), Some(1))
        .await?
        .map(|e| e.detail))
}

/// Claims the decision on an outcome. Returns the decision that stands: `decision` when it
/// was the first, else the one recorded before it.
pub async fn claim_decision(
    store: &dyn EpisodeStore,
    episode_id: &str,
    outcome: &str,
    decision: &Value,
) -> Result<Value, PortError> {
    let series = decisions_of(episode_id, outcome);
    let fingerprint = sha256_hex(decision.to_string().as_bytes());
    let envelope_for = |revision: u32| EventEnvelope {
        version: "0".into(),
        id: format!("{series}:{revision}"),
        detail_type: "Decision".into(),
        source: "podflow.approval".into(),
        account: String::new(),
        time: String::new(),
        region: String::new(),
        resources: Vec::new(),
        detail: decision.clone(),
    };
    store
        .record_revision(&series, &fingerprint, &envelope_for)
        .await?;
    Ok(self::decision(store, episode_id, outcome)
        .await?
        .unwrap_or_else(|| decision.clone()))
}

/// What a person changed when approving a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edits {
    /// The title to publish under.
    pub title: String,
    /// The summary as edited; `None`: as proposed.
    pub summary: Option<String>,
}

/// What a person decided about a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Approved {
        proposal: u32,
        edits: Edits,
        by: String,
    },
    Rejected {
        proposal: u32,
        note: String,
        rerun: Vec<String>,
        by: String,
    },
}

impl Decision {
    /// The proposal decided on.
    pub fn proposal(&self) -> u32 {
        match self {
            Self::Approved { proposal, .. } | Self::Rejected { proposal, .. } => *proposal,
        }
    }

    /// "approved by cli as “Title”" / "rejected by U123: note".
    pub fn describe(&self) -> String {
        match self {
            Self::Approved {
                proposal,
                edits,
                by,
            } => {
                format!("proposal {proposal} approved by {by} as “{}”", edits.title)
            }
            Self::Rejected {
                proposal,
                note,
                rerun,
                by,
            } => {
                let mut text = format!("proposal {proposal} rejected by {by}: {note}");
                if !rerun.is_empty() {
                    text.push_str(&format!(" (re-running {})", rerun.join(", ")));
                }
                text
            }
        }
    }
}
