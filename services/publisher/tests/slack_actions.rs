//! Approving in Slack, end to end over real parts: the publisher proposes an episode
//! (SQLite store, files, ffmpeg), the notifier posts the proposal to a fake Slack that
//! answers like Slack, and signed interactivity requests — built as Slack builds them — go
//! through `SlackActions`, whose decisions the publisher then takes.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hmac::{Hmac, Mac};
use podflow_core::{
    BlobStore, Delivery, EpisodeRecord, MessageHandler, StepStatus, TextEngine,
    secret::Secret,
    show::{Approval, ShowLayers},
    transcript::{Transcript, TranscriptSegment},
};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::{
    EpisodeApproved, EpisodeProposed, EpisodeRejected, EpisodeSummarized, EventEnvelope,
};
use podflow_fakes::{
    bus::RecordingBus,
    slack::{BOT_TOKEN, FakeSlack},
};
use podflow_media::Ffmpeg;
use publisher::{
    PublishHandler,
    cost::PriceTable,
    notify::{NotifyHandler, notifier_from},
    slack,
    slack_actions::{HttpAnswer, SlackActions, SlackHttp, Timing},
};
use serde_json::{Value, json};
use sha2::Sha256;

mod support;

use support::{Completion, delivery, events_of};

const EPISODE: &str = "weekly-42-0123456789ab";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const SECRET: &str = "e3b98fd4a4c1d5b8a17c26f4d8e0b7a2";
const USER: &str = "U0KRQLJ9H";
const TITLES: &str = "1. Retries Without Tears\n2. Never Twice";
const SUMMARY: &str = "We talk about retries. Every step retries on its own.";
const CHAPTERS: &str = r#"{"chapters": [{"startTime": 0, "title": "Welcome"}, {"startTime": 20, "title": "Why prompts fail"}]}"#;

/// The text of the last reply to the response_url, checked to be for the clicking person
/// only and to leave the proposal's message as it was.
fn private_reply(slack: &FakeSlack) -> String {
    let reply = slack.responses().last().cloned().expect("a reply");
    assert_eq!(reply["response_type"], "ephemeral", "{reply}");
    assert_eq!(reply["replace_original"], false, "{reply}");
    reply["text"].as_str().unwrap_or_default().to_owned()
}

/// A proposal posted to Slack, and the interactivity endpoint its buttons reach (with a bot
/// token or without), sending decisions to `bus`.
struct InSlack {
    episode: Proposed,
    slack: FakeSlack,
    message: Value,
    bus: Arc<RecordingBus>,
    actions: SlackActions,
}

async fn in_slack(bot_token: bool) -> InSlack {
    let episode = Proposed::new().await;
    let slack = FakeSlack::start(Vec::new()).await.expect("fake slack");
    let message = posted(&episode, &slack).await;
    let bus = Arc::new(RecordingBus::default());
    let actions = episode.actions(&slack, bus.clone(), bot_token);
    InSlack {
        episode,
        slack,
        message,
        bus,
        actions,
    }
}

/// An episode of a show that requires approval, proposed once its prompts completed.
struct Proposed {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    db: Db,
    blobs: Arc<FileBlobStore>,
    envelope: EventEnvelope,
}

