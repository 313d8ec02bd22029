//! Slack interactivity: the Approve / Edit / Reject buttons of a proposal's message (see
//! [`crate::slack::proposal_message`]) and the forms Edit and Reject open, turned into a
//! person's decision on the bus.
//!
//! Every request is first checked against the Slack app's signing secret ([`verify`]: Slack's
//! "Verifying requests from Slack", an HMAC-SHA256 of `v0:timestamp:body` at most five
//! minutes old). Its `payload` ([`parse`]) becomes an approval [`Request`], checked and sent
//! as `EpisodeApproved` / `EpisodeRejected` by [`SlackActions::answer`] with the checks
//! `podflow approve` makes. Slack gives up on an answer after 3 s, so everything the answer
//! waits on has a deadline inside that ([`Timing`]). Slack's Web API — `views.open` for the
//! forms, the interaction's `response_url` for replies — is reached through the
//! [`SlackWebApi`] port ([`SlackHttp`] on the network).

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use podflow_core::{EpisodeStore, EventPublisher, PortError, secret::Secret};
use podflow_events::{EpisodeApproved, EpisodeProposed, EpisodeRejected, EventEnvelope};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    approval::{self, Refusal, Request, RequestError, TitleChoice},
    documents::truncate,
    slack::{self, escape},
};

/// How far a request's timestamp may be from now, either way (Slack's advice: five minutes).
pub const MAX_SKEW_SECONDS: u64 = 5 * 60;

/// Why a request is not taken as Slack's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Slack-Request-Timestamp header: not a request from Slack")]
    MissingTimestamp,
    #[error("no X-Slack-Signature header: not a request from Slack")]
    MissingSignature,
    #[error("X-Slack-Request-Timestamp {0:?} is not a number of seconds")]
    BadTimestamp(String),
    #[error(
        "the request was signed at {signed}, more than 5 minutes from now ({now}): a replay, or a clock that is off"
    )]
    Stale { signed: i64, now: u64 },
    #[error(
        "X-Slack-Signature does not match the body: not signed with this Slack app's signing secret"
    )]
    Mismatch,
}

/// Checks that `body` came from Slack: `signature` must be `v0=` and the hex HMAC-SHA256,
/// keyed with the app's signing secret, of `v0:{timestamp}:{body}`, and `timestamp` (Unix
/// seconds) within [`MAX_SKEW_SECONDS`] of `now`. The comparison takes the same time
/// whatever the bytes, so the signature cannot be guessed one byte at a time.
pub fn verify(
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?.trim();
    let signature = signature.ok_or(SignatureError::MissingSignature)?.trim();
    let signed: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(timestamp.to_owned()))?;
    let skew = i128::from(signed).abs_diff(i128::from(now));
    if skew > u128::from(MAX_SKEW_SECONDS) {
        return Err(SignatureError::Stale { signed, now });
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .map_err(|_| SignatureError::Mismatch)?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `action_id`s of the proposal message's buttons.
pub mod action_ids {
    /// `podflow_approve_<n>`: the n-th suggested title (0: no title was suggested).
    pub const APPROVE: &str = "podflow_approve";
    pub const EDIT: &str = "podflow_edit";
    pub const REJECT: &str = "podflow_reject";
}

/// The `callback_id`s of the forms (Slack modals).
pub mod callback_ids {
    pub const EDIT: &str = "podflow_edit";
    pub const REJECT: &str = "podflow_reject";
}

/// What a button carries: the proposal it decides, and for Approve the suggested title
/// (from 1; none: the first, or the file's name). Short keys: Slack caps a value at 2000
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionValue {
    #[serde(rename = "e")]
    pub episode_id: String,
    #[serde(rename = "p")]
    pub proposal: u32,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub title: Option<usize>,
}

/// What a form carries from the click that opened it to its submission (its
/// `private_metadata`): the proposal, and the message's `response_url`, which a submission
/// does not bring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FormMetadata {
    #[serde(rename = "e")]
    episode_id: String,
    #[serde(rename = "p")]
    proposal: u32,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    response_url: Option<String>,
}

/// The proposal an interaction is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub episode_id: String,
    pub proposal: u32,
}

/// Which form a button opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Title and summary, then approve.
    Edit,
    /// A note and the prompts to run again.
    Reject,
}

/// Where a decision came from: a button (answered in the channel) or a submitted form
/// (whose input mistakes are shown in the form itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Button,
    Form,
}

/// What a person did.
#[derive(Debug, Clone)]
pub enum Action {
    /// A decision to check and send.
    Decide {
        target: Target,
        request: Request,
        via: Via,
    },
    /// Open a form (it needs the interaction's `trigger_id`, which works for 3 s).
    Open {
        form: Form,
        target: Target,
        trigger_id: String,
    },
    /// Something podflow does not act on (another app's button, a closed form...).
    Ignore(String),
}

/// One interaction from Slack: who, what, and where to answer.
#[derive(Debug, Clone)]
pub struct Interaction {
    /// The Slack user id of the person (`U…`): the decision's `approved_by` / `rejected_by`.
    pub user: String,
    /// Where replies to this interaction go (the message's, for a submitted form).
    pub response_url: Option<String>,
    pub action: Action,
}

/// Why a body is not an interaction podflow can read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not form-encoded with a `payload` field")]
    NoPayload,
    #[error("the payload is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the payload has no {0}")]
    Missing(&'static str),
    #[error("the {0} button carries a value podflow did not write")]
    BadValue(String),
    #[error("the form's private_metadata is not podflow's")]
    BadMetadata,
}

