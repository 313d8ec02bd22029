//! The publisher's notifier: posts "MP3 ready" the moment the transcode is done, one
//! message per `EpisodeSummarized` revision, and one per `EpisodeProposed` proposal (with
//! the Approve / Edit / Reject buttons that [`crate::slack_actions`] answers). It consumes
//! events of its own, so a Slack outage delays only Slack messages, never the summary event
//! other teams wait for.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use podflow_core::{
    BlobStore, Delivery, EpisodeStore, MessageHandler, Notifier, Outcome, PortError, StepStatus,
    handling::{backoff, give_up_step, retry_on_store_error},
    secret::Secret,
    show::ShowLayers,
};
use podflow_events::{
    EpisodeProposed, EpisodeSummarized, EpisodeTranscoded, EventEnvelope, SummaryStatus,
};
use serde_json::Value;

use crate::{approval, documents, links::ShareLinks, slack};

pub const STEP: &str = "notify";

/// A Slack incoming webhook.
pub struct SlackWebhook {
    url: Secret,
    client: reqwest::Client,
}

impl SlackWebhook {
    pub fn new(url: Secret, timeout: Duration) -> Result<Self, PortError> {
        if !(url.expose().starts_with("https://") || url.expose().starts_with("http://")) {
            // The value is not repeated: a mistyped webhook URL is still a secret.
            return Err(PortError::setup(
                "PODFLOW_SLACK_WEBHOOK_URL must be an http(s) URL (https://hooks.slack.com/services/…)",
            ));
        }
        // reqwest is built without a default crypto provider (to share the AWS SDK's).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| PortError::setup(format!("HTTP client: {e}")))?;
        Ok(Self { url, client })
    }
}

#[async_trait]
impl Notifier for SlackWebhook {
    fn describe(&self) -> String {
        // Only the host and port: the path of a webhook URL is its secret, and a user,
        // password or query could be one too.
        let url = reqwest::Url::parse(self.url.expose()).ok();
        let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or("?");
        match url.as_ref().and_then(reqwest::Url::port) {
            Some(port) => format!("Slack webhook at {host}:{port}"),
            None => format!("Slack webhook at {host}"),
        }
    }

