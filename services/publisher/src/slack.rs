//! Slack messages in Block Kit, kept inside Slack's size limits: pure functions.
//!
//! Long texts never go into the message: it carries a two-line summary and links to the
//! files (show notes, blog post...), so an hour-long episode posts like a short one.

use serde_json::{Value, json};

use crate::documents::truncate;

/// Slack's documented caps (Block Kit reference). The whole-message cap is set below
/// Slack's documented 40,000 characters: messages of about 13,000 characters of blocks
/// have been refused with `msg_blocks_too_long`.
pub mod limits {
    pub const BLOCKS: usize = 50;
    pub const HEADER_TEXT: usize = 150;
    pub const SECTION_TEXT: usize = 3000;
    pub const SECTION_FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2000;
    pub const CONTEXT_ELEMENTS: usize = 10;
    pub const FALLBACK_TEXT: usize = 4000;
    pub const MESSAGE_TEXT: usize = 12_000;
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A mrkdwn link; the label is escaped, and `|` would end it early.
fn link(url: &str, label: &str) -> String {
    format!("<{}|{}>", url, escape(label).replace('|', "/"))
}

fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": truncate(text, limits::HEADER_TEXT), "emoji": true}})
}

fn section(mrkdwn: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(mrkdwn, limits::SECTION_TEXT)}})
}

fn context(mrkdwn: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(mrkdwn, limits::FIELD_TEXT)}]})
}

/// "The MP3 is ready" — sent the moment the transcode is done.
pub fn mp3_ready(title: &str, episode_id: &str, mp3_url: &str, minutes: Option<f64>) -> Value {
    let length = minutes.map_or(String::new(), |m| format!(" ({m:.0} min)"));
    let fallback = truncate(
        &format!("MP3 ready: {title}{length} {mp3_url}"),
        limits::FALLBACK_TEXT,
    );
    json!({
        "text": fallback,
        "blocks": [
            header(&format!("MP3 ready: {title}")),
            section(&format!(
                "{}{length}\nTranscript, show notes and the rest follow when they are done.",
                link(mp3_url, "Download the MP3")
            )),
            context(&format!("episode `{}`", escape(episode_id))),
        ]
    })
}

/// What a summary message says.
#[derive(Debug)]
pub struct SummaryNotice<'a> {
    pub title: &'a str,
    pub episode_id: &'a str,
    pub revision: u32,
    pub complete: bool,
    /// Two lines at most; longer text is cut (the full summary is one of the links).
    pub summary: Option<&'a str>,
    pub mp3_url: Option<&'a str>,
    /// (label, url) of the episode's files.
    pub links: &'a [(String, String)],
    /// (prompt or step, reason).
    pub failures: &'a [(String, String)],
    pub cost_usd: Option<f64>,
}

/// The message for one `EpisodeSummarized` revision.
pub fn summary_message(n: &SummaryNotice<'_>) -> Value {
    let state = if n.complete {
        "everything is ready".to_owned()
    } else {
        format!("{} item(s) failed", n.failures.len())
    };
    let mut blocks = vec![header(n.title)];
    let mut lines = Vec::new();
    if let Some(summary) = n.summary {
        lines.push(escape(&crate::documents::lead(summary, 2, 400)));
    }
    if let Some(url) = n.mp3_url {
        lines.push(format!(":headphones: {}", link(url, "MP3")));
    }
    if !lines.is_empty() {
        blocks.push(section(&lines.join("\n")));
    }
    // Links go into section fields (two columns); more than Slack allows go into one list.
    let fields: Vec<Value> = n
        .links
        .iter()
        .map(|(label, url)| json!({"type": "mrkdwn", "text": truncate(&link(url, label), limits::FIELD_TEXT)}))
        .collect();
    for chunk in fields.chunks(limits::SECTION_FIELDS) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    if !n.failures.is_empty() {
        let listed: Vec<String> = n
            .failures
            .iter()
            .take(10)
            .map(|(what, why)| format!("• *{}*: {}", escape(what), escape(&truncate(why, 200))))
            .collect();
        let more = n.failures.len().saturating_sub(listed.len());
        let tail = if more > 0 {
            format!("\n…and {more} more (see `podflow dlq list`)")
        } else {
            String::new()
        };
        blocks.push(section(&format!(
            ":warning: *Failed* — replay with `podflow dlq replay` once fixed:\n{}{tail}",
            listed.join("\n")
        )));
    }
    let cost = n
        .cost_usd
        .map_or(String::new(), |usd| format!(" · est. ${usd:.2}"));
    blocks.push(context(&format!(
        "revision {} · {state}{cost} · episode `{}`",
        n.revision,
        escape(n.episode_id)
    )));
    blocks.truncate(limits::BLOCKS);
    let fallback = truncate(
        &format!("{} — revision {}: {state}", n.title, n.revision),
        limits::FALLBACK_TEXT,
    );
    json!({"text": fallback, "blocks": blocks})
}