/// Reads an interaction from the request's `application/x-www-form-urlencoded` body, whose
/// `payload` field is the JSON of a `block_actions` (a button) or `view_submission` (a
/// form) payload.
pub fn parse(body: &[u8]) -> Result<Interaction, PayloadError> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| PayloadError::NoPayload)?;
    let payload = fields
        .into_iter()
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value)
        .ok_or(PayloadError::NoPayload)?;
    let p: Value = serde_json::from_str(&payload).map_err(PayloadError::NotJson)?;
    let user = p["user"]["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or(PayloadError::Missing("user.id"))?
        .to_owned();
    match p["type"].as_str() {
        Some("block_actions") => button(&p, user),
        Some("view_submission") => submission(&p, user),
        other => Ok(Interaction {
            user,
            response_url: None,
            action: Action::Ignore(format!("a {} payload", other.unwrap_or("typeless"))),
        }),
    }
}

fn button(p: &Value, user: String) -> Result<Interaction, PayloadError> {
    let response_url = p["response_url"].as_str().map(str::to_owned);
    let ignore = |why: String| Interaction {
        user: user.clone(),
        response_url: response_url.clone(),
        action: Action::Ignore(why),
    };
    let Some(action) = p["actions"].as_array().and_then(|a| a.first()) else {
        return Ok(ignore("a block_actions payload without actions".into()));
    };
    let id = action["action_id"].as_str().unwrap_or_default();
    let ours =
        id.starts_with(action_ids::APPROVE) || id == action_ids::EDIT || id == action_ids::REJECT;
    if !ours {
        return Ok(ignore(format!("the action {id:?} is not podflow's")));
    }
    let value: ActionValue = action["value"]
        .as_str()
        .and_then(|v| serde_json::from_str(v).ok())
        .filter(|v: &ActionValue| !v.episode_id.is_empty() && v.proposal > 0)
        .ok_or_else(|| PayloadError::BadValue(id.to_owned()))?;
    let target = Target {
        episode_id: value.episode_id,
        proposal: value.proposal,
    };
    let trigger_id = || {
        p["trigger_id"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or(PayloadError::Missing("trigger_id"))
    };
    let action = if id.starts_with(action_ids::APPROVE) {
        Action::Decide {
            target,
            request: Request::Approve {
                title: value
                    .title
                    .map_or(TitleChoice::First, TitleChoice::Suggested),
                summary: None,
            },
            via: Via::Button,
        }
    } else {
        Action::Open {
            form: if id == action_ids::EDIT {
                Form::Edit
            } else {
                Form::Reject
            },
            target,
            trigger_id: trigger_id()?,
        }
    };
    Ok(Interaction {
        user,
        response_url,
        action,
    })
}

fn submission(p: &Value, user: String) -> Result<Interaction, PayloadError> {
    let view = &p["view"];
    let form = match view["callback_id"].as_str() {
        Some(callback_ids::EDIT) => Form::Edit,
        Some(callback_ids::REJECT) => Form::Reject,
        other => {
            return Ok(Interaction {
                user,
                response_url: None,
                action: Action::Ignore(format!("the form {other:?} is not podflow's")),
            });
        }
    };
    let meta: FormMetadata = view["private_metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .filter(|m: &FormMetadata| !m.episode_id.is_empty() && m.proposal > 0)
        .ok_or(PayloadError::BadMetadata)?;
    // Each input is its own block, and its element has the block's id as action_id.
    let values = &view["state"]["values"];
    let text = |field: &str| values[field][field]["value"].as_str().map(str::to_owned);
    let request = match form {
        Form::Edit => Request::Approve {
            title: TitleChoice::Written(text(fields::TITLE).unwrap_or_default()),
            summary: text(fields::SUMMARY),
        },
        Form::Reject => Request::Reject {
            note: text(fields::NOTE).unwrap_or_default(),
            rerun: values[fields::RERUN][fields::RERUN]["selected_options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["value"].as_str().map(str::to_owned))
                .collect(),
            model: None,
            prompt_version: None,
        },
    };
    Ok(Interaction {
        user,
        response_url: meta.response_url,
        action: Action::Decide {
            target: Target {
                episode_id: meta.episode_id,
                proposal: meta.proposal,
            },
            request,
            via: Via::Form,
        },
    })
}

/// The inputs of the forms: each block's `block_id` and its element's `action_id`.
mod fields {
    pub const TITLE: &str = "title";
    pub const SUMMARY: &str = "summary";
    pub const NOTE: &str = "note";
    pub const RERUN: &str = "rerun";
}

/// Slack's caps for forms (Block Kit reference: modal views, inputs, options).
mod form_limits {
    pub const TITLE: usize = 24;
    pub const PRIVATE_METADATA: usize = 3000;
    pub const INPUT_TEXT: usize = 3000;
    pub const CHECKBOXES: usize = 10;
    pub const SELECT_OPTIONS: usize = 100;
    pub const OPTION_TEXT: usize = 75;
    pub const OPTION_VALUE: usize = 150;
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": true})
}

/// The form's `private_metadata`; without the response_url should it not fit.
fn metadata(target: &Target, response_url: Option<&str>) -> String {
    let mut meta = FormMetadata {
        episode_id: target.episode_id.clone(),
        proposal: target.proposal,
        response_url: response_url.map(str::to_owned),
    };
    let text = serde_json::to_string(&meta).unwrap_or_default();
    if text.chars().count() <= form_limits::PRIVATE_METADATA {
        return text;
    }
    meta.response_url = None;
    serde_json::to_string(&meta).unwrap_or_default()
}

fn modal(
    callback_id: &str,
    title: &str,
    submit: &str,
    private_metadata: String,
    blocks: Vec<Value>,
) -> Value {
    json!({
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(&truncate(title, form_limits::TITLE)),
        "submit": plain(submit),
        "close": plain("Cancel"),
        "private_metadata": private_metadata,
        "blocks": blocks,
    })
}

/// The Edit form: the title (the first suggestion, or the file's name, to start from) and
/// the summary as proposed. A summary longer than a Slack input holds is left out, and
/// kept as proposed.
pub fn edit_view(p: &EpisodeProposed, file_name: &str, response_url: Option<&str>) -> Value {
    let target = Target {
        episode_id: p.episode_id.clone(),
        proposal: p.proposal,
    };
    let first = p.titles.first().map_or(file_name, String::as_str);
    let mut title = json!({
        "type": "plain_text_input",
        "action_id": fields::TITLE,
        "max_length": 300,
    });
    let first = truncate(first, 300);
    if !first.is_empty() {
        title["initial_value"] = json!(first);
    }
    let mut blocks = vec![json!({
        "type": "input",
        "block_id": fields::TITLE,
        "label": plain("Title"),
        "element": title,
    })];
    if p.titles.len() > 1 {
        let others: Vec<String> = p
            .titles
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}. {}", i + 1, escape(t)))
            .collect();
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": truncate(&format!("Suggested: {}", others.join(" · ")), 2000)}],
        }));
    }
    let summary = p.summary.as_deref().map(str::trim).unwrap_or_default();
    if summary.chars().count() <= form_limits::INPUT_TEXT {
        let mut element = json!({
            "type": "plain_text_input",
            "action_id": fields::SUMMARY,
            "multiline": true,
            "max_length": form_limits::INPUT_TEXT,
        });
        if !summary.is_empty() {
            element["initial_value"] = json!(summary);
        }
        blocks.push(json!({
            "type": "input",
            "block_id": fields::SUMMARY,
            "optional": true,
            "label": plain("Summary"),
            "hint": plain("Left empty, the proposed summary is published."),
            "element": element,
        }));
    } else {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "The summary is longer than a Slack form holds: it is published as proposed. To edit it: `podflow approve {} --proposal {} --summary-file FILE`.",
                escape(&p.episode_id), p.proposal
            )}],
        }));
    }
    modal(
        callback_ids::EDIT,
        "Edit and approve",
        "Approve",
        metadata(&target, response_url),
        blocks,
    )
}

