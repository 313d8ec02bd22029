//! A person in the loop (shows with `approval = "required"`): each distinct outcome is
//! first *proposed* (`EpisodeProposed`, with the titles, summary and chapters to choose
//! from), and published only once a person approves it — with the title they chose or
//! wrote and the summary as they edited it — or re-run in part once they reject it.
//!
//! Proposals and decisions live in the store as [`podflow_core::approval`] lays them out:
//! proposals numbered like revisions (one per distinct outcome, the same envelope for every
//! re-announcement), and the first decision on an outcome standing, so whatever wakes the
//! publisher later finds it, and a decision that arrives twice changes nothing.

use podflow_core::{
    EpisodeStore, Outcome, PortError, StepStatus, StoredRevision, approval as state,
    content::sha256_hex, show::ShowConfig,
};
use podflow_events::{
    EpisodeApproved, EpisodeProposed, EpisodeRejected, EpisodeSummarized, EventEnvelope,
    ProposedChapter, SCHEMA_VERSION,
};

use crate::{
    PublishHandler,
    files::{self, Stage},
};

/// The step a proposal waits in.
pub const STEP: &str = "approve";

pub use podflow_core::approval::proposals_of;

pub use podflow_core::approval::{Decision, Edits};

/// Why a decision cannot be taken (said to the person who tried).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("episode {0} is not known here (see `podflow status`)")]
    UnknownEpisode(String),
    #[error(
        "episode {0} has nothing waiting for approval: it is still being made, or its show does not require approval (approval = \"required\" in podflow.toml)"
    )]
    NothingProposed(String),
    #[error(
        "episode {episode} has no proposal {asked}: the latest is proposal {latest}; decide on that one"
    )]
    NotTheLatest {
        episode: String,
        asked: u32,
        latest: u32,
    },
    #[error("episode {episode}: {decided} already; nothing is published twice")]
    AlreadyDecided { episode: String, decided: String },
    #[error(transparent)]
    Store(#[from] PortError),
}

/// The proposal a person may decide on now: the latest one, if it is undecided.
#[derive(Debug, Clone)]
pub struct Pending {
    pub proposal: EpisodeProposed,
    pub outcome: String,
}

/// The latest proposal of an episode and its outcome fingerprint.
pub async fn latest(
    store: &dyn EpisodeStore,
    episode_id: &str,
) -> Result<Option<(EpisodeProposed, String)>, PortError> {
    let Some((envelope, outcome)) = state::latest(store, episode_id).await? else {
        return Ok(None);
    };
    let proposal: EpisodeProposed = envelope
        .decode()
        .map_err(|e| PortError::storage(format!("proposal of {episode_id}"), e))?;
    Ok(Some((proposal, outcome)))
}

