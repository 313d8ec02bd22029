//! Slack on loopback: an incoming webhook, and the two Web API endpoints an interactive
//! app calls while answering a click.
//!
//! The webhook answers the way Slack documents: `200 ok`; `400 invalid_payload` for a body
//! that is not JSON, `400 no_text` without `text` or `blocks`, `400 invalid_blocks` for
//! blocks over Slack's limits; scripted failures first (`429` with `Retry-After`, `500`,
//! `404 no_service`...). It records every message it accepted.
//!
//! `POST /api/views.open` answers as Slack's Web API does, HTTP 200 either way:
//! `{"ok":true,"view":{…}}`, or `{"ok":false,"error":…}` — `not_authed` / `invalid_auth`
//! without [`BOT_TOKEN`], `invalid_trigger_id` for a trigger it did not issue
//! ([`FakeSlack::trigger_id`]), `exchanged_trigger_id` for one used before,
//! `expired_trigger_id` after 3 s, `invalid_arguments` (with `response_metadata.messages`)
//! for a view over Slack's limits. [`FakeSlack::delay_views_open`] makes it slow.
//!
//! A response_url ([`FakeSlack::response_url`]) takes JSON messages like the webhook and
//! answers `{"ok":true}`; one it did not issue, or used five times already, is
//! `404 expired_url`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// The path of the webhook (its "secret").
pub const WEBHOOK_PATH: &str = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";

/// The bot token views.open takes (the format of Slack's bot tokens).
pub const BOT_TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";

/// How long a trigger_id can be exchanged for a view (Slack: 3 seconds).
pub const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);

/// How many messages one response_url takes (Slack: five, within 30 minutes).
pub const RESPONSE_URL_USES: u32 = 5;

