//! A Slack incoming webhook on loopback. It answers the way Slack documents: `200 ok`;
//! `400 invalid_payload` for a body that is not JSON, `400 no_text` without `text` or
//! `blocks`, `400 invalid_blocks` for blocks over Slack's limits; scripted failures first
//! (`429` with `Retry-After`, `500`, `404 no_service`...). It records every message it
//! accepted.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;

/// The path of the webhook (its "secret").
pub const WEBHOOK_PATH: &str = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";

/// A scripted answer: status, body, Retry-After seconds.
pub type ScriptedReply = (u16, &'static str, Option<u32>);

#[derive(Default)]
struct Shared {
    script: Mutex<Vec<ScriptedReply>>,
    accepted: Mutex<Vec<Value>>,
    requests: Mutex<u32>,
}

/// A running fake webhook; stops when the test's runtime ends.
pub struct FakeSlack {
    /// The full webhook URL.
    pub url: String,
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
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}{WEBHOOK_PATH}"),
            shared,
        })
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