/// The Reject form: why (required), and which of the episode's prompts run again —
/// checkboxes, or a multi-select when there are more than Slack's ten checkboxes.
pub fn reject_view(p: &EpisodeProposed, prompts: &[String], response_url: Option<&str>) -> Value {
    let target = Target {
        episode_id: p.episode_id.clone(),
        proposal: p.proposal,
    };
    let mut blocks = vec![json!({
        "type": "input",
        "block_id": fields::NOTE,
        "label": plain("Why"),
        "element": {
            "type": "plain_text_input",
            "action_id": fields::NOTE,
            "multiline": true,
            "max_length": form_limits::INPUT_TEXT,
        },
    })];
    let options: Vec<Value> = prompts
        .iter()
        .filter(|id| !id.is_empty() && id.chars().count() <= form_limits::OPTION_VALUE)
        .take(form_limits::SELECT_OPTIONS)
        .map(|id| json!({"text": plain(&truncate(id, form_limits::OPTION_TEXT)), "value": id}))
        .collect();
    if !options.is_empty() {
        let element = if options.len() <= form_limits::CHECKBOXES {
            json!({"type": "checkboxes", "action_id": fields::RERUN, "options": options})
        } else {
            json!({
                "type": "multi_static_select",
                "action_id": fields::RERUN,
                "placeholder": plain("Prompts"),
                "options": options,
            })
        };
        blocks.push(json!({
            "type": "input",
            "block_id": fields::RERUN,
            "optional": true,
            "label": plain("Run these prompts again"),
            "hint": plain("Their new outcome is proposed anew. None: nothing runs until something is replayed."),
            "element": element,
        }));
    }
    modal(
        callback_ids::REJECT,
        "Reject the proposal",
        "Reject",
        metadata(&target, response_url),
        blocks,
    )
}

/// Why a call to Slack's Web API did not do what was asked. Never holds a token or a
/// response_url (their paths are secrets).
#[derive(Debug, thiserror::Error)]
pub enum SlackCallError {
    #[error("no bot token is configured (PODFLOW_SLACK_BOT_TOKEN), so forms cannot be opened")]
    NoBotToken,
    #[error("the response_url is not Slack's (it must start with {0}); nothing was sent to it")]
    NotSlack(String),
    #[error("{what} did not answer within {ms} ms")]
    Timeout { what: &'static str, ms: u128 },
    #[error("{what} could not be reached: {reason}")]
    Unreachable { what: &'static str, reason: String },
    #[error("{what} answered HTTP {status}: {body}")]
    Http {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("{what} refused: {error}{detail}")]
    Refused {
        what: &'static str,
        error: String,
        detail: String,
    },
}

/// The calls podflow makes to Slack while answering an interaction.
#[async_trait]
pub trait SlackWebApi: Send + Sync {
    /// Whether forms can be opened (`views.open` needs the app's bot token).
    fn opens_views(&self) -> bool;
    /// `views.open` with the interaction's `trigger_id`.
    async fn open_view(
        &self,
        trigger_id: &str,
        view: &Value,
        timeout: Duration,
    ) -> Result<(), SlackCallError>;
    /// Posts `message` (JSON) to an interaction's `response_url`.
    async fn respond(
        &self,
        response_url: &str,
        message: &Value,
        timeout: Duration,
    ) -> Result<(), SlackCallError>;
}

/// Slack's Web API over HTTPS.
pub struct SlackHttp {
    client: reqwest::Client,
    /// `https://slack.com/api` (a fake's in tests).
    api_base: String,
    /// What every response_url starts with: podflow posts nowhere else.
    response_prefix: String,
    bot_token: Option<Secret>,
}

impl SlackHttp {
    /// Slack itself; `bot_token` (`xoxb-…`) lets Edit and Reject open forms.
    pub fn new(bot_token: Option<Secret>) -> Result<Self, PortError> {
        Self::with_endpoints(
            "https://slack.com/api",
            "https://hooks.slack.com/",
            bot_token,
        )
    }

    /// Another Slack (a fake on loopback): its API base and its response_urls' prefix.
    pub fn with_endpoints(
        api_base: &str,
        response_prefix: &str,
        bot_token: Option<Secret>,
    ) -> Result<Self, PortError> {
        // reqwest is built without a default crypto provider (to share the AWS SDK's).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| PortError::setup(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            api_base: api_base.trim_end_matches('/').to_owned(),
            response_prefix: response_prefix.to_owned(),
            bot_token: bot_token.filter(|t| !t.expose().trim().is_empty()),
        })
    }