/// A scripted answer: status, body, Retry-After seconds.
pub type ScriptedReply = (u16, &'static str, Option<u32>);

#[derive(Default)]
struct Shared {
    script: Mutex<Vec<ScriptedReply>>,
    accepted: Mutex<Vec<Value>>,
    requests: Mutex<u32>,
    /// Issued trigger ids: when, and whether exchanged already.
    triggers: Mutex<HashMap<String, (Instant, bool)>>,
    views: Mutex<Vec<Value>>,
    views_open_delay: Mutex<Duration>,
    /// Issued response_url paths and their uses.
    response_urls: Mutex<HashMap<String, u32>>,
    responses: Mutex<Vec<Value>>,
    issued: AtomicU64,
}

/// A running fake Slack; stops when the test's runtime ends.
pub struct FakeSlack {
    /// The full webhook URL.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    base: String,
    shared: Arc<Shared>,
}

impl FakeSlack {
    /// `script` is answered first, one reply per request, then every valid message is
    /// accepted.
    pub async fn start(script: Vec<ScriptedReply>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into_iter().rev().collect()),
            ..Shared::default()
        });
        let app = Router::new()
            .route(WEBHOOK_PATH, post(webhook))
            .route("/api/views.open", post(views_open))
            .route("/actions/{team}/{id}/{secret}", post(respond))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}{WEBHOOK_PATH}"),
            base: format!("http://{addr}"),
            shared,
        })
    }

    /// The Web API's base (`https://slack.com/api` on Slack).
    pub fn api_base(&self) -> String {
        format!("{}/api", self.base)
    }

    /// What every response_url of this fake starts with (`https://hooks.slack.com/` on
    /// Slack).
    pub fn response_prefix(&self) -> String {
        format!("{}/actions/", self.base)
    }

    fn next(&self) -> u64 {
        self.shared.issued.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A trigger_id as a click gives one: exchangeable once, for [`TRIGGER_LIFETIME`].
    pub fn trigger_id(&self) -> String {
        let n = self.next();
        let id = format!("{n}.47445629121.{:032x}", rand::random::<u128>());
        if let Ok(mut t) = self.shared.triggers.lock() {
            t.insert(id.clone(), (Instant::now(), false));
        }
        id
    }

    /// A response_url as a click gives one.
    pub fn response_url(&self) -> String {
        let path = format!(
            "/actions/T00000000/{}/{:024x}",
            397_700_885_554 + self.next(),
            rand::random::<u128>() >> 32
        );
        if let Ok(mut r) = self.shared.response_urls.lock() {
            r.insert(path.clone(), 0);
        }
        format!("{}{path}", self.base)
    }

    /// Views opened so far, in order.
    pub fn views(&self) -> Vec<Value> {
        self.shared
            .views
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Messages accepted on response_urls so far, in order.
    pub fn responses(&self) -> Vec<Value> {
        self.shared
            .responses
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// views.open answers only after `delay` from now on (a slow Slack).
    pub fn delay_views_open(&self, delay: Duration) {
        if let Ok(mut d) = self.shared.views_open_delay.lock() {
            *d = delay;
        }
    }

    /// Messages accepted so far, in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.shared
            .accepted
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Requests received so far (accepted or not).
    pub fn requests(&self) -> u32 {
        self.shared.requests.lock().map(|r| *r).unwrap_or(0)
    }
}

fn reply(status: u16, body: &str, retry_after: Option<u32>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body.to_owned()).into_response();
    if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

/// Slack's own limits, checked independently of podflow's message builder.
fn blocks_invalid(message: &Value) -> bool {
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let Some(blocks) = message.get("blocks") else {
        return false;
    };
    let Some(blocks) = blocks.as_array() else {
        return true;
    };
    blocks.len() > 50
        || blocks.iter().any(|b| match b["type"].as_str() {
            Some("header") => b["text"]["type"] != "plain_text" || chars(&b["text"]["text"]) > 150,
            Some("section") => {
                let fields = b["fields"].as_array();
                (b.get("text").is_none() && fields.is_none())
                    || chars(&b["text"]["text"]) > 3000
                    || fields
                        .is_some_and(|f| f.len() > 10 || f.iter().any(|x| chars(&x["text"]) > 2000))
            }
            Some("context") => b["elements"]
                .as_array()
                .is_none_or(|e| e.is_empty() || e.len() > 10),
            Some("divider") => false,
            Some("actions") => b["elements"].as_array().is_none_or(|e| {
                e.is_empty()
                    || e.len() > 25
                    || e.iter().any(|x| {
                        x["type"] != "button"
                            || x["text"]["type"] != "plain_text"
                            || chars(&x["text"]["text"]) > 75
                            || chars(&x["value"]) > 2000
                            || chars(&x["action_id"]) > 255
                    })
            }),
            _ => true,
        })
}

async fn webhook(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Ok(mut n) = shared.requests.lock() {
        *n += 1;
    }
    if let Some((status, text, retry_after)) = shared.script.lock().ok().and_then(|mut s| s.pop()) {
        return reply(status, text, retry_after);
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, "invalid_payload", None);
    };
    if message.get("text").is_none() && message.get("blocks").is_none() {
        return reply(400, "no_text", None);
    }
    if blocks_invalid(&message) {
        return reply(400, "invalid_blocks", None);
    }
    if let Ok(mut accepted) = shared.accepted.lock() {
        accepted.push(message);
    }
    reply(200, "ok", None)
}

/// A Web API answer: HTTP 200 with `ok` false and the error, as Slack answers.
fn api_error(error: &str, messages: &[String]) -> Response {
    let mut body = json!({"ok": false, "error": error});
    if !messages.is_empty() {
        body["response_metadata"] = json!({"messages": messages});
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Why Slack would refuse `view` (empty: it would open it), each message as Slack words
/// them: `[ERROR] <what> [json-pointer:/view/...]`.
fn view_problems(view: &Value) -> Vec<String> {
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let mut out = Vec::new();
    let mut err =
        |what: &str, at: &str| out.push(format!("[ERROR] {what} [json-pointer:/view{at}]"));
    if view["type"] != "modal" {
        err("must be a modal", "/type");
    }
    let plain =
        |v: &Value, max: usize| v["type"] == "plain_text" && (1..=max).contains(&chars(&v["text"]));
    if !plain(&view["title"], 24) {
        err("must be plain_text of 1 to 24 characters", "/title");
    }
    for part in ["submit", "close"] {
        if !view[part].is_null() && !plain(&view[part], 24) {
            err(
                "must be plain_text of 1 to 24 characters",
                &format!("/{part}"),
            );
        }
    }
    if chars(&view["private_metadata"]) > 3000 {
        err("must be less than 3001 characters", "/private_metadata");
    }
    if chars(&view["callback_id"]) > 255 {
        err("must be less than 256 characters", "/callback_id");
    }
    let Some(blocks) = view["blocks"].as_array() else {
        err("must provide an array", "/blocks");
        return out;
    };
    if blocks.len() > 100 {
        err("no more than 100 items allowed", "/blocks");
    }
    let mut block_ids = std::collections::HashSet::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("/blocks/{i}");
        if let Some(id) = b["block_id"].as_str()
            && (id.chars().count() > 255 || !block_ids.insert(id))
        {
            err(
                "block_id must be unique and less than 256 characters",
                &format!("{at}/block_id"),
            );
        }
        match b["type"].as_str() {
            Some("input") => {
                if view["submit"].is_null() {
                    err("a view with input blocks needs a submit button", "/submit");
                }
                if !plain(&b["label"], 2000) {
                    err(
                        "must be plain_text of 1 to 2000 characters",
                        &format!("{at}/label"),
                    );
                }
                if !b["hint"].is_null() && !plain(&b["hint"], 2000) {
                    err(
                        "must be plain_text of 1 to 2000 characters",
                        &format!("{at}/hint"),
                    );
                }
                let e = &b["element"];
                if chars(&e["action_id"]) > 255 {
                    err(
                        "must be less than 256 characters",
                        &format!("{at}/element/action_id"),
                    );
                }
                match e["type"].as_str() {
                    Some("plain_text_input") => {
                        let max = e["max_length"].as_u64().unwrap_or(3000);
                        if max > 3000 {
                            err(
                                "must be no more than 3000",
                                &format!("{at}/element/max_length"),
                            );
                        }
                        if chars(&e["initial_value"]) as u64 > max {
                            err(
                                "must be no longer than max_length",
                                &format!("{at}/element/initial_value"),
                            );
                        }
                    }
                    Some(kind @ ("checkboxes" | "static_select" | "multi_static_select")) => {
                        let max = if kind == "checkboxes" { 10 } else { 100 };
                        let options = e["options"].as_array();
                        if options.is_none_or(|o| o.is_empty() || o.len() > max) {
                            err(
                                &format!("must provide 1 to {max} options"),
                                &format!("{at}/element/options"),
                            );
                        }
                        for (j, o) in options.into_iter().flatten().enumerate() {
                            let text_ok = (o["text"]["type"] == "plain_text"
                                || o["text"]["type"] == "mrkdwn")
                                && (1..=75).contains(&chars(&o["text"]["text"]));
                            if !text_ok || !(1..=150).contains(&chars(&o["value"])) {
                                err(
                                    "option text 1 to 75 characters, value 1 to 150",
                                    &format!("{at}/element/options/{j}"),
                                );
                            }
                        }
                    }
                    _ => err("unsupported element type", &format!("{at}/element/type")),
                }
            }
            Some("context") => {
                if b["elements"]
                    .as_array()
                    .is_none_or(|e| e.is_empty() || e.len() > 10)
                {
                    err("must provide 1 to 10 elements", &format!("{at}/elements"));
                }
            }
            Some("section" | "divider" | "header") => {}
            _ => err("unsupported block type", &format!("{at}/type")),
        }
    }
    out
}

async fn views_open(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Ok(mut n) = shared.requests.lock() {
        *n += 1;
    }
    let delay = shared
        .views_open_delay
        .lock()
        .map(|d| *d)
        .unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        None => return api_error("not_authed", &[]),
        Some(t) if t != BOT_TOKEN => return api_error("invalid_auth", &[]),
        Some(_) => {}
    }
    let Ok(args) = serde_json::from_slice::<Value>(&body) else {
        return api_error("invalid_json", &[]);
    };
    // A form-encoded call sends the view as a JSON string; a JSON call may send an object.
    let view = match &args["view"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let trigger = args["trigger_id"].as_str().unwrap_or_default();
    let issued = shared
        .triggers
        .lock()
        .ok()
        .and_then(|t| t.get(trigger).copied());
    match issued {
        None => return api_error("invalid_trigger_id", &[]),
        Some((_, true)) => return api_error("exchanged_trigger_id", &[]),
        Some((at, false)) if at.elapsed() > TRIGGER_LIFETIME => {
            return api_error("expired_trigger_id", &[]);
        }
        Some(_) => {}
    }
    let problems = view_problems(&view);
    if !problems.is_empty() {
        return api_error("invalid_arguments", &problems);
    }
    if let Ok(mut t) = shared.triggers.lock()
        && let Some(entry) = t.get_mut(trigger)
    {
        entry.1 = true;
    }
    if let Ok(mut v) = shared.views.lock() {
        v.push(view.clone());
    }
    let mut opened = view;
    opened["id"] = json!("VMHU10V25");
    opened["team_id"] = json!("T00000000");
    opened["state"] = json!({"values": {}});
    opened["hash"] = json!("156772938.1827394");
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "view": opened})),
    )
        .into_response()
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path((team, id, secret)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if let Ok(mut n) = shared.requests.lock() {
        *n += 1;
    }
    let expired = (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"ok": false, "error": "expired_url"})),
    );
    let path = format!("/actions/{team}/{id}/{secret}");
    {
        let Ok(mut urls) = shared.response_urls.lock() else {
            return expired.into_response();
        };
        match urls.get_mut(&path) {
            Some(uses) if *uses < RESPONSE_URL_USES => *uses += 1,
            _ => return expired.into_response(),
        }
    }
    let bad = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"ok": false, "error": error})),
        )
            .into_response()
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return bad("invalid_payload");
    };
    if message.get("text").is_none() && message.get("blocks").is_none() {
        return bad("no_text");
    }
    if blocks_invalid(&message) {
        return bad("invalid_blocks");
    }
    if let Ok(mut r) = shared.responses.lock() {
        r.push(message);
    }
    (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response()
}