impl Proposed {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_path_buf();
        let db = Db::open(&data).expect("db");
        let blobs = Arc::new(FileBlobStore::new(&data));
        let mp3 = data.join("tone.mp3");
        support::tone_mp3(&mp3, 60.0);
        let audio = podflow_media::store_file(
            blobs.as_ref(),
            &format!("episodes/{EPISODE}/audio.mp3"),
            &mp3,
        )
        .await
        .expect("audio");
        let transcript = Transcript {
            language: "en".into(),
            duration_seconds: 60.0,
            engine: "whisper.cpp".into(),
            model: "tiny.en".into(),
            segments: vec![TranscriptSegment {
                start: 0.0,
                end: 8.0,
                speaker: None,
                text: "Welcome back to the show.".into(),
                words: Vec::new(),
            }],
        };
        let transcript = blobs
            .put(
                &format!("episodes/{EPISODE}/transcript.json"),
                serde_json::to_vec(&transcript).expect("json"),
            )
            .await
            .expect("transcript");
        let prompts = ["titles", "summary", "chapters"];
        support::ready_for_prompts(
            &db,
            EpisodeRecord {
                episode_id: EPISODE.into(),
                correlation_id: "corr-1".into(),
                original_name: "weekly-42.m4a".into(),
                source: audio,
                created_at_ms: 0,
            },
            &transcript,
            &prompts,
            MODEL,
        )
        .await;
        let mut emitted = Vec::new();
        for (prompt, answer) in [
            ("titles", TITLES),
            ("summary", SUMMARY),
            ("chapters", CHAPTERS),
        ] {
            let d = complete(&db, blobs.as_ref(), prompt, answer).await;
            emitted.extend(events_of(publisher(&db, &blobs).handle(&d).await));
        }
        assert_eq!(emitted.len(), 1, "one proposal");
        Self {
            _dir: dir,
            data,
            db,
            blobs,
            envelope: emitted.remove(0),
        }
    }

    fn publisher(&self) -> PublishHandler {
        publisher(&self.db, &self.blobs)
    }

    async fn complete(&self, prompt: &str, answer: &str) -> Delivery {
        complete(&self.db, self.blobs.as_ref(), prompt, answer).await
    }

    fn actions(&self, slack: &FakeSlack, bus: Arc<RecordingBus>, bot_token: bool) -> SlackActions {
        SlackActions {
            store: Arc::new(self.db.clone()),
            events: bus,
            slack: Arc::new(
                SlackHttp::with_endpoints(
                    &slack.api_base(),
                    &slack.response_prefix(),
                    bot_token.then(|| Secret::new(BOT_TOKEN)),
                )
                .expect("client"),
            ),
            signing_secret: Secret::new(SECRET),
            timing: Timing::default(),
        }
    }
}

/// The publisher of a show that requires approval.
fn publisher(db: &Db, blobs: &Arc<FileBlobStore>) -> PublishHandler {
    let mut show = ShowLayers::default();
    show.above.approval = Some(Approval::Required);
    PublishHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        clips: Arc::new(Ffmpeg::default()),
        prices: PriceTable::load(None).expect("prices"),
        text_engine: TextEngine::Llm,
        show,
    }
}

/// The prompt completed with `answer`; returns the event the invoker would publish.
async fn complete(db: &Db, blobs: &FileBlobStore, prompt: &str, answer: &str) -> Delivery {
    Completion {
        episode: EPISODE,
        correlation_id: "corr-1",
        model: MODEL,
        prompt,
        answer,
        tokens: (100, 10),
    }
    .finish(db, blobs)
    .await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `X-Slack-Signature` for `body` as Slack computes it ("Verifying requests from Slack").
fn signature(body: &str, secret: &str, timestamp: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The request Slack sends for `payload`, signed with `secret` at `timestamp`: a form body
/// and the two headers.
fn signed(payload: &Value, secret: &str, timestamp: u64) -> (Vec<(String, String)>, Vec<u8>) {
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
    let signature = signature(&body, secret, timestamp);
    let headers = vec![
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (
            "X-Slack-Request-Timestamp".to_owned(),
            timestamp.to_string(),
        ),
        ("X-Slack-Signature".to_owned(), signature),
    ];
    (headers, body.into_bytes())
}

/// Slack's block_actions payload for a click on `button` of the posted message.
fn clicked(slack: &FakeSlack, message: &Value, button: &Value) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": USER, "username": "coyote", "name": "coyote", "team_id": "T00000000"},
        "api_app_id": "A0KRD7HC3",
        "token": "Shh_its_a_seekrit",
        "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "C0LAN2Q65", "is_ephemeral": false},
        "trigger_id": slack.trigger_id(),
        "team": {"id": "T00000000", "domain": "podcasters"},
        "channel": {"id": "C0LAN2Q65", "name": "podcast"},
        "message": message,
        "response_url": slack.response_url(),
        "actions": [{
            "action_id": button["action_id"],
            "block_id": "podflow_decide_p1",
            "text": button["text"],
            "value": button["value"],
            "style": button["style"],
            "type": "button",
            "action_ts": "1548426417.840180"
        }]
    })
}