    async fn post(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, SlackCallError> {
        let response = request.timeout(timeout).send().await.map_err(|e| {
            if e.is_timeout() {
                SlackCallError::Timeout {
                    what,
                    ms: timeout.as_millis(),
                }
            } else {
                SlackCallError::Unreachable {
                    what,
                    reason: podflow_core::report(&e.without_url()),
                }
            }
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(SlackCallError::Http {
                what,
                status,
                body: truncate(body.trim(), 200),
            });
        }
        // The Web API answers JSON; a response_url may answer a bare `ok`.
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| json!({"ok": body.trim() == "ok"}));
        if answer["ok"] == true {
            return Ok(answer);
        }
        let messages: Vec<&str> = answer["response_metadata"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        Err(SlackCallError::Refused {
            what,
            error: answer["error"]
                .as_str()
                .unwrap_or("no error named")
                .to_owned(),
            detail: if messages.is_empty() {
                String::new()
            } else {
                format!(" ({})", truncate(&messages.join("; "), 300))
            },
        })
    }
}

#[async_trait]
impl SlackWebApi for SlackHttp {
    fn opens_views(&self) -> bool {
        self.bot_token.is_some()
    }

    async fn open_view(
        &self,
        trigger_id: &str,
        view: &Value,
        timeout: Duration,
    ) -> Result<(), SlackCallError> {
        let Some(token) = &self.bot_token else {
            return Err(SlackCallError::NoBotToken);
        };
        let request = self
            .client
            .post(format!("{}/views.open", self.api_base))
            .bearer_auth(token.expose())
            .json(&json!({"trigger_id": trigger_id, "view": view}));
        self.post("views.open", request, timeout).await.map(|_| ())
    }

    async fn respond(
        &self,
        response_url: &str,
        message: &Value,
        timeout: Duration,
    ) -> Result<(), SlackCallError> {
        // The URL comes from a signed payload; still, podflow posts only to Slack.
        if !response_url.starts_with(&self.response_prefix) {
            return Err(SlackCallError::NotSlack(self.response_prefix.clone()));
        }
        let request = self.client.post(response_url).json(message);
        self.post("the response_url", request, timeout)
            .await
            .map(|_| ())
    }
}

/// How long answering may take. Slack shows the person an error when the answer takes
/// more than 3 s, and a `trigger_id` works for 3 s after the click.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From the request's arrival to the answer at the latest, but for a last reply in
    /// Slack, which may take [`REPLY_FLOOR`] more (2.5 s + 0.3 s by default).
    pub answer_within: Duration,
    /// The longest `views.open` may take.
    pub views_open: Duration,
    /// The longest one post to a response_url may take.
    pub response_url: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            answer_within: Duration::from_millis(2500),
            views_open: Duration::from_secs(2),
            response_url: Duration::from_secs(1),
        }
    }
}

/// An HTTP answer to Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl HttpAnswer {
    /// `200` and nothing: taken (and a submitted form closes).
    fn taken() -> Self {
        Self::text(200, String::new())
    }

    fn text(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }

    fn json(value: &Value) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: value.to_string(),
        }
    }
}

/// The time a reply in Slack gets however late it is: a person is told what happened
/// (a decision sent, a refusal, a form that did not open) even when the work before took
/// all of [`Timing::answer_within`].
pub const REPLY_FLOOR: Duration = Duration::from_millis(300);

/// How long re-reading the proposal for the updated message may take; past it the message
/// says the decision in one line.
const READ_BACK: Duration = Duration::from_millis(300);

/// Replies to the person through the interaction's response_url, by the deadline or at most
/// [`REPLY_FLOOR`] after it.
struct Reply<'a> {
    slack: &'a dyn SlackWebApi,
    url: Option<&'a str>,
    deadline: Instant,
    timeout: Duration,
}

impl Reply<'_> {
    /// Says `text` to the person who acted, and to nobody else.
    async fn privately(&self, text: &str) {
        self.post(&json!({"response_type": "ephemeral", "replace_original": false, "text": text}))
            .await;
    }

    /// Replaces the message the buttons were on.
    async fn replace(&self, mut message: Value) {
        message["replace_original"] = json!(true);
        self.post(&message).await;
    }

    async fn post(&self, message: &Value) {
        let Some(url) = self.url else {
            tracing::info!("the interaction has no response_url: nothing said in Slack");
            return;
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        let timeout = self.timeout.min(left.max(REPLY_FLOOR));
        if let Err(e) = self.slack.respond(url, message, timeout).await {
            tracing::warn!(error = %e, "could not answer in Slack");
        }
    }
}

/// Why a decision was not sent.
#[derive(Debug, thiserror::Error)]
enum NotSent {
    #[error(transparent)]
    Refused(#[from] RequestError),
    #[error("the decision was checked but not sent: {0}")]
    Publish(PortError),
}

/// The form input a refusal is about, if it is one a person can correct in the form.
fn form_field(refusal: &RequestError) -> Option<&'static str> {
    match refusal {
        RequestError::EmptyTitle | RequestError::NoSuchTitle { .. } => Some(fields::TITLE),
        RequestError::EmptyNote => Some(fields::NOTE),
        RequestError::UnknownPrompt { .. } => Some(fields::RERUN),
        RequestError::Refused(_) | RequestError::BadPromptVersion(_) => None,
    }
}

/// What to run instead, from a terminal.
fn command_hint(form: Form, target: &Target) -> String {
    let (id, p) = (escape(&target.episode_id), target.proposal);
    match form {
        Form::Edit => format!(
            "From a terminal: `podflow approve {id} --proposal {p} --title-text \"…\" --summary-file summary.txt`"
        ),
        Form::Reject => format!(
            "From a terminal: `podflow reject {id} --proposal {p} --note \"…\"` (add `--rerun titles,summary` to run prompts again)"
        ),
    }
}

