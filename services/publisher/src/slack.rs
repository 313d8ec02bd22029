//! Slack messages in Block Kit, kept inside Slack's size limits: pure functions.
//!
//! Long texts never go into the message: it carries a two-line summary and links to the
//! files (show notes, blog post...), so an hour-long episode posts like a short one. The one
//! exception is a proposal ([`proposal_message`]): whoever approves it reads the summary,
//! chapters and titles that would be published, so they are in the message (cut to fit).

use podflow_events::EpisodeProposed;
use serde_json::{Value, json};

use crate::{
    documents::truncate,
    slack_actions::{ActionValue, action_ids},
};

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
    pub const BLOCK_ID: usize = 255;
    pub const ACTION_ELEMENTS: usize = 25;
    pub const BUTTON_TEXT: usize = 75;
    pub const BUTTON_VALUE: usize = 2000;
    pub const ACTION_ID: usize = 255;
    pub const CONFIRM_TITLE: usize = 100;
    pub const CONFIRM_TEXT: usize = 300;
    pub const CONFIRM_BUTTON: usize = 30;
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
pub(crate) fn escape(text: &str) -> String {
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

/// A reminder that a proposal still waits for a person.
pub fn approval_reminder(title: &str, episode_id: &str, proposal: u32, hours: f64) -> Value {
    let text = format!(
        "Still waiting for approval: {title} (proposal {proposal}, {hours:.0} h). Approve or reject it on the proposal's message, or run `podflow approve {episode_id}`."
    );
    json!({
        "text": truncate(&text, limits::FALLBACK_TEXT),
        "blocks": [
            header(&format!("Waiting for approval: {title}")),
            section(&format!(
                "Proposal {proposal} has waited {hours:.0} h. Nothing is published until someone approves it; use the buttons on its message, `podflow serve`, or `podflow approve {}`.",
                escape(episode_id)
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
            Some("actions") => total += action_problems(i, b, &mut out),
            other => out.push(format!("block {i}: unexpected type {other:?}")),
        }
        if chars(&b["block_id"]) > limits::BLOCK_ID {
            out.push(format!("block {i}: block_id over {}", limits::BLOCK_ID));
        }
    }
    if total > limits::MESSAGE_TEXT {
        out.push(format!("{total} characters of blocks"));
    }
    out
}

/// The buttons of an actions block against Block Kit's limits; returns the characters of
/// their labels (for the message's total).
fn action_problems(i: usize, block: &Value, out: &mut Vec<String>) -> usize {
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let elements = block["elements"].as_array();
    let count = elements.map_or(0, Vec::len);
    if count == 0 || count > limits::ACTION_ELEMENTS {
        out.push(format!("block {i}: {count} action elements"));
    }
    let mut ids = std::collections::HashSet::new();
    let mut total = 0;
    for (j, e) in elements.into_iter().flatten().enumerate() {
        let at = format!("block {i} element {j}");
        if e["type"] != "button" {
            out.push(format!("{at}: not a button"));
            continue;
        }
        if e["text"]["type"] != "plain_text" || chars(&e["text"]["text"]) == 0 {
            out.push(format!("{at}: a button needs plain_text"));
        }
        if chars(&e["text"]["text"]) > limits::BUTTON_TEXT {
            out.push(format!("{at}: button text over {}", limits::BUTTON_TEXT));
        }
        total += chars(&e["text"]["text"]);
        let id = e["action_id"].as_str().unwrap_or_default();
        if id.is_empty() || id.chars().count() > limits::ACTION_ID || !ids.insert(id) {
            out.push(format!("{at}: action_id missing, too long or repeated"));
        }
        if chars(&e["value"]) > limits::BUTTON_VALUE {
            out.push(format!("{at}: value over {}", limits::BUTTON_VALUE));
        }
        if let Some(style) = e.get("style")
            && style != "primary"
            && style != "danger"
        {
            out.push(format!("{at}: style {style}"));
        }
        if let Some(confirm) = e.get("confirm") {
            let sized = [
                ("title", limits::CONFIRM_TITLE),
                ("text", limits::CONFIRM_TEXT),
                ("confirm", limits::CONFIRM_BUTTON),
                ("deny", limits::CONFIRM_BUTTON),
            ];
            for (part, max) in sized {
                let n = chars(&confirm[part]["text"]);
                if confirm[part]["type"] != "plain_text" || n == 0 || n > max {
                    out.push(format!(
                        "{at}: confirm {part} must be plain_text of 1–{max}"
                    ));
                }
            }
        }
    }
    total
}

/// How many suggested titles get an Approve button of their own (Edit, or `podflow approve
/// --title N`, picks any other).
pub const TITLE_BUTTONS: usize = 5;

/// `1:02:03` or `2:03`, as podcast apps show chapter starts.
fn clock(seconds: f64) -> String {
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn button(action_id: &str, label: &str, value: &ActionValue, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": truncate(label, limits::BUTTON_TEXT), "emoji": true},
        // The value names the proposal, so a button of an older message is refused as such.
        "value": serde_json::to_string(value).unwrap_or_default(),
    });
    if let Some(style) = style {
        b["style"] = json!(style);
    }
    b
}

/// The Approve buttons (one per suggested title, up to [`TITLE_BUTTONS`]), Edit and Reject.
fn decision_buttons(p: &EpisodeProposed) -> Value {
    let value = |title: Option<usize>| ActionValue {
        episode_id: p.episode_id.clone(),
        proposal: p.proposal,
        title,
    };
    let plain = |text: &str, max: usize| json!({"type": "plain_text", "text": truncate(text, max)});
    // Approving publishes the episode to the feed: asked once more, naming the title.
    let confirm = |title: &str| {
        json!({
            "title": plain("Publish this episode?", limits::CONFIRM_TITLE),
            "text": plain(&format!("“{title}” goes into the feed with this summary and these chapters."), limits::CONFIRM_TEXT),
            "confirm": plain("Publish", limits::CONFIRM_BUTTON),
            "deny": plain("Not yet", limits::CONFIRM_BUTTON),
        })
    };
    let mut elements = Vec::new();
    if p.titles.is_empty() {
        let mut approve = button(
            &format!("{}_0", action_ids::APPROVE),
            "Approve",
            &value(None),
            Some("primary"),
        );
        approve["confirm"] = confirm("the file's name as its title");
        elements.push(approve);
    }
    for (i, title) in p.titles.iter().take(TITLE_BUTTONS).enumerate() {
        let n = i + 1;
        let mut approve = button(
            &format!("{}_{n}", action_ids::APPROVE),
            &format!("Approve {n}: {title}"),
            &value(Some(n)),
            (n == 1).then_some("primary"),
        );
        approve["confirm"] = confirm(title);
        elements.push(approve);
    }
    elements.push(button(action_ids::EDIT, "Edit…", &value(None), None));
    elements.push(button(
        action_ids::REJECT,
        "Reject…",
        &value(None),
        Some("danger"),
    ));
    json!({
        "type": "actions",
        "block_id": format!("podflow_decide_p{}", p.proposal),
        "elements": elements,
    })
}

/// The message for one `EpisodeProposed`: the summary, chapters and titles that would be
/// published, and the buttons that decide (Approve per title, Edit, Reject). `file_name`
/// names the episode when no title was suggested. With `decided` (mrkdwn, escaped by the
/// caller) the buttons give way to the decision: the message as updated once decided.
pub fn proposal_message(p: &EpisodeProposed, file_name: &str, decided: Option<&str>) -> Value {
    let title = p.titles.first().map_or(file_name, String::as_str);
    let mut blocks = vec![header(&format!("Proposed: {title}"))];
    match p
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(summary) => blocks.push(section(&escape(&truncate(summary, 2800)))),
        None => blocks.push(section("_No summary was made._")),
    }
    if !p.chapters.is_empty() {
        let lines: Vec<String> = p
            .chapters
            .iter()
            .map(|c| format!("• `{}` {}", clock(c.start_time), escape(&c.title)))
            .collect();
        blocks.push(section(&truncate(
            &format!("*Chapters*\n{}", lines.join("\n")),
            2500,
        )));
    }
    if !p.titles.is_empty() {
        let lines: Vec<String> = p
            .titles
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}. {}", i + 1, escape(t)))
            .collect();
        let mut text = format!("*Suggested titles*\n{}", truncate(&lines.join("\n"), 1400));
        if p.titles.len() > TITLE_BUTTONS {
            text.push_str(&format!(
                "\n_Titles after {TITLE_BUTTONS}: choose them with Edit._"
            ));
        }
        blocks.push(section(&text));
    }
    if !p.failed_prompts.is_empty() {
        let failed: Vec<String> = p
            .failed_prompts
            .iter()
            .map(|f| format!("{} v{}", escape(&f.prompt_id), f.prompt_version))
            .collect();
        blocks.push(context(&format!(
            ":warning: Failed, so made without the model or missing: {}",
            failed.join(", ")
        )));
    }
    match decided {
        None => blocks.push(decision_buttons(p)),
        Some(line) => blocks.push(section(line)),
    }
    let id = escape(&p.episode_id);
    blocks.push(context(&format!(
        "proposal {} · episode `{id}` · from a terminal: `podflow approve {id}` or `podflow reject {id} --note …`",
        p.proposal
    )));
    let fallback = truncate(
        &format!("Proposed for approval: {title} (proposal {})", p.proposal),
        limits::FALLBACK_TEXT,
    );
    json!({"text": fallback, "blocks": blocks})
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

    fn proposed(titles: usize, summary: &str, chapters: usize) -> EpisodeProposed {
        EpisodeProposed {
            schema_version: podflow_events::SCHEMA_VERSION.into(),
            episode_id: "weekly-42-0123456789ab".into(),
            correlation_id: "corr-1".into(),
            proposal: 3,
            status: podflow_events::SummaryStatus::Complete,
            titles: (1..=titles)
                .map(|i| format!("Title <{i}> & more"))
                .collect(),
            summary: Some(summary.into()),
            chapters: (0..chapters)
                .map(|i| podflow_events::ProposedChapter {
                    start_time: i as f64 * 95.0,
                    title: format!("Chapter {i}"),
                })
                .collect(),
            files: Vec::new(),
            failed_prompts: Vec::new(),
        }
    }

    fn buttons(m: &Value) -> Vec<Value> {
        m["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_proposal_shows_what_would_be_published_with_a_button_per_title() {
        let m = proposal_message(
            &proposed(2, "We talk about retries.", 3),
            "weekly-42.m4a",
            None,
        );
        assert_eq!(problems(&m), Vec::<String>::new());
        let text = m.to_string();
        assert!(
            text.contains("Proposed: Title <1> & more"),
            "the header is plain text"
        );
        assert!(text.contains("We talk about retries."));
        assert!(text.contains("`1:35` Chapter 1"), "{text}");
        assert!(
            text.contains("2. Title &lt;2&gt; &amp; more"),
            "mrkdwn escaped: {text}"
        );
        let b = buttons(&m);
        let ids: Vec<&str> = b.iter().filter_map(|x| x["action_id"].as_str()).collect();
        assert_eq!(
            ids,
            [
                "podflow_approve_1",
                "podflow_approve_2",
                "podflow_edit",
                "podflow_reject"
            ]
        );
        let value: ActionValue =
            serde_json::from_str(b[1]["value"].as_str().unwrap_or_default()).expect("value");
        assert_eq!(
            value,
            ActionValue {
                episode_id: "weekly-42-0123456789ab".into(),
                proposal: 3,
                title: Some(2)
            }
        );
        assert_eq!(b[3]["style"], "danger");
        assert!(b[0]["confirm"].is_object(), "publishing is confirmed");

        // Decided: the buttons give way to the decision.
        let done = proposal_message(
            &proposed(2, "x", 0),
            "weekly-42.m4a",
            Some("Approved by <@U1>"),
        );
        assert!(buttons(&done).is_empty());
        assert!(done.to_string().contains("Approved by <@U1>"));
        // No title suggested: one Approve button, under the file's name.
        let untitled = proposal_message(&proposed(0, "x", 0), "weekly-42.m4a", None);
        assert!(untitled.to_string().contains("Proposed: weekly-42.m4a"));
        assert_eq!(buttons(&untitled).len(), 3);
    }

    #[test]
    fn a_huge_proposal_still_fits_slacks_limits() {
        let title_heavy = proposed(40, &"A long sentence that never ends ".repeat(500), 400);
        let mut p = title_heavy;
        p.titles[0] = "T".repeat(500);
        p.episode_id = "e".repeat(60);
        let m = proposal_message(&p, "file.m4a", None);
        assert_eq!(problems(&m), Vec::<String>::new());
        assert_eq!(buttons(&m).len(), TITLE_BUTTONS + 2);
        assert!(m.to_string().contains("choose them with Edit"));
    }

    #[test]
    fn the_checker_catches_broken_buttons() {
        let button = |text: &str, id: &str, style: &str| json!({"type": "button", "action_id": id, "text": {"type": "plain_text", "text": text}, "value": "v", "style": style});
        let twice = json!({"blocks": [{"type": "actions", "elements": [button("a", "x", "primary"), button("b", "x", "primary")]}]});
        assert_eq!(problems(&twice).len(), 1, "{:?}", problems(&twice));
        let long = json!({"blocks": [{"type": "actions", "elements": [button(&"a".repeat(76), "x", "primary")]}]});
        assert_eq!(problems(&long).len(), 1);
        let styled =
            json!({"blocks": [{"type": "actions", "elements": [button("a", "x", "loud")]}]});
        assert_eq!(problems(&styled).len(), 1);
        let empty = json!({"blocks": [{"type": "actions", "elements": []}]});
        assert_eq!(problems(&empty).len(), 1);
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