    async fn send(&self, message: &Value) -> Result<(), PortError> {
        let response = self
            .client
            .post(self.url.expose())
            .json(message)
            .send()
            .await
            // Without the URL: its path is the webhook's secret, and this text reaches the
            // logs, the step's note and the dead-letter queue.
            .map_err(|e| {
                PortError::transient(format!(
                    "{}: {}",
                    self.describe(),
                    podflow_core::report(&e.without_url())
                ))
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        let body = response.text().await.unwrap_or_default();
        let said = format!(
            "{}: HTTP {} {}",
            self.describe(),
            status.as_u16(),
            body.trim()
        );
        match status.as_u16() {
            200..=299 => Ok(()),
            429 => Err(PortError::throttled(said, retry_after)),
            500..=599 => Err(PortError::transient(said)),
            // invalid_payload, invalid_token, channel_not_found, channel_is_archived...
            _ => Err(PortError::setup(said).with_fix(
                "check PODFLOW_SLACK_WEBHOOK_URL and the channel, then `podflow dlq replay`",
            )),
        }
    }
}

/// The configured notifier: a Slack webhook when `webhook_url` is set, otherwise none.
pub fn notifier_from(webhook_url: Option<&Secret>) -> Result<Option<Arc<dyn Notifier>>, PortError> {
    match webhook_url
        .map(|u| u.expose().trim())
        .filter(|u| !u.is_empty())
    {
        Some(url) => Ok(Some(Arc::new(SlackWebhook::new(
            Secret::new(url),
            Duration::from_secs(10),
        )?))),
        None => Ok(None),
    }
}

/// The notification target from the settings: a Slack webhook (a URL, or `file:PATH` /
/// `ssm:NAME` / `secretsmanager:ID` naming one, read once here) or an SNS topic — not both —
/// or none.
/// `aws` gives the AWS configuration, asked for only when SNS or a secret needs it.
pub async fn configured_notifier(
    slack_webhook: Option<&Secret>,
    sns_topic_arn: Option<&str>,
    aws: impl AsyncFnOnce() -> podflow_aws::SdkConfig,
) -> Result<Option<Arc<dyn Notifier>>, PortError> {
    let slack_webhook = slack_webhook.filter(|v| !v.expose().trim().is_empty());
    let sns_topic_arn = sns_topic_arn.map(str::trim).filter(|v| !v.is_empty());
    match (slack_webhook, sns_topic_arn) {
        (Some(_), Some(_)) => Err(PortError::setup(
            "both PODFLOW_SLACK_WEBHOOK_URL and PODFLOW_SNS_TOPIC_ARN are set; set one of them",
        )),
        (None, Some(topic)) => Ok(Some(Arc::new(podflow_aws::sns::SnsNotifier::new(
            &aws().await,
            topic,
        )))),
        (Some(webhook), None) => {
            let url = podflow_aws::secrets::read_setting("PODFLOW_SLACK_WEBHOOK_URL", webhook, aws)
                .await?;
            notifier_from(Some(&url))
        }
        (None, None) => Ok(None),
    }
}

/// The notifier service's handler.
pub struct NotifyHandler {
    pub store: Arc<dyn EpisodeStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// `None`: nothing configured, which is noted, not an error.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// How links to the episode's files are made, and how long they work.
    pub links: ShareLinks,
    /// The show (its `approval_reminder_hours`), around the stored `podflow.toml`.
    pub show: ShowLayers,
}

/// The detail-type of EventBridge's scheduled events: the notifier's periodic tick.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// Sends one reminder for each proposal that has waited past the show's
/// `approval_reminder_hours`, and records it so it is sent once. Reminding publishes
/// nothing. Returns how many were sent.
pub async fn send_reminders(
    store: &dyn EpisodeStore,
    blobs: &dyn BlobStore,
    notifier: Option<&dyn Notifier>,
    show: &ShowLayers,
    now_ms: i64,
) -> Result<usize, PortError> {
    let Some(notifier) = notifier else {
        return Ok(0);
    };
    let (show, _) = show.resolve(blobs).await?;
    let mut sent = 0;
    for due in approval::reminders_due(store, &show, now_ms).await? {
        let p = &due.proposal;
        let title = store
            .episode(&p.episode_id)
            .await?
            .map_or_else(|| p.episode_id.clone(), |r| r.original_name);
        let message =
            slack::approval_reminder(&title, &p.episode_id, p.proposal, due.waiting_hours);
        match notifier.send(&message).await {
            Ok(()) => {
                approval::mark_reminded(store, &p.episode_id, p.proposal).await?;
                sent += 1;
            }
            // Tried again at the next tick.
            Err(e) => {
                tracing::warn!(episode_id = %p.episode_id, error = %e.report(), "approval reminder not sent")
            }
        }
    }
    Ok(sent)
}

impl NotifyHandler {
    async fn title(&self, episode_id: &str) -> Result<String, PortError> {
        Ok(self
            .store
            .episode(episode_id)
            .await?
            .map_or_else(|| episode_id.to_owned(), |r| r.original_name))
    }

    async fn output_text(&self, summary: &EpisodeSummarized, prompt: &str) -> Option<String> {
        let out = summary.outputs.iter().find(|o| o.prompt_id == prompt)?;
        let bytes = self.blobs.get(&out.output).await.ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn summary_message(&self, s: &EpisodeSummarized) -> Result<Value, PortError> {
        let titles = self
            .output_text(s, "titles")
            .await
            .map(|t| documents::titles(&t))
            .unwrap_or_default();
        let title = match titles.into_iter().next() {
            Some(t) => t,
            None => self.title(&s.episode_id).await?,
        };
        let summary = self.output_text(s, "summary").await;
        let mp3_url = match &s.audio {
            Some(audio) => Some(self.links.url(self.blobs.as_ref(), audio).await?),
            None => None,
        };
        let mut links = Vec::new();
        let named = [
            (&s.transcript, "Transcript (JSON)"),
            (&s.subtitles_srt, "Subtitles (SRT)"),
            (&s.subtitles_vtt, "Subtitles (VTT)"),
        ];
        for (blob, label) in named {
            if let Some(blob) = blob {
                links.push((
                    label.to_owned(),
                    self.links.url(self.blobs.as_ref(), blob).await?,
                ));
            }
        }
        for f in s.files.iter().filter(|f| !f.name.starts_with("clips/")) {
            links.push((
                f.name.clone(),
                self.links.url(self.blobs.as_ref(), &f.file).await?,
            ));
        }
        let clips = s
            .files
            .iter()
            .filter(|f| f.name.starts_with("clips/") && f.name.ends_with(".mp3"))
            .count();
        if clips > 0 {
            links.push((
                "Clips".to_owned(),
                format!("{clips} in clips/ (see clips.json)"),
            ));
        }
        let failures: Vec<(String, String)> = s
            .failed_steps
            .iter()
            .map(|f| (f.step.clone(), f.reason.clone()))
            .chain(s.failed_prompts.iter().map(|f| {
                (
                    format!("{} v{}", f.prompt_id, f.prompt_version),
                    f.reason.clone(),
                )
            }))
            .collect();
        Ok(slack::summary_message(&slack::SummaryNotice {
            title: &title,
            episode_id: &s.episode_id,
            revision: s.revision,
            complete: s.status == SummaryStatus::Complete,
            summary: summary.as_deref(),
            mp3_url: mp3_url.as_deref(),
            links: &links,
            failures: &failures,
            cost_usd: s.cost.as_ref().map(|c| c.total_usd),
        }))
    }

    /// The notice for an event, if it is one that is announced.
    async fn message_for(&self, envelope: &EventEnvelope) -> Result<Option<Notice>, Outcome> {
        let store_err = |e: PortError| retry_on_store_error(1, &e);
        match envelope.detail_type.as_str() {
            "EpisodeTranscoded" => {
                let ev: EpisodeTranscoded = envelope.decode().map_err(dead_letter)?;
                let title = self.title(&ev.episode_id).await.map_err(store_err)?;
                let url = self
                    .links
                    .url(self.blobs.as_ref(), &ev.audio)
                    .await
                    .map_err(store_err)?;
                let minutes = Some(ev.duration_seconds / 60.0);
                let message = slack::mp3_ready(&title, &ev.episode_id, &url, minutes);
                Ok(Some(Notice {
                    sent_key: format!("notified:{}:mp3:{}", ev.episode_id, ev.audio.sha256),
                    episode_id: ev.episode_id,
                    message,
                    note: "MP3 announced".into(),
                }))
            }
            "EpisodeSummarized" => {
                let ev: EpisodeSummarized = envelope.decode().map_err(dead_letter)?;
                let message = self.summary_message(&ev).await.map_err(store_err)?;
                Ok(Some(Notice {
                    sent_key: format!("notified:{}:summary:r{}", ev.episode_id, ev.revision),
                    note: format!("revision {} announced", ev.revision),
                    episode_id: ev.episode_id,
                    message,
                }))
            }
            "EpisodeProposed" => {
                let ev: EpisodeProposed = envelope.decode().map_err(dead_letter)?;
                let file_name = self.title(&ev.episode_id).await.map_err(store_err)?;
                Ok(Some(Notice {
                    message: slack::proposal_message(&ev, &file_name, None),
                    // Per proposal, like revisions: each distinct outcome is proposed once.
                    sent_key: format!("notified:{}:proposal:p{}", ev.episode_id, ev.proposal),
                    note: format!("proposal {} announced for approval", ev.proposal),
                    episode_id: ev.episode_id,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// One announcement: the message, the note for the step once it is sent, and its business
/// key. The key (episode and revision, or episode and MP3), not the event's id, decides
/// what was sent already: EventBridge gives a re-published event a new id.
struct Notice {
    episode_id: String,
    message: Value,
    note: String,
    sent_key: String,
}

fn dead_letter(e: impl std::fmt::Display) -> Outcome {
    Outcome::DeadLetter {
        emit: Vec::new(),
        reason: e.to_string(),
    }
}

#[async_trait]
impl MessageHandler for NotifyHandler {
    fn name(&self) -> &'static str {
        "publisher-notify"
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let envelope = match EventEnvelope::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => return dead_letter(e),
        };
        if envelope.detail_type == SCHEDULED_EVENT {
            let notifier = self.notifier.as_deref();
            return match send_reminders(
                self.store.as_ref(),
                self.blobs.as_ref(),
                notifier,
                &self.show,
                podflow_core::now_ms(),
            )
            .await
            {
                Ok(_) => Outcome::nothing(),
                Err(e) => retry_on_store_error(delivery.attempt, &e),
            };
        }
        let Notice {
            episode_id,
            message,
            note,
            sent_key,
        } = match self.message_for(&envelope).await {
            Ok(Some(notice)) => notice,
            Ok(None) => return Outcome::nothing(),
            Err(outcome) => return outcome,
        };
        let result = async {
            let Some(notifier) = &self.notifier else {
                let note = "no Slack webhook configured (set PODFLOW_SLACK_WEBHOOK_URL, or PODFLOW_SNS_TOPIC_ARN for SNS); nothing posted";
                self.store
                    .step_finished(&episode_id, STEP, StepStatus::Done, Some(note))
                    .await?;
                return Ok(Outcome::nothing());
            };
            // One message per revision (or MP3), however often its event comes.
            if self.store.work_result(&sent_key).await?.is_some() {
                return Ok(Outcome::nothing());
            }
            let problems = slack::problems(&message);
            if !problems.is_empty() {
                return Ok(dead_letter(format!(
                    "message for {} breaks Slack's limits: {}",
                    envelope.id,
                    problems.join("; ")
                )));
            }
            self.store.step_started(&episode_id, STEP).await?;
            match notifier.send(&message).await {
                Ok(()) => {
                    podflow_core::crash::point("notify.after_send");
                    self.store
                        .record_work(
                            &sent_key,
                            &episode_id,
                            &serde_json::json!({"to": notifier.describe()}),
                        )
                        .await?;
                    let note = format!("{note} to {}", notifier.describe());
                    self.store
                        .step_finished(&episode_id, STEP, StepStatus::Done, Some(&note))
                        .await?;
                    Ok(Outcome::nothing())
                }
                Err(e) if e.is_retryable() => {
                    let jitter = backoff(
                        delivery.attempt,
                        Duration::from_secs(1),
                        Duration::from_secs(60),
                        rand::random(),
                    );
                    Ok(Outcome::Retry {
                        delay: e.retry_after().unwrap_or_default().max(jitter),
                        reason: e.report(),
                    })
                }
                Err(e) => {
                    let reason = e.report();
                    self.store
                        .step_finished(&episode_id, STEP, StepStatus::Failed, Some(&reason))
                        .await?;
                    Ok(dead_letter(reason))
                }
            }
        };
        match result.await {
            Ok(outcome) => outcome,
            Err::<_, PortError>(e) => retry_on_store_error(delivery.attempt, &e),
        }
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Outcome {
        give_up_step(self.store.as_ref(), delivery, STEP, reason, None).await
    }
}