/// The decision that stands on an outcome, if any.
pub async fn decision(
    store: &dyn EpisodeStore,
    episode_id: &str,
    outcome: &str,
) -> Result<Option<Decision>, PortError> {
    Ok(state::decision(store, episode_id, outcome)
        .await?
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// Checks that `proposal` (or the latest, when `None`) can be decided on now.
pub async fn pending(
    store: &dyn EpisodeStore,
    episode_id: &str,
    proposal: Option<u32>,
) -> Result<Pending, Refusal> {
    if store.episode(episode_id).await?.is_none() {
        return Err(Refusal::UnknownEpisode(episode_id.to_owned()));
    }
    let Some((latest, outcome)) = latest(store, episode_id).await? else {
        return Err(Refusal::NothingProposed(episode_id.to_owned()));
    };
    if let Some(asked) = proposal
        && asked != latest.proposal
    {
        return Err(Refusal::NotTheLatest {
            episode: episode_id.to_owned(),
            asked,
            latest: latest.proposal,
        });
    }
    if let Some(taken) = decision(store, episode_id, &outcome).await? {
        return Err(Refusal::AlreadyDecided {
            episode: episode_id.to_owned(),
            decided: taken.describe(),
        });
    }
    Ok(Pending {
        proposal: latest,
        outcome,
    })
}

/// The outcome of a summary before its files are made: what the store says happened,
/// and how many times a person's rejection made prompts run again (so a re-run is a new
/// outcome even when its answers come back the same).
async fn outcome_of(
    store: &dyn EpisodeStore,
    summary: &EpisodeSummarized,
) -> Result<String, PortError> {
    let reruns = store
        .work_count(state::RERUN_KIND, &summary.episode_id)
        .await?;
    let text = serde_json::to_string(summary).unwrap_or_default();
    Ok(sha256_hex(format!("{text}:reruns={reruns}").as_bytes()))
}

/// Publishes the approved outcome, waits on a rejected one, or proposes a new one — or,
/// for a show that does not require approval, publishes what has no decision at once. (A
/// decision taken stays the decision for its outcome even if the show's setting changes.)
pub async fn publish_or_propose(
    handler: &PublishHandler,
    summary: Box<EpisodeSummarized>,
    show: &ShowConfig,
    problems: Vec<String>,
) -> Result<Outcome, PortError> {
    let store = handler.store.as_ref();
    let episode_id = summary.episode_id.clone();
    let outcome = outcome_of(store, &summary).await?;
    match decision(store, &episode_id, &outcome).await? {
        Some(Decision::Approved {
            edits,
            by,
            proposal,
        }) => {
            let published = handler
                .publish_revision(summary, show, Some(&edits), problems)
                .await?;
            let note = Decision::Approved {
                proposal,
                edits,
                by,
            }
            .describe();
            store
                .step_finished(&episode_id, STEP, StepStatus::Done, Some(&note))
                .await?;
            return Ok(published);
        }
        // Waiting for the re-run prompts, whose outcome is proposed anew; a rejection stands
        // even if the show stops requiring approval.
        Some(Decision::Rejected { .. }) => return Ok(Outcome::nothing()),
        _ if !show.approval_required() => {
            return handler
                .publish_revision(summary, show, None, problems)
                .await;
        }
        _ => {}
    }
    let mut draft = summary.clone();
    let made = files::make(handler, &mut draft, show, None, Stage::Draft).await?;
    let envelope_for = |proposal: u32| {
        let mut envelope = EventEnvelope::wrap(&EpisodeProposed {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: episode_id.clone(),
            correlation_id: draft.correlation_id.clone(),
            proposal,
            status: draft.status,
            titles: made.titles.clone(),
            summary: made.summary.clone(),
            chapters: made
                .chapters
                .iter()
                .map(|c| ProposedChapter {
                    start_time: c.start_time,
                    title: c.title.clone(),
                })
                .collect(),
            files: draft.files.clone(),
            failed_prompts: draft.failed_prompts.clone(),
        });
        envelope.id = format!("{episode_id}:proposal:p{proposal}");
        envelope
    };
    let StoredRevision {
        revision: proposal,
        envelope,
        ..
    } = store
        .record_revision(&proposals_of(&episode_id), &outcome, &envelope_for)
        .await?;
    store
        .record_work(
            &state::outcome_key(&episode_id, proposal),
            &episode_id,
            &serde_json::Value::String(outcome),
        )
        .await?;
    store.step_started(&episode_id, STEP).await?;
    let mut note =
        format!("proposal {proposal} awaits approval (podflow approve {episode_id}, or reject)");
    let problems: Vec<String> = problems.into_iter().chain(made.problems).collect();
    if !problems.is_empty() {
        note.push_str(&format!("; {}", problems.join("; ")));
    }
    store
        .step_finished(&episode_id, STEP, StepStatus::Running, Some(&note))
        .await?;
    Ok(Outcome::done(vec![envelope]))
}

/// Records a person's approval, unless the proposal is no longer the latest or was decided
/// otherwise (then nothing changes and the reason is returned for the logs). The same
/// approval twice is recorded once.
pub async fn record_approval(
    store: &dyn EpisodeStore,
    approved: &EpisodeApproved,
) -> Result<Result<(), Refusal>, PortError> {
    let decision = Decision::Approved {
        proposal: approved.proposal,
        edits: Edits {
            title: approved.title.trim().to_owned(),
            summary: approved.summary.clone(),
        },
        by: approved.approved_by.clone(),
    };
    record(store, &approved.episode_id, decision).await
}

/// Records a person's rejection (see [`record_approval`]).
pub async fn record_rejection(
    store: &dyn EpisodeStore,
    rejected: &EpisodeRejected,
) -> Result<Result<(), Refusal>, PortError> {
    let decision = Decision::Rejected {
        proposal: rejected.proposal,
        note: rejected.note.clone(),
        rerun: rejected.rerun.clone(),
        by: rejected.rejected_by.clone(),
    };
    let recorded = record(store, &rejected.episode_id, decision.clone()).await?;
    if recorded.is_ok() {
        store
            .step_finished(
                &rejected.episode_id,
                STEP,
                StepStatus::Running,
                Some(&decision.describe()),
            )
            .await?;
    }
    Ok(recorded)
}

async fn record(
    store: &dyn EpisodeStore,
    episode_id: &str,
    decision: Decision,
) -> Result<Result<(), Refusal>, PortError> {
    let Some((latest, outcome)) = latest(store, episode_id).await? else {
        return Ok(Err(Refusal::NothingProposed(episode_id.to_owned())));
    };
    if latest.proposal != decision.proposal() {
        return Ok(Err(Refusal::NotTheLatest {
            episode: episode_id.to_owned(),
            asked: decision.proposal(),
            latest: latest.proposal,
        }));
    }
    let value = serde_json::to_value(&decision).map_err(|e| PortError::storage("decision", e))?;
    // The first decision on the outcome stands; the same one again is no change.
    let standing = state::claim_decision(store, episode_id, &outcome, &value).await?;
    if standing == value {
        return Ok(Ok(()));
    }
    let described = serde_json::from_value::<Decision>(standing)
        .map_or_else(|_| "decided".to_owned(), |d| d.describe());
    Ok(Err(Refusal::AlreadyDecided {
        episode: episode_id.to_owned(),
        decided: described,
    }))
}

/// The title a person chose: one of the suggestions (from 1) or their own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TitleChoice {
    /// The proposal's first suggestion (or the file's name when there is none).
    First,
    Suggested(usize),
    Written(String),
}

/// What a person asks for, from the CLI, the web page or Slack.
#[derive(Debug, Clone)]
pub enum Request {
    Approve {
        title: TitleChoice,
        summary: Option<String>,
    },
    Reject {
        note: String,
        rerun: Vec<String>,
        model: Option<String>,
        prompt_version: Option<String>,
    },
}

/// Why a request is refused before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(
        "proposal {proposal} has {count} suggested title(s): choose 1 to {count}, or write the title"
    )]
    NoSuchTitle { proposal: u32, count: usize },
    #[error("a title cannot be empty")]
    EmptyTitle,
    #[error("a rejection needs a note saying why")]
    EmptyNote,
    #[error("episode has no prompt `{prompt}` to re-run (its prompts: {known})")]
    UnknownPrompt { prompt: String, known: String },
    #[error("prompt version `{0}` is not a number from 1 up, or `latest`")]
    BadPromptVersion(String),
}

