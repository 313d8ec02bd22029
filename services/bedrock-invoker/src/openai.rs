//! An OpenAI-compatible chat-completions backend (Ollama, llama.cpp server, vLLM, OpenAI).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use podflow_core::{PortError, secret::Secret};

use crate::llm::{ChatRequest, ChatResponse, LlmClient, MAX_ANSWER_BYTES, answer_too_large};

/// Calls `<base_url>/chat/completions`.
pub struct OpenAiCompatible {
    base_url: String,
    /// The base URL as messages show it (see [`printable_url`]).
    shown_base_url: String,
    api_key: Option<Secret>,
    http: reqwest::Client,
}

/// `url` without what may be a credential (user and password, query, fragment): messages
/// reach logs, step notes and dead-letter queues.
pub fn printable_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => "the configured LLM URL (not a valid URL)".to_owned(),
    }
}

impl OpenAiCompatible {
    pub fn new(base_url: &str, api_key: Option<Secret>, timeout: Duration) -> Self {
        // reqwest is built without a default crypto provider (to share the AWS SDK's).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            shown_base_url: printable_url(base_url),
            api_key,
            http,
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    /// The endpoint as messages name it.
    fn shown_endpoint(&self) -> String {
        format!("{}/chat/completions", self.shown_base_url)
    }

    /// Whether a server answers at the base URL (`GET <URL>/models`, which OpenAI-compatible
    /// servers list their models at): a sentence saying what answered, or why nothing did.
    pub async fn probe(&self) -> Result<String, String> {
        let mut call = self.http.get(format!("{}/models", self.base_url));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key.expose());
        }
        let url = format!("{}/models", self.shown_base_url);
        let response = call.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection refused or unreachable"
            } else {
                "no HTTP answer"
            };
            format!("nothing answers at {url} ({what})")
        })?;
        let status = response.status();
        let listed = read_capped(response, &url)
            .await
            .ok()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .and_then(|v| v.get("data")?.as_array().map(Vec::len));
        match (status.is_success(), listed) {
            (true, Some(n)) => Ok(format!("{url} answers: {n} models")),
            (true, None) => Ok(format!("{url} answers (HTTP {status})")),
            (false, _) => Err(format!("{url} answers HTTP {status}")),
        }
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The body of `response`, read a chunk at a time up to [`MAX_ANSWER_BYTES`]: a larger one
/// is refused as soon as its length says so, or as soon as it passes the limit, so memory
/// stays bounded whatever the server sends.
async fn read_capped(mut response: reqwest::Response, from: &str) -> Result<Vec<u8>, PortError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(answer_too_large(from));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(answer_too_large(from));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(PortError::transient(format!(
                    "reading the answer from {from}: {}",
                    podflow_core::report(&e.without_url())
                )));
            }
        }
    }
}

#[async_trait]
impl LlmClient for OpenAiCompatible {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, PortError> {
        let mut messages = Vec::new();
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.push(json!({"role": "user", "content": request.user}));
        let body = json!({
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        });
        let mut call = self.http.post(self.endpoint()).json(&body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key.expose());
        }
        let response = call.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "connection refused or unreachable".to_owned()
            } else {
                podflow_core::report(&e.without_url())
            };
            PortError::transient(format!(
                "no LLM answered at {} ({what}); set PODFLOW_LLM_URL to an OpenAI-compatible endpoint (e.g. http://localhost:11434/v1 for Ollama) and PODFLOW_LLM_MODEL to a model it serves",
                self.shown_endpoint()
            ))
        })?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = read_capped(response, &self.shown_endpoint()).await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
            return Err(crate::llm::status_error(status.as_u16(), message, wait));
        }
        let completion: Completion = serde_json::from_slice(&body).map_err(|e| {
            PortError::transient(format!(
                "{} sent an answer that is not a chat completion: {e}",
                self.shown_endpoint()
            ))
        })?;
        let content = completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                PortError::transient(format!("{} answered with no text", self.shown_endpoint()))
            })?;
        let usage = completion.usage.unwrap_or(Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        Ok(ChatResponse {
            text: content,
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_urls_hold_no_credentials() {
        assert_eq!(
            printable_url("https://user:pw@llm.example.com:8443/v1/?api-key=k#frag"),
            "https://llm.example.com:8443/v1"
        );
        assert_eq!(
            printable_url("http://localhost:11434/v1"),
            "http://localhost:11434/v1"
        );
        assert!(!printable_url("not a url with SECRET").contains("SECRET"));
    }

    /// Nothing answers: the reason names the server, and neither the key, the URL's
    /// credentials nor its query.
    #[tokio::test]
    async fn an_unreachable_llm_is_named_without_its_credentials() {
        let port = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            socket.local_addr().expect("addr").port()
        };
        let client = OpenAiCompatible::new(
            &format!("http://user:SECRET1@127.0.0.1:{port}/v1?api-key=SECRET2"),
            Some(Secret::new("SECRET3")),
            Duration::from_secs(2),
        );
        let request = ChatRequest {
            model: "m".into(),
            system: String::new(),
            user: "hello".into(),
            max_tokens: 10,
            temperature: 0.0,
        };
        let error = client.chat(&request).await.expect_err("refused").report();
        assert!(!error.contains("SECRET"), "{error}");
        assert!(
            error.contains(&format!("127.0.0.1:{port}/v1/chat/completions")),
            "{error}"
        );
        let probe = client.probe().await.expect_err("refused");
        assert!(!probe.contains("SECRET"), "{probe}");

        // Connected, then closed before any answer: the transport error's own text, still
        // without the URL.
        let closing = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closing.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for conn in closing.incoming() {
                drop(conn);
            }
        });
        let client = OpenAiCompatible::new(
            &format!("http://user:SECRET1@127.0.0.1:{port}/v1"),
            Some(Secret::new("SECRET3")),
            Duration::from_secs(2),
        );
        let error = client.chat(&request).await.expect_err("closed").report();
        assert!(!error.contains("SECRET"), "{error}");
        assert!(error.contains("error sending request"), "{error}");
    }
}