/// Slack's view_submission payload for `view` (as opened) with the inputs' `values`.
fn submitted(view: &Value, values: Value) -> Value {
    json!({
        "type": "view_submission",
        "team": {"id": "T00000000", "domain": "podcasters"},
        "user": {"id": USER, "username": "coyote", "name": "coyote", "team_id": "T00000000"},
        "api_app_id": "A0KRD7HC3",
        "token": "Shh_its_a_seekrit",
        "trigger_id": "12466734323.1395872398.4f8f1d4b4ad1a1e3ea56b1bc1d4b1d6e",
        "view": {
            "id": "VNHU13V36",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "blocks": view["blocks"],
            "state": {"values": values},
            "hash": "156663117.cd33ad1f"
        },
        "response_urls": []
    })
}

fn button<'a>(message: &'a Value, action_id: &str) -> &'a Value {
    message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .find(|e| e["action_id"] == action_id)
        .unwrap_or_else(|| panic!("no {action_id} button in {message}"))
}

/// The notifier posts the proposal; returns the message Slack accepted.
async fn posted(episode: &Proposed, slack: &FakeSlack) -> Value {
    let notify = NotifyHandler {
        store: Arc::new(episode.db.clone()),
        blobs: episode.blobs.clone(),
        notifier: notifier_from(Some(&Secret::new(slack.url.clone()))).expect("notifier"),
        links: publisher::links::ShareLinks::direct(Duration::from_secs(3600)),
        show: Default::default(),
    };
    assert!(events_of(notify.handle(&delivery(&episode.envelope)).await).is_empty());
    slack.accepted().last().cloned().expect("a message")
}