/// The line that replaces the buttons once a decision is sent.
fn decided_line(envelope: &EventEnvelope, by: &str) -> String {
    let by = escape(by);
    if let Ok(a) = envelope.decode::<EpisodeApproved>() {
        let edited = if a.summary.is_some() {
            " with an edited summary"
        } else {
            ""
        };
        return format!(
            ":white_check_mark: Approved by <@{by}> as “{}”{edited}: publishing.",
            escape(&a.title)
        );
    }
    if let Ok(r) = envelope.decode::<EpisodeRejected>() {
        let rerun = if r.rerun.is_empty() {
            String::new()
        } else {
            format!(" Running again: {}.", escape(&r.rerun.join(", ")))
        };
        return format!(
            ":x: Rejected by <@{by}>: {}{rerun}",
            escape(&truncate(&r.note, 1000))
        );
    }
    format!("Decided by <@{by}>.")
}

/// Answers Slack's interactivity requests for proposals.
pub struct SlackActions {
    pub store: Arc<dyn EpisodeStore>,
    pub events: Arc<dyn EventPublisher>,
    pub slack: Arc<dyn SlackWebApi>,
    /// The Slack app's signing secret.
    pub signing_secret: Secret,
    pub timing: Timing,
}

impl SlackActions {
    /// [`SlackActions::answer`] at this machine's time, for a request received at
    /// `received_at_ms` (Unix milliseconds; a cold start may have passed since), counted
    /// in the time Slack waits.
    pub async fn answer_now(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        received_at_ms: Option<u64>,
    ) -> HttpAnswer {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let waited = received_at_ms.map_or(Duration::ZERO, |at| {
            now.saturating_sub(Duration::from_millis(at))
        });
        self.answer_after(headers, body, now.as_secs(), waited)
            .await
    }

    /// The answer to one request (its headers, any case, and raw body) at `now` (Unix
    /// seconds): 401 unless Slack signed it, 400 for a body that is not an interaction, else
    /// 200 — within [`Timing::answer_within`] (and [`REPLY_FLOOR`] for a last reply),
    /// whatever Slack, the store or the bus take.
    pub async fn answer(&self, headers: &[(String, String)], body: &[u8], now: u64) -> HttpAnswer {
        self.answer_after(headers, body, now, Duration::ZERO).await
    }