/// Checks a person's request against the episode's latest proposal and makes the event
/// that carries it (`EpisodeApproved` / `EpisodeRejected`), ready for the bus.
pub async fn decide(
    store: &dyn EpisodeStore,
    episode_id: &str,
    proposal: Option<u32>,
    request: Request,
    by: &str,
) -> Result<EventEnvelope, RequestError> {
    let Pending { proposal, .. } = pending(store, episode_id, proposal).await?;
    let envelope = match request {
        Request::Approve { title, summary } => {
            let title = match title {
                TitleChoice::First => match proposal.titles.first() {
                    Some(t) => t.clone(),
                    None => store
                        .episode(episode_id)
                        .await
                        .map_err(Refusal::from)?
                        .map_or_else(|| episode_id.to_owned(), |r| r.original_name),
                },
                TitleChoice::Suggested(n) => {
                    proposal.titles.get(n.wrapping_sub(1)).cloned().ok_or(
                        RequestError::NoSuchTitle {
                            proposal: proposal.proposal,
                            count: proposal.titles.len(),
                        },
                    )?
                }
                TitleChoice::Written(text) => text,
            };
            if title.trim().is_empty() {
                return Err(RequestError::EmptyTitle);
            }
            EventEnvelope::wrap(&EpisodeApproved {
                schema_version: SCHEMA_VERSION.into(),
                episode_id: episode_id.to_owned(),
                correlation_id: proposal.correlation_id.clone(),
                proposal: proposal.proposal,
                title: title.trim().to_owned(),
                summary: summary
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty()),
                approved_by: by.to_owned(),
            })
        }
        Request::Reject {
            note,
            rerun,
            model,
            prompt_version,
        } => {
            if note.trim().is_empty() {
                return Err(RequestError::EmptyNote);
            }
            let known: Vec<String> = store
                .prompts(episode_id)
                .await
                .map_err(Refusal::from)?
                .into_iter()
                .map(|p| p.prompt_id)
                .collect();
            let mut named = std::collections::HashSet::new();
            let rerun: Vec<String> = rerun
                .into_iter()
                .filter(|p| named.insert(p.clone()))
                .collect();
            if let Some(unknown) = rerun.iter().find(|p| !known.contains(p)) {
                return Err(RequestError::UnknownPrompt {
                    prompt: unknown.clone(),
                    known: known.join(", "),
                });
            }
            if let Some(v) = &prompt_version
                && v != "latest"
                && !v.parse::<u32>().is_ok_and(|n| n > 0)
            {
                return Err(RequestError::BadPromptVersion(v.clone()));
            }
            EventEnvelope::wrap(&EpisodeRejected {
                schema_version: SCHEMA_VERSION.into(),
                episode_id: episode_id.to_owned(),
                correlation_id: proposal.correlation_id.clone(),
                proposal: proposal.proposal,
                note: note.trim().to_owned(),
                rerun,
                model,
                prompt_version,
                rejected_by: by.to_owned(),
            })
        }
    };
    Ok(envelope)
}