async fn answer(actions: &SlackActions, payload: &Value) -> HttpAnswer {
    let (headers, body) = signed(payload, SECRET, now());
    actions.answer(&headers, &body, now()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proposal_is_posted_once_with_buttons_and_approving_in_slack_publishes_that_title() {
    let episode = Proposed::new().await;
    let proposal: EpisodeProposed = episode.envelope.decode().expect("EpisodeProposed");
    assert_eq!(proposal.titles, ["Retries Without Tears", "Never Twice"]);
    let slack = FakeSlack::start(Vec::new()).await.expect("fake slack");
    let message = posted(&episode, &slack).await;
    // Delivered again, and again under the new id EventBridge gives a re-published event.
    let notify = NotifyHandler {
        store: Arc::new(episode.db.clone()),
        blobs: episode.blobs.clone(),
        notifier: notifier_from(Some(&Secret::new(slack.url.clone()))).expect("notifier"),
        links: publisher::links::ShareLinks::direct(Duration::from_secs(3600)),
        show: Default::default(),
    };
    let mut again = episode.envelope.clone();
    again.id.push_str("-republished");
    for e in [&episode.envelope, &again] {
        assert!(events_of(notify.handle(&delivery(e)).await).is_empty());
    }
    assert_eq!(slack.accepted().len(), 1, "one message per proposal");
    assert_eq!(slack::problems(&message), Vec::<String>::new());
    let text = message.to_string();
    assert!(text.contains("Proposed: Retries Without Tears"), "{text}");
    assert!(
        text.contains(SUMMARY) && text.contains("Why prompts fail"),
        "{text}"
    );

    let bus = Arc::new(RecordingBus::default());
    let actions = episode.actions(&slack, bus.clone(), false);
    let click = clicked(&slack, &message, button(&message, "podflow_approve_2"));
    let started = Instant::now();
    let answered = answer(&actions, &click).await;
    assert_eq!((answered.status, answered.body.as_str()), (200, ""));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "inside Slack's 3 s"
    );

    let sent = bus.published();
    assert_eq!(sent.len(), 1);
    let approved: EpisodeApproved = sent[0].decode().expect("EpisodeApproved");
    assert_eq!(sent[0].source, "podflow.approval");
    assert_eq!(
        (approved.proposal, approved.title.as_str()),
        (1, "Never Twice")
    );
    assert_eq!(approved.approved_by, USER);
    assert_eq!(approved.summary, None);
    // The message now says who decided, and has no buttons left to click.
    let replaced = slack.responses();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(replaced[0]["replace_original"], true);
    let update = replaced[0].to_string();
    assert!(
        update.contains(&format!("Approved by <@{USER}> as “Never Twice”")),
        "{update}"
    );
    assert!(!update.contains("\"actions\""), "{update}");
    assert!(
        update.contains(SUMMARY),
        "the rest of the message stays: {update}"
    );

    // The publisher takes the decision: published under the chosen title.
    let published = events_of(episode.publisher().handle(&delivery(&sent[0])).await);
    let summary: EpisodeSummarized = published[0].decode().expect("EpisodeSummarized");
    assert_eq!(summary.revision, 1);
    let notes = std::fs::read_to_string(
        episode
            .data
            .join(format!("episodes/{EPISODE}/show-notes.md")),
    )
    .expect("show notes");
    assert!(notes.contains("# Never Twice\n"), "{notes}");

    // Another click on the same message: refused with the reason, to that person only.
    let late = clicked(&slack, &message, button(&message, "podflow_approve_1"));
    assert_eq!(answer(&actions, &late).await.status, 200);
    assert_eq!(bus.published().len(), 1, "nothing more sent");
    let refusal = private_reply(&slack);
    assert!(refusal.contains("already"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_interactivity_accepts_signed_requests_and_refuses_bad_signatures_and_stale_ones() {
    let InSlack {
        episode: _episode,
        slack,
        message,
        bus,
        actions,
    } = in_slack(false).await;
    let requests_before = slack.requests();
    let click = clicked(&slack, &message, button(&message, "podflow_approve_1"));

    // Another app's secret; a body changed after signing; an old request replayed; headers
    // missing.
    let (headers, body) = signed(&click, "0000000000000000000000000000000a", now());
    let refused = actions.answer(&headers, &body, now()).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("signing secret"), "{}", refused.body);
    let (headers, mut body) = signed(&click, SECRET, now());
    let at = body.len() / 2;
    body[at] ^= 0x20;
    assert_eq!(actions.answer(&headers, &body, now()).await.status, 401);
    let (headers, body) = signed(&click, SECRET, now() - 6 * 60);
    let stale = actions.answer(&headers, &body, now()).await;
    assert_eq!(stale.status, 401);
    assert!(stale.body.contains("more than 5 minutes"), "{}", stale.body);
    let (headers, body) = signed(&click, SECRET, now());
    assert_eq!(
        actions.answer(&headers, &body, now() + 3600).await.status,
        401,
        "replayed an hour later"
    );
    let unsigned: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k != "X-Slack-Signature")
        .cloned()
        .collect();
    assert_eq!(actions.answer(&unsigned, &body, now()).await.status, 401);
    assert!(bus.published().is_empty(), "nothing refused was sent");
    assert_eq!(slack.requests(), requests_before, "nor said in Slack");

    // Signed: accepted, and header names in any case.
    let lower: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    assert_eq!(actions.answer(&lower, &body, now()).await.status, 200);
    assert_eq!(bus.published().len(), 1);
    // Signed but not an interaction: refused as unreadable, not as unsigned.
    let timestamp = now();
    let headers = vec![
        (
            "x-slack-request-timestamp".to_owned(),
            timestamp.to_string(),
        ),
        (
            "x-slack-signature".to_owned(),
            signature("hello", SECRET, timestamp),
        ),
    ];
    assert_eq!(
        actions.answer(&headers, b"hello", timestamp).await.status,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn edit_opens_a_prefilled_form_whose_submission_approves_the_written_title_and_summary() {
    let InSlack {
        episode,
        slack,
        message,
        bus,
        actions,
    } = in_slack(true).await;

    let click = clicked(&slack, &message, button(&message, "podflow_edit"));
    assert_eq!(answer(&actions, &click).await.status, 200);
    let views = slack.views();
    assert_eq!(views.len(), 1, "views.open took the form");
    let view = &views[0];
    assert_eq!(
        view["blocks"][0]["element"]["initial_value"],
        "Retries Without Tears"
    );
    assert!(view.to_string().contains(SUMMARY), "the summary to edit");
    assert!(bus.published().is_empty(), "opening a form decides nothing");

    // A title left empty: shown in the form, which stays open.
    let empty = submitted(
        view,
        json!({"title": {"title": {"type": "plain_text_input", "value": "  "}}, "summary": {"summary": {"type": "plain_text_input", "value": null}}}),
    );
    let kept_open = answer(&actions, &empty).await;
    let errors: Value = serde_json::from_str(&kept_open.body).expect("JSON");
    assert_eq!(errors["response_action"], "errors");
    assert!(
        errors["errors"]["title"]
            .as_str()
            .is_some_and(|e| e.contains("empty")),
        "{errors}"
    );
    assert!(bus.published().is_empty());

    let filled = submitted(
        view,
        json!({
            "title": {"title": {"type": "plain_text_input", "value": "Retries, Really"}},
            "summary": {"summary": {"type": "plain_text_input", "value": "An edited summary."}}
        }),
    );
    let closed = answer(&actions, &filled).await;
    assert_eq!(
        (closed.status, closed.body.as_str()),
        (200, ""),
        "the form closes"
    );
    let sent = bus.published();
    let approved: EpisodeApproved = sent[0].decode().expect("EpisodeApproved");
    assert_eq!(approved.title, "Retries, Really");
    assert_eq!(approved.summary.as_deref(), Some("An edited summary."));
    // The message the Edit button was on is updated through the URL the form carried.
    let update = slack.responses().last().cloned().expect("an update");
    assert_eq!(update["replace_original"], true);
    assert!(
        update
            .to_string()
            .contains("as “Retries, Really” with an edited summary"),
        "{update}"
    );

    let published = events_of(episode.publisher().handle(&delivery(&sent[0])).await);
    assert_eq!(published[0].detail_type, "EpisodeSummarized");
    let notes = std::fs::read_to_string(
        episode
            .data
            .join(format!("episodes/{EPISODE}/show-notes.md")),
    )
    .expect("show notes");
    assert!(
        notes.contains("# Retries, Really\n") && notes.contains("An edited summary."),
        "{notes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_opens_a_form_of_the_episodes_prompts_and_an_old_proposal_is_refused_after() {
    let InSlack {
        episode,
        slack,
        message,
        bus,
        actions,
    } = in_slack(true).await;

    let click = clicked(&slack, &message, button(&message, "podflow_reject"));
    assert_eq!(answer(&actions, &click).await.status, 200);
    let view = slack.views().pop().expect("the Reject form");
    assert_eq!(view["blocks"][1]["element"]["type"], "checkboxes");
    let mut options: Vec<&str> = view["blocks"][1]["element"]["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["value"].as_str())
        .collect();
    options.sort_unstable();
    assert_eq!(options, ["chapters", "summary", "titles"]);

    // A prompt the episode does not have (a forged option): refused in the form.
    let forged = submitted(
        &view,
        json!({
            "note": {"note": {"type": "plain_text_input", "value": "Titles too long"}},
            "rerun": {"rerun": {"type": "checkboxes", "selected_options": [{"text": {"type": "plain_text", "text": "x"}, "value": "keywords"}]}}
        }),
    );
    let kept_open: Value =
        serde_json::from_str(&answer(&actions, &forged).await.body).expect("JSON");
    assert!(
        kept_open["errors"]["rerun"]
            .as_str()
            .is_some_and(|e| e.contains("keywords")),
        "{kept_open}"
    );

    let filled = submitted(
        &view,
        json!({
            "note": {"note": {"type": "plain_text_input", "value": "Titles too long"}},
            "rerun": {"rerun": {"type": "checkboxes", "selected_options": [{"text": {"type": "plain_text", "text": "titles"}, "value": "titles"}]}}
        }),
    );
    assert_eq!(answer(&actions, &filled).await.body, "");
    let rejected: EpisodeRejected = bus.published()[0].decode().expect("EpisodeRejected");
    assert_eq!(
        (rejected.note.as_str(), rejected.rerun.as_slice()),
        ("Titles too long", &["titles".to_owned()][..])
    );
    assert_eq!(rejected.rejected_by, USER);
    let update = slack.responses().last().cloned().expect("an update");
    assert!(
        update
            .to_string()
            .contains(&format!("Rejected by <@{USER}>: Titles too long")),
        "{update}"
    );
    assert!(
        events_of(
            episode
                .publisher()
                .handle(&delivery(&bus.published()[0]))
                .await
        )
        .is_empty()
    );
    let step = support::step_state(&episode.db, EPISODE, "approve").await;
    assert_eq!(step.status, StepStatus::Running);
    assert!(
        step.note
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("rejected by {USER}")),
        "{step:?}"
    );

    // The titles ran again: proposal 2. A button of proposal 1 is refused with the reason.
    let rerun = episode.complete("titles", "1. Short\n2. Shorter").await;
    let next = events_of(episode.publisher().handle(&rerun).await);
    assert_eq!(next[0].detail_type, "EpisodeProposed");
    let old = clicked(&slack, &message, button(&message, "podflow_approve_1"));
    assert_eq!(answer(&actions, &old).await.status, 200);
    assert_eq!(bus.published().len(), 1);
    let reason = private_reply(&slack);
    assert!(reason.contains("latest is proposal 2"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_bot_token_edit_and_reject_answer_with_the_commands_to_run() {
    let InSlack {
        episode: _episode,
        slack,
        message,
        bus,
        actions,
    } = in_slack(false).await;
    for (id, command) in [
        (
            "podflow_edit",
            format!("podflow approve {EPISODE} --proposal 1 --title-text \"…\" --summary-file"),
        ),
        (
            "podflow_reject",
            format!("podflow reject {EPISODE} --proposal 1 --note"),
        ),
    ] {
        let click = clicked(&slack, &message, button(&message, id));
        assert_eq!(answer(&actions, &click).await.status, 200);
        let text = private_reply(&slack);
        assert!(
            text.contains(&command) && text.contains("bot token"),
            "{text}"
        );
    }
    assert!(slack.views().is_empty());
    assert!(bus.published().is_empty());
    // Approve works without the token.
    let approve = clicked(&slack, &message, button(&message, "podflow_approve_1"));
    assert_eq!(answer(&actions, &approve).await.status, 200);
    assert_eq!(bus.published().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_slack_or_bus_never_holds_the_answer_past_its_deadline() {
    let InSlack {
        episode,
        slack,
        message,
        bus: _bus,
        mut actions,
    } = in_slack(true).await;
    actions.timing = Timing {
        answer_within: Duration::from_millis(1200),
        views_open: Duration::from_millis(400),
        response_url: Duration::from_millis(500),
    };

    // views.open hangs: the answer comes when its time is up, and the person is told.
    slack.delay_views_open(Duration::from_secs(3));
    let click = clicked(&slack, &message, button(&message, "podflow_edit"));
    let started = Instant::now();
    assert_eq!(answer(&actions, &click).await.status, 200);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1300),
        "answered after {took:?}"
    );
    let reply = slack.responses().last().cloned().expect("a reply");
    let text = reply["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("did not answer within 400 ms") && text.contains("podflow approve"),
        "{text}"
    );

    // A trigger Slack no longer honours: its error is said, with the command instead.
    slack.delay_views_open(Duration::ZERO);
    let mut stale = clicked(&slack, &message, button(&message, "podflow_reject"));
    stale["trigger_id"] = json!("398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c");
    assert_eq!(answer(&actions, &stale).await.status, 200);
    let reply = slack.responses().last().cloned().expect("a reply");
    assert!(
        reply["text"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_trigger_id"),
        "{reply}"
    );

    // A bus that hangs, for a request that already waited 800 ms before reaching the
    // handler (a cold start): the answer comes when the rest of the time is up, nothing is
    // half-sent, and the person is told in the reply's own time.
    let hanging = Arc::new(RecordingBus {
        publish_delay: Duration::from_secs(5),
        ..RecordingBus::default()
    });
    let mut slow = episode.actions(&slack, hanging.clone(), true);
    slow.timing = actions.timing;
    let late = clicked(&slack, &message, button(&message, "podflow_approve_1"));
    let (headers, body) = signed(&late, SECRET, now());
    let started = Instant::now();
    let answered = slow
        .answer_after(&headers, &body, now(), Duration::from_millis(800))
        .await;
    let took = started.elapsed();
    assert_eq!(answered.status, 200);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(hanging.published().is_empty());
    let reply = slack.responses().last().cloned().expect("a reply");
    assert!(
        reply["text"]
            .as_str()
            .unwrap_or_default()
            .contains("may not have been sent"),
        "{reply}"
    );

    // The bus refuses: the person is told it was not sent, and nothing claims it was.
    let refusing = Arc::new(RecordingBus::refusing(u32::MAX));
    let mut actions = episode.actions(&slack, refusing, true);
    actions.timing = Timing::default();
    let approve = clicked(&slack, &message, button(&message, "podflow_approve_1"));
    assert_eq!(answer(&actions, &approve).await.status, 200);
    let reply = slack.responses().last().cloned().expect("a reply");
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply["text"]
            .as_str()
            .unwrap_or_default()
            .contains("not sent"),
        "{reply}"
    );
    assert!(
        !slack
            .responses()
            .iter()
            .any(|r| r["replace_original"] == true)
    );
}