/// Every way a message breaks Block Kit's structure or Slack's limits (empty: fine).
/// Used by tests, and by the notifier before it sends.
pub fn problems(message: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let text_ok = |v: &Value, kind: &str| v["type"] == kind && v["text"].as_str().is_some();
    if chars(&message["text"]) > limits::FALLBACK_TEXT {
        out.push("fallback text too long".into());
    }
    let Some(blocks) = message["blocks"].as_array() else {
        out.push("no blocks array".into());
        return out;
    };
    if blocks.is_empty() || blocks.len() > limits::BLOCKS {
        out.push(format!("{} blocks", blocks.len()));
    }
    let mut total = 0;
    for (i, b) in blocks.iter().enumerate() {
        match b["type"].as_str() {
            Some("header") => {
                if !text_ok(&b["text"], "plain_text") {
                    out.push(format!("block {i}: header needs plain_text"));
                }
                if chars(&b["text"]["text"]) > limits::HEADER_TEXT {
                    out.push(format!("block {i}: header over {}", limits::HEADER_TEXT));
                }
                total += chars(&b["text"]["text"]);
            }
            Some("section") => {
                let fields = b["fields"].as_array();
                if b.get("text").is_none() && fields.is_none() {
                    out.push(format!("block {i}: section needs text or fields"));
                }
                if b.get("text").is_some() {
                    if !text_ok(&b["text"], "mrkdwn") && !text_ok(&b["text"], "plain_text") {
                        out.push(format!("block {i}: section text is not a text object"));
                    }
                    if chars(&b["text"]["text"]) > limits::SECTION_TEXT {
                        out.push(format!(
                            "block {i}: section text over {}",
                            limits::SECTION_TEXT
                        ));
                    }
                    total += chars(&b["text"]["text"]);
                }
                for f in fields.into_iter().flatten() {
                    if chars(&f["text"]) > limits::FIELD_TEXT {
                        out.push(format!("block {i}: field over {}", limits::FIELD_TEXT));
                    }
                    total += chars(&f["text"]);
                }
                if fields.is_some_and(|f| f.is_empty() || f.len() > limits::SECTION_FIELDS) {
                    out.push(format!("block {i}: 1–{} fields", limits::SECTION_FIELDS));
                }
            }
            Some("context") => {
                let elements = b["elements"].as_array().map_or(0, Vec::len);
                if elements == 0 || elements > limits::CONTEXT_ELEMENTS {
                    out.push(format!("block {i}: {elements} context elements"));
                }
                total += b["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| chars(&e["text"]))
                    .sum::<usize>();
            }
            Some("divider") => {}
            other => out.push(format!("block {i}: unexpected type {other:?}")),
        }
    }
    if total > limits::MESSAGE_TEXT {
        out.push(format!("{total} characters of blocks"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp3_message_links_the_file_and_is_valid() {
        let m = mp3_ready(
            "Weekly 42",
            "weekly-42-abc",
            "file:///data/a.mp3",
            Some(41.6),
        );
        assert!(problems(&m).is_empty(), "{:?}", problems(&m));
        assert!(
            m.to_string()
                .contains("<file:///data/a.mp3|Download the MP3>")
        );
        assert!(m["text"].as_str().unwrap_or("").contains("(42 min)"));
    }

    #[test]
    fn huge_inputs_still_give_a_message_inside_every_limit() {
        let title = "T".repeat(500);
        let summary = "A very long sentence without end ".repeat(2000);
        let links: Vec<(String, String)> = (0..120)
            .map(|i| (format!("file {i} <&>"), format!("https://example.com/{i}")))
            .collect();
        let failures: Vec<(String, String)> = (0..40)
            .map(|i| (format!("prompt-{i}"), "x".repeat(5000)))
            .collect();
        let m = summary_message(&SummaryNotice {
            title: &title,
            episode_id: "ep",
            revision: 3,
            complete: false,
            summary: Some(&summary),
            mp3_url: Some("https://example.com/a.mp3"),
            links: &links,
            failures: &failures,
            cost_usd: Some(1.234),
        });
        assert_eq!(problems(&m), Vec::<String>::new());
        let text = m.to_string();
        assert!(text.contains("and 30 more"));
        assert!(
            text.contains("&lt;&amp;&gt;"),
            "mrkdwn control characters escaped"
        );
        assert!(text.contains("est. $1.23"));
    }

    #[test]
    fn the_checker_catches_broken_messages() {
        let long_header = json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x".repeat(151)}}]});
        assert_eq!(problems(&long_header).len(), 1);
        assert!(!problems(&json!({"text": "no blocks"})).is_empty());
        let bad_section = json!({"blocks": [{"type": "section"}]});
        assert!(!problems(&bad_section).is_empty());
    }
}