/// Hours a proposal waits before its one reminder, unless the show says otherwise.
pub const DEFAULT_REMINDER_HOURS: u32 = 24;

/// A proposal that has waited longer than the show allows and was not reminded yet.
#[derive(Debug, Clone)]
pub struct Reminder {
    pub proposal: EpisodeProposed,
    pub waiting_hours: f64,
}

fn reminded_key(episode_id: &str, proposal: u32) -> String {
    format!("reminded:{episode_id}:{proposal}")
}

/// The proposals to remind a person of now: the latest of each episode, undecided, older
/// than `approval_reminder_hours`, never reminded. Reminding never publishes anything.
pub async fn reminders_due(
    store: &dyn EpisodeStore,
    show: &ShowConfig,
    now_ms: i64,
) -> Result<Vec<Reminder>, PortError> {
    let hours = f64::from(
        show.approval_reminder_hours
            .unwrap_or(DEFAULT_REMINDER_HOURS),
    );
    let mut due = Vec::new();
    for episode in store.episodes().await? {
        let id = episode.episode_id;
        let Some(envelope) = store.summary(&proposals_of(&id), None).await? else {
            continue;
        };
        let Ok(proposal) = envelope.decode::<EpisodeProposed>() else {
            continue;
        };
        let Ok(at) = time::OffsetDateTime::parse(
            &envelope.time,
            &time::format_description::well_known::Rfc3339,
        ) else {
            continue;
        };
        let proposed_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        let waiting_hours = (now_ms - proposed_ms) as f64 / 3_600_000.0;
        if waiting_hours < hours
            || store
                .work_result(&reminded_key(&id, proposal.proposal))
                .await?
                .is_some()
        {
            continue;
        }
        let Some((_, outcome)) = latest(store, &id).await? else {
            continue;
        };
        if decision(store, &id, &outcome).await?.is_some() {
            continue;
        }
        due.push(Reminder {
            proposal,
            waiting_hours,
        });
    }
    Ok(due)
}

/// Records that a proposal's reminder went out, so it goes out once.
pub async fn mark_reminded(
    store: &dyn EpisodeStore,
    episode_id: &str,
    proposal: u32,
) -> Result<(), PortError> {
    store
        .record_work(
            &reminded_key(episode_id, proposal),
            episode_id,
            &serde_json::json!({ "at_ms": podflow_core::now_ms() }),
        )
        .await
}
