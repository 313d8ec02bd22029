//! An SNS topic as a notification target (the alternative to a Slack webhook). Publish is
//! called over SNS's Query API (see `crate::signed`).

use async_trait::async_trait;
use aws_config::SdkConfig;
use podflow_core::{Notifier, PortError};
use serde_json::{Value, json};

use crate::signed::SignedHttp;

/// SNS caps a subject at 100 characters.
const SUBJECT_CHARS: usize = 100;

/// Publishes notifications to one topic. E-mail and SMS subscribers get the message's plain
/// text; SQS, Lambda and HTTP subscribers get the whole message (Block Kit JSON included),
/// using SNS's per-protocol message structure.
pub struct SnsNotifier {
    http: SignedHttp,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(config: &SdkConfig, topic_arn: &str) -> Self {
        Self {
            http: SignedHttp::new(config),
            topic_arn: topic_arn.to_owned(),
        }
    }
}

/// SMS messages are cut here (SNS splits longer ones into several paid messages).
const SMS_CHARS: usize = 140;

/// Slack mrkdwn as plain text: `<url|label>` becomes `label: url`, and the three escaped
/// characters come back. Written by hand: it is these two rules, not a markdown dialect.
fn plain(mrkdwn: &str) -> String {
    let mut out = String::with_capacity(mrkdwn.len());
    let mut rest = mrkdwn;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close) => {
                let inner = &after[..close];
                match inner.split_once('|') {
                    Some((url, label)) => out.push_str(&format!("{label}: {url}")),
                    None => out.push_str(inner),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The whole Block Kit message as plain text, one line per text or field, for e-mail
/// subscribers; the message's short fallback text when it has no blocks.
pub fn plain_text(message: &Value) -> String {
    let mut lines = Vec::new();
    for block in message["blocks"].as_array().into_iter().flatten() {
        let texts = block["text"]["text"].as_str().into_iter().chain(
            ["fields", "elements"]
                .iter()
                .flat_map(|key| block[*key].as_array().into_iter().flatten())
                .filter_map(|item| item["text"].as_str()),
        );
        lines.extend(texts.map(plain));
    }
    if lines.is_empty() {
        return plain(message["text"].as_str().unwrap_or("podflow notification"));
    }
    lines.join("\n")
}

/// The `MessageStructure=json` body and the subject for a message.
pub fn sns_message(message: &Value) -> (String, String) {
    let text = plain(message["text"].as_str().unwrap_or("podflow notification"));
    let long = plain_text(message);
    let sms: String = text.chars().take(SMS_CHARS).collect();
    let whole = message.to_string();
    let body = json!({
        "default": long,
        "email": long,
        "sms": sms,
        "sqs": whole,
        "lambda": whole,
        "http": whole,
        "https": whole,
    });
    // Subjects are ASCII-ish single lines.
    let subject: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(SUBJECT_CHARS)
        .collect();
    (body.to_string(), subject)
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn describe(&self) -> String {
        format!("SNS topic {}", self.topic_arn)
    }

    async fn send(&self, message: &Value) -> Result<(), PortError> {
        let (body, subject) = sns_message(message);
        let mut params = vec![
            ("Action", "Publish"),
            ("Version", "2010-03-31"),
            ("TopicArn", self.topic_arn.as_str()),
            ("MessageStructure", "json"),
            ("Message", body.as_str()),
        ];
        // A message without a first line goes without a subject rather than an empty one.
        if !subject.is_empty() {
            params.push(("Subject", subject.as_str()));
        }
        match self.http.query("sns", &params).await {
            Ok(_) => Ok(()),
            Err(e) => Err(PortError::new(e.kind, format!("{}: {e}", self.describe()))
                .with_fix("check PODFLOW_SNS_TOPIC_ARN and the function's sns:Publish permission")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_gets_every_block_as_text_and_sms_the_short_line() {
        let message = json!({
            "text": "Ep 7 — revision 1: 1 item(s) failed",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Ep 7"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "Tea &amp; cake\n<https://x/a.mp3|MP3>"}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "<file:///e/show-notes.md|Show notes>"}]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "revision 1"}]}
            ]
        });
        let (body, subject) = sns_message(&message);
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            body["email"],
            "Ep 7\nTea & cake\nMP3: https://x/a.mp3\nShow notes: file:///e/show-notes.md\nrevision 1"
        );
        assert_eq!(body["default"], body["email"]);
        assert_eq!(body["sms"], "Ep 7 — revision 1: 1 item(s) failed");
        assert_eq!(subject, "Ep 7 — revision 1: 1 item(s) failed");
        let whole: Value =
            serde_json::from_str(body["sqs"].as_str().expect("string")).expect("json");
        assert_eq!(whole, message);
    }

    #[test]
    fn plain_keeps_unclosed_brackets_and_subject_stays_short() {
        assert_eq!(plain("a <b c"), "a <b c");
        assert_eq!(plain("<https://x>"), "https://x");
        let long = json!({"text": "x".repeat(300)});
        let (_, subject) = sns_message(&long);
        assert_eq!(subject.chars().count(), SUBJECT_CHARS);
    }
}