    /// [`SlackActions::answer`] for a request that arrived `waited` ago.
    pub async fn answer_after(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
        waited: Duration,
    ) -> HttpAnswer {
        let deadline = Instant::now() + self.timing.answer_within.saturating_sub(waited);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if let Err(why) = verify(
            self.signing_secret.expose(),
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
            now,
        ) {
            tracing::warn!(reason = %why, "request refused: not from Slack");
            return HttpAnswer::text(401, format!("{why}\n"));
        }
        let Interaction {
            user,
            response_url,
            action,
        } = match parse(body) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "a signed request podflow cannot read");
                return HttpAnswer::text(400, format!("{e}\n"));
            }
        };
        let reply = Reply {
            slack: self.slack.as_ref(),
            url: response_url.as_deref(),
            deadline,
            timeout: self.timing.response_url,
        };
        match action {
            Action::Ignore(why) => {
                tracing::info!(why, "interaction ignored");
                HttpAnswer::taken()
            }
            Action::Decide {
                target,
                request,
                via,
            } => self.decide(&target, request, &user, via, &reply).await,
            Action::Open {
                form,
                target,
                trigger_id,
            } => self.open(form, &target, &trigger_id, &reply).await,
        }
    }

    /// Checks the decision and puts its event on the bus, then updates the message.
    async fn decide(
        &self,
        target: &Target,
        request: Request,
        by: &str,
        via: Via,
        reply: &Reply<'_>,
    ) -> HttpAnswer {
        // Past the deadline the work is dropped, and the person told it may not have been
        // sent (a reply gets its floor of time even then).
        let sent = tokio::time::timeout_at(reply.deadline.into(), async {
            let envelope = approval::decide(
                self.store.as_ref(),
                &target.episode_id,
                Some(target.proposal),
                request,
                by,
            )
            .await?;
            self.events
                .publish(std::slice::from_ref(&envelope))
                .await
                .map_err(NotSent::Publish)?;
            Ok::<_, NotSent>(envelope)
        })
        .await;
        let episode_id = target.episode_id.as_str();
        match sent {
            Ok(Ok(envelope)) => {
                tracing::info!(episode_id, by, decision = %envelope.detail_type, "decision sent");
                let line = decided_line(&envelope, by);
                let left = reply.deadline.saturating_duration_since(Instant::now());
                reply
                    .replace(
                        self.decided_message(target, &line, READ_BACK.min(left))
                            .await,
                    )
                    .await;
                HttpAnswer::taken()
            }
            Ok(Err(NotSent::Refused(refusal))) => {
                tracing::info!(episode_id, by, reason = %refusal, "decision refused");
                if let (Via::Form, Some(field)) = (via, form_field(&refusal)) {
                    // Shown under the input; the form stays open to be corrected.
                    return HttpAnswer::json(&json!({
                        "response_action": "errors",
                        "errors": {field: refusal.to_string()},
                    }));
                }
                reply
                    .privately(&format!(":no_entry: {}", escape(&refusal.to_string())))
                    .await;
                HttpAnswer::taken()
            }
            Ok(Err(e @ NotSent::Publish(_))) => {
                tracing::error!(episode_id, by, error = %e, "decision not sent");
                reply
                    .privately(&format!(
                        ":warning: {}. Try again in a minute.",
                        escape(&e.to_string())
                    ))
                    .await;
                HttpAnswer::taken()
            }
            Err(_) => {
                tracing::error!(episode_id, by, "deciding took longer than Slack waits");
                reply
                    .privately(&format!(
                        ":hourglass: podflow took too long to check this, and it may not have been sent. See `podflow status {}`, and try again if need be: the same decision twice counts once.",
                        escape(episode_id)
                    ))
                    .await;
                HttpAnswer::taken()
            }
        }
    }

    /// The proposal's message with `line` in place of the buttons; the line alone when the
    /// proposal cannot be read back `within` that time.
    async fn decided_message(&self, target: &Target, line: &str, within: Duration) -> Value {
        let read = tokio::time::timeout(within, async {
            let latest = approval::latest(self.store.as_ref(), &target.episode_id).await?;
            let name = self
                .store
                .episode(&target.episode_id)
                .await?
                .map_or_else(|| target.episode_id.clone(), |r| r.original_name);
            Ok::<_, PortError>(latest.map(|(p, _)| (p, name)))
        })
        .await;
        match read {
            Ok(Ok(Some((proposal, name)))) if proposal.proposal == target.proposal => {
                slack::proposal_message(&proposal, &name, Some(line))
            }
            _ => json!({"text": line}),
        }
    }

    /// Opens the Edit or Reject form, or says why not (and what to run instead).
    async fn open(
        &self,
        form: Form,
        target: &Target,
        trigger_id: &str,
        reply: &Reply<'_>,
    ) -> HttpAnswer {
        if !self.slack.opens_views() {
            let what = match form {
                Form::Edit => "Editing here",
                Form::Reject => "Rejecting here",
            };
            reply
                .privately(&format!(
                    "{what} needs the Slack app's bot token, which this podflow does not have (PODFLOW_SLACK_BOT_TOKEN). {}",
                    command_hint(form, target)
                ))
                .await;
            return HttpAnswer::taken();
        }
        // A proposal that cannot be decided gets the reason now rather than a form that
        // would be refused; the checks leave views.open its time.
        let checks_deadline = reply
            .deadline
            .checked_sub(self.timing.views_open)
            .unwrap_or(reply.deadline);
        let checked = tokio::time::timeout_at(checks_deadline.into(), async {
            let store = self.store.as_ref();
            let pending =
                approval::pending(store, &target.episode_id, Some(target.proposal)).await?;
            let name = store
                .episode(&target.episode_id)
                .await?
                .map_or_else(|| target.episode_id.clone(), |r| r.original_name);
            let prompts: Vec<String> = match form {
                Form::Edit => Vec::new(),
                Form::Reject => store
                    .prompts(&target.episode_id)
                    .await?
                    .into_iter()
                    .map(|p| p.prompt_id)
                    .collect(),
            };
            Ok::<_, Refusal>((pending.proposal, name, prompts))
        })
        .await;
        let view = match checked {
            Ok(Ok((proposal, name, prompts))) => match form {
                Form::Edit => edit_view(&proposal, &name, reply.url),
                Form::Reject => reject_view(&proposal, &prompts, reply.url),
            },
            Ok(Err(refusal)) => {
                reply
                    .privately(&format!(":no_entry: {}", escape(&refusal.to_string())))
                    .await;
                return HttpAnswer::taken();
            }
            Err(_) => {
                tracing::error!(episode_id = %target.episode_id, "checking took longer than Slack waits");
                reply
                    .privately(
                        ":hourglass: podflow took too long to look at this proposal; try again.",
                    )
                    .await;
                return HttpAnswer::taken();
            }
        };
        let left = reply.deadline.saturating_duration_since(Instant::now());
        match self
            .slack
            .open_view(trigger_id, &view, self.timing.views_open.min(left))
            .await
        {
            Ok(()) => tracing::info!(episode_id = %target.episode_id, ?form, "form opened"),
            Err(e) => {
                tracing::warn!(episode_id = %target.episode_id, error = %e, "form not opened");
                reply
                    .privately(&format!(
                        ":warning: The form could not be opened ({}). {}",
                        escape(&e.to_string()),
                        command_hint(form, target)
                    ))
                    .await;
            }
        }
        HttpAnswer::taken()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's worked example in "Verifying requests from Slack"
    // (https://api.slack.com/authentication/verifying-requests-from-slack).
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const DOC_NOW: u64 = 1_531_420_618;

    fn doc(
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
        now: u64,
    ) -> Result<(), SignatureError> {
        verify(DOC_SECRET, timestamp, signature, body, now)
    }

    #[test]
    fn slacks_documented_request_is_accepted() {
        let ok = |now| {
            doc(
                DOC_BODY.as_bytes(),
                Some(DOC_TIMESTAMP),
                Some(DOC_SIGNATURE),
                now,
            )
        };
        assert_eq!(ok(DOC_NOW), Ok(()));
        // Inside the window on either side (clocks differ a little).
        assert_eq!(ok(DOC_NOW + MAX_SKEW_SECONDS), Ok(()));
        assert_eq!(ok(DOC_NOW - MAX_SKEW_SECONDS), Ok(()));
    }

    #[test]
    fn a_flipped_byte_anywhere_is_refused() {
        let mut body = DOC_BODY.as_bytes().to_vec();
        body[40] ^= 0x01;
        assert_eq!(
            doc(&body, Some(DOC_TIMESTAMP), Some(DOC_SIGNATURE), DOC_NOW),
            Err(SignatureError::Mismatch)
        );
        let mut signature = DOC_SIGNATURE.to_owned();
        signature.replace_range(10..11, "0");
        assert_ne!(signature, DOC_SIGNATURE);
        assert_eq!(
            doc(
                DOC_BODY.as_bytes(),
                Some(DOC_TIMESTAMP),
                Some(&signature),
                DOC_NOW
            ),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too: the same body and signature at another second fail.
        assert_eq!(
            doc(
                DOC_BODY.as_bytes(),
                Some("1531420619"),
                Some(DOC_SIGNATURE),
                DOC_NOW
            ),
            Err(SignatureError::Mismatch)
        );
        // Another app's secret.
        assert_eq!(
            verify(
                "8f742231b10e8888abcd99yyyzzz85a6",
                Some(DOC_TIMESTAMP),
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                DOC_NOW
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stale_timestamp_and_a_replay_outside_the_window_are_refused() {
        // Signed six minutes before "now": stale, however good the signature.
        let stale = doc(
            DOC_BODY.as_bytes(),
            Some(DOC_TIMESTAMP),
            Some(DOC_SIGNATURE),
            DOC_NOW + MAX_SKEW_SECONDS + 1,
        );
        assert!(
            matches!(stale, Err(SignatureError::Stale { .. })),
            "{stale:?}"
        );
        // The documented request replayed a day later.
        let replay = doc(
            DOC_BODY.as_bytes(),
            Some(DOC_TIMESTAMP),
            Some(DOC_SIGNATURE),
            DOC_NOW + 86_400,
        );
        assert!(
            matches!(replay, Err(SignatureError::Stale { .. })),
            "{replay:?}"
        );
        // A timestamp in the future is refused as well.
        let ahead = doc(
            DOC_BODY.as_bytes(),
            Some(DOC_TIMESTAMP),
            Some(DOC_SIGNATURE),
            DOC_NOW - MAX_SKEW_SECONDS - 1,
        );
        assert!(
            matches!(ahead, Err(SignatureError::Stale { .. })),
            "{ahead:?}"
        );
    }

    #[test]
    fn missing_headers_and_malformed_values_are_refused() {
        let body = DOC_BODY.as_bytes();
        assert_eq!(
            doc(body, None, Some(DOC_SIGNATURE), DOC_NOW),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            doc(body, Some(DOC_TIMESTAMP), None, DOC_NOW),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            doc(body, Some("yesterday"), Some(DOC_SIGNATURE), DOC_NOW),
            Err(SignatureError::BadTimestamp("yesterday".into()))
        );
        for bad in [
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=not-hex",
            "v0=a2114d57",
            "v0=",
        ] {
            assert_eq!(
                doc(body, Some(DOC_TIMESTAMP), Some(bad), DOC_NOW),
                Err(SignatureError::Mismatch),
                "{bad}"
            );
        }
    }

    fn form_body(payload: &Value) -> Vec<u8> {
        serde_urlencoded::to_string([("payload", payload.to_string())])
            .unwrap_or_default()
            .into_bytes()
    }

    fn clicked(action_id: &str, value: &str) -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": "U2CERLKJA", "username": "roadrunner", "team_id": "T1DC2JH3J"},
            "api_app_id": "A0KRD7HC3",
            "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "C0LAN2Q65", "is_ephemeral": false},
            "trigger_id": "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
            "team": {"id": "T1DC2JH3J", "domain": "testteamnow"},
            "channel": {"id": "C0LAN2Q65", "name": "podcast"},
            "response_url": "https://hooks.slack.com/actions/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN",
            "actions": [{
                "action_id": action_id,
                "block_id": "podflow_decide_p2",
                "text": {"type": "plain_text", "text": "Approve 2: Never Twice", "emoji": true},
                "value": value,
                "type": "button",
                "action_ts": "1548426417.840180"
            }]
        })
    }

    #[test]
    fn an_approve_button_is_read_as_its_title_choice_with_who_and_where() {
        let value = r#"{"e":"weekly-42-0123456789ab","p":2,"t":2}"#;
        let i = parse(&form_body(&clicked("podflow_approve_2", value))).expect("parsed");
        assert_eq!(i.user, "U2CERLKJA");
        assert_eq!(
            i.response_url.as_deref(),
            Some("https://hooks.slack.com/actions/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN")
        );
        match i.action {
            Action::Decide {
                target,
                request: Request::Approve { title, summary },
                via: Via::Button,
            } => {
                assert_eq!(target.episode_id, "weekly-42-0123456789ab");
                assert_eq!(target.proposal, 2);
                assert_eq!(title, TitleChoice::Suggested(2));
                assert_eq!(summary, None);
            }
            other => panic!("{other:?}"),
        }
        // Without a title index: the first suggestion.
        let first = parse(&form_body(&clicked(
            "podflow_approve_0",
            r#"{"e":"ep","p":1}"#,
        )))
        .expect("parsed");
        assert!(matches!(
            first.action,
            Action::Decide {
                request: Request::Approve {
                    title: TitleChoice::First,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn edit_and_reject_buttons_ask_for_their_form_with_the_trigger() {
        for (id, form) in [
            ("podflow_edit", Form::Edit),
            ("podflow_reject", Form::Reject),
        ] {
            let i = parse(&form_body(&clicked(id, r#"{"e":"ep","p":3}"#))).expect("parsed");
            match i.action {
                Action::Open {
                    form: f,
                    target,
                    trigger_id,
                } => {
                    assert_eq!(f, form);
                    assert_eq!(target.proposal, 3);
                    assert_eq!(
                        trigger_id,
                        "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn foreign_or_forged_payloads_are_ignored_or_refused() {
        let other_app = parse(&form_body(&clicked("someone_elses_button", "x"))).expect("parsed");
        assert!(matches!(other_app.action, Action::Ignore(_)));
        let closed = parse(&form_body(
            &json!({"type": "view_closed", "user": {"id": "U1"}}),
        ))
        .expect("parsed");
        assert!(matches!(closed.action, Action::Ignore(_)));
        assert!(matches!(
            parse(&form_body(&clicked("podflow_approve_1", "not json"))),
            Err(PayloadError::BadValue(_))
        ));
        assert!(matches!(
            parse(&form_body(&clicked(
                "podflow_approve_1",
                r#"{"e":"ep","p":0}"#
            ))),
            Err(PayloadError::BadValue(_))
        ));
        let mut anonymous = clicked("podflow_approve_1", r#"{"e":"ep","p":1}"#);
        anonymous["user"] = json!({});
        assert!(matches!(
            parse(&form_body(&anonymous)),
            Err(PayloadError::Missing("user.id"))
        ));
        assert!(matches!(
            parse(DOC_BODY.as_bytes()),
            Err(PayloadError::NoPayload)
        ));
        assert!(matches!(
            parse(b"payload=%7Bnot"),
            Err(PayloadError::NotJson(_))
        ));
    }

    fn submitted(callback_id: &str, metadata: &str, values: Value) -> Value {
        json!({
            "type": "view_submission",
            "team": {"id": "T1DC2JH3J", "domain": "testteamnow"},
            "user": {"id": "U0KRQLJ9H", "username": "coyote", "team_id": "T1DC2JH3J"},
            "api_app_id": "A0KRD7HC3",
            "trigger_id": "12466734323.1395872398.4f8f1d4b4ad1a1e3ea56b1bc1d4b1d6e",
            "view": {
                "id": "VNHU13V36",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": metadata,
                "state": {"values": values},
                "hash": "156663117.cd33ad1f"
            },
            "response_urls": []
        })
    }

    #[test]
    fn a_submitted_edit_form_approves_with_the_written_title_and_summary() {
        let meta = r#"{"e":"ep","p":4,"r":"https://hooks.slack.com/actions/T1/2/3"}"#;
        let values = json!({
            "title": {"title": {"type": "plain_text_input", "value": "My Own Title"}},
            "summary": {"summary": {"type": "plain_text_input", "value": "Edited."}}
        });
        let i = parse(&form_body(&submitted("podflow_edit", meta, values))).expect("parsed");
        assert_eq!(i.user, "U0KRQLJ9H");
        assert_eq!(
            i.response_url.as_deref(),
            Some("https://hooks.slack.com/actions/T1/2/3")
        );
        match i.action {
            Action::Decide {
                target,
                request: Request::Approve { title, summary },
                via: Via::Form,
            } => {
                assert_eq!(target.proposal, 4);
                // Written, never read as a suggestion's number.
                assert_eq!(title, TitleChoice::Written("My Own Title".into()));
                assert_eq!(summary.as_deref(), Some("Edited."));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_submitted_reject_form_carries_the_note_and_the_checked_prompts() {
        let values = json!({
            "note": {"note": {"type": "plain_text_input", "value": "Titles too long"}},
            "rerun": {"rerun": {"type": "checkboxes", "selected_options": [
                {"text": {"type": "plain_text", "text": "titles"}, "value": "titles"},
                {"text": {"type": "plain_text", "text": "summary"}, "value": "summary"}
            ]}}
        });
        let i = parse(&form_body(&submitted(
            "podflow_reject",
            r#"{"e":"ep","p":1}"#,
            values,
        )))
        .expect("parsed");
        assert_eq!(i.response_url, None);
        match i.action {
            Action::Decide {
                request:
                    Request::Reject {
                        note,
                        rerun,
                        model,
                        prompt_version,
                    },
                ..
            } => {
                assert_eq!(note, "Titles too long");
                assert_eq!(rerun, ["titles", "summary"]);
                assert_eq!((model, prompt_version), (None, None));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&form_body(&submitted(
                "podflow_reject",
                "forged",
                json!({})
            ))),
            Err(PayloadError::BadMetadata)
        ));
    }

    fn proposal(titles: &[&str], summary: Option<String>) -> EpisodeProposed {
        EpisodeProposed {
            schema_version: podflow_events::SCHEMA_VERSION.into(),
            episode_id: "weekly-42-0123456789ab".into(),
            correlation_id: "corr-1".into(),
            proposal: 2,
            status: podflow_events::SummaryStatus::Complete,
            titles: titles.iter().map(|t| (*t).to_owned()).collect(),
            summary,
            chapters: Vec::new(),
            files: Vec::new(),
            failed_prompts: Vec::new(),
        }
    }

    #[test]
    fn forms_start_from_the_proposal_and_carry_it_to_the_submission() {
        let p = proposal(
            &["Retries Without Tears", "Never Twice"],
            Some("We talk.".into()),
        );
        let url = "https://hooks.slack.com/actions/T1/2/3";
        let edit = edit_view(&p, "weekly-42.m4a", Some(url));
        assert_eq!(edit["callback_id"], callback_ids::EDIT);
        assert_eq!(
            edit["blocks"][0]["element"]["initial_value"],
            "Retries Without Tears"
        );
        let summary = edit["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["block_id"] == "summary")
            .expect("summary input");
        assert_eq!(summary["element"]["initial_value"], "We talk.");
        let meta: FormMetadata =
            serde_json::from_str(edit["private_metadata"].as_str().unwrap_or_default())
                .expect("metadata");
        assert_eq!(meta.response_url.as_deref(), Some(url));
        assert_eq!(
            (meta.episode_id.as_str(), meta.proposal),
            ("weekly-42-0123456789ab", 2)
        );
        assert!(
            edit["title"]["text"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .count()
                <= 24
        );

        // A summary longer than an input holds is not cut: it is left as proposed.
        let long = edit_view(
            &proposal(&[], Some("word ".repeat(1000))),
            "weekly-42.m4a",
            None,
        );
        assert!(!long.to_string().contains("\"block_id\":\"summary\""));
        assert_eq!(
            long["blocks"][0]["element"]["initial_value"],
            "weekly-42.m4a"
        );

        let prompts: Vec<String> = ["titles", "summary"].map(String::from).to_vec();
        let reject = reject_view(&p, &prompts, Some(url));
        assert_eq!(reject["blocks"][1]["element"]["type"], "checkboxes");
        let many: Vec<String> = (0..12).map(|i| format!("prompt-{i}")).collect();
        let reject = reject_view(&p, &many, None);
        assert_eq!(
            reject["blocks"][1]["element"]["type"],
            "multi_static_select"
        );
        assert_eq!(
            reject["blocks"][1]["element"]["options"]
                .as_array()
                .map(Vec::len),
            Some(12)
        );
    }
}
