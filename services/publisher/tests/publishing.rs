//! The publisher over real parts — SQLite store, files, ffmpeg — with prompt outcomes
//! written straight into the store and their events delivered out of order and twice; and
//! the notifier against a fake Slack webhook that answers like Slack.

use std::{path::Path, sync::Arc, time::Duration};

use podflow_core::{
    BlobStore, Delivery, EpisodeRecord, EpisodeStore, MediaProbe, MessageHandler, Outcome,
    PromptUpdate, StepStatus, TextEngine,
    transcript::{Transcript, TranscriptSegment},
};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::{
    EpisodeSummarized, EpisodeTranscoded, EventEnvelope, PromptCompleted, SCHEMA_VERSION,
    SummaryStatus,
};
use podflow_fakes::slack::FakeSlack;
use podflow_media::Ffmpeg;
use publisher::{
    PublishHandler,
    cost::PriceTable,
    notify::{NotifyHandler, notifier_from},
    slack,
};
use serde_json::Value;

mod support;

const EPISODE: &str = "weekly-42-0123456789ab";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const AUDIO_SECONDS: f64 = 60.0;

struct Episode {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    db: Db,
    blobs: Arc<FileBlobStore>,
    /// `Llm` unless a test says otherwise: most tests here are about LLM answers.
    text_engine: TextEngine,
}

impl Episode {
    /// An episode whose MP3 and transcript exist and whose prompts are planned.
    async fn transcribed(prompts: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_path_buf();
        let db = Db::open(&data).expect("db");
        let blobs = Arc::new(FileBlobStore::new(&data));
        let mp3 = data.join("tone.mp3");
        support::tone_mp3(&mp3, AUDIO_SECONDS);
        let audio = podflow_media::store_file(
            blobs.as_ref(),
            &format!("episodes/{EPISODE}/audio.mp3"),
            &mp3,
        )
        .await
        .expect("audio");
        let seg = |start: f64, text: &str| TranscriptSegment {
            start,
            end: start + 8.0,
            speaker: None,
            text: text.into(),
            words: Vec::new(),
        };
        let transcript = Transcript {
            language: "en".into(),
            duration_seconds: AUDIO_SECONDS,
            engine: "whisper.cpp".into(),
            model: "tiny.en".into(),
            segments: vec![
                seg(0.0, "Welcome back to the show."),
                seg(10.0, "Today we talk about retries."),
                seg(20.0, "One failed prompt and nothing comes out."),
                seg(30.0, "So every step retries on its own."),
                seg(40.0, "And transcription is never done twice."),
                seg(50.0, "Thanks for listening."),
            ],
        };
        let transcript = blobs
            .put(
                &format!("episodes/{EPISODE}/transcript.json"),
                serde_json::to_vec(&transcript).expect("json"),
            )
            .await
            .expect("transcript");
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
            prompts,
            MODEL,
        )
        .await;
        Self {
            _dir: dir,
            data,
            db,
            blobs,
            text_engine: TextEngine::Llm,
        }
    }

    fn publisher(&self) -> PublishHandler {
        PublishHandler {
            store: Arc::new(self.db.clone()),
            blobs: self.blobs.clone(),
            clips: Arc::new(Ffmpeg::default()),
            prices: PriceTable::load(None).expect("prices"),
            text_engine: self.text_engine,
        }
    }

    /// The prompt completed with `answer`; returns the event the invoker would publish.
    async fn complete(&self, prompt: &str, answer: &str) -> Delivery {
        let output = self
            .blobs
            .put(
                &format!("episodes/{EPISODE}/prompts/{prompt}.md"),
                answer.as_bytes().to_vec(),
            )
            .await
            .expect("output");
        self.db
            .update_prompt(
                EPISODE,
                prompt,
                &PromptUpdate::Completed {
                    attempt: 1,
                    output: output.clone(),
                    input_tokens: 2000,
                    output_tokens: 300,
                },
            )
            .await
            .expect("update");
        let event = PromptCompleted {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: EPISODE.into(),
            correlation_id: "corr-1".into(),
            prompt_id: prompt.into(),
            prompt_version: 1,
            model: MODEL.into(),
            output,
            input_tokens: 2000,
            output_tokens: 300,
            attempts: 1,
        };
        delivery(&EventEnvelope::wrap(&event))
    }

    /// An event about the episode that changes nothing (as a duplicate delivery would).
    async fn wake(&self) -> Delivery {
        let output = self
            .blobs
            .put(
                &format!("episodes/{EPISODE}/prompts/none.md"),
                b"-".to_vec(),
            )
            .await
            .expect("output");
        let event = PromptCompleted {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: EPISODE.into(),
            correlation_id: "corr-1".into(),
            prompt_id: "none".into(),
            prompt_version: 1,
            model: MODEL.into(),
            output,
            input_tokens: 0,
            output_tokens: 0,
            attempts: 1,
        };
        delivery(&EventEnvelope::wrap(&event))
    }

    async fn fail(&self, prompt: &str) {
        self.db
            .update_prompt(
                EPISODE,
                prompt,
                &PromptUpdate::Failed {
                    attempt: 3,
                    error: "ThrottlingException after 3 attempts".into(),
                },
            )
            .await
            .expect("fail");
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.data.join(format!("episodes/{EPISODE}/{name}"))
    }
}

fn delivery(envelope: &EventEnvelope) -> Delivery {
    Delivery {
        message_id: envelope.id.clone(),
        body: serde_json::to_string(envelope).expect("json"),
        attempt: 1,
        deadline: None,
    }
}

/// The summaries an outcome publishes.
fn summaries(outcome: Outcome) -> Vec<EventEnvelope> {
    match outcome {
        Outcome::Done { emit, .. } => emit,
        other => panic!("expected Done, got {other:?}"),
    }
}

const TITLES: &str = "1. Retries Without Tears\n2. Never Twice";
const SUMMARY: &str = "We talk about retries. Every step retries on its own. Then more.";
const CHAPTERS: &str = "```json\n{\"chapters\": [{\"startTime\": 0, \"title\": \"Welcome\"}, {\"startTime\": \"00:00:20\", \"title\": \"Why prompts fail\"}, {\"startTime\": 95, \"title\": \"Past the end\"}, {\"startTime\": 40, \"title\": \"Never twice\"}]}\n```";
const CLIPS: &str = r#"{"clips": [
    {"start": 10, "end": 30, "hook": "One failed prompt and nothing comes out"},
    {"start": 30, "end": 48.5, "hook": "Retry on your own"},
    {"start": 50, "end": 75, "hook": "Past the end of the audio"},
    {"start": 40, "end": 41, "hook": "Too short"}
]}"#;

fn probe_seconds(path: &Path) -> f64 {
    let rt = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| rt.block_on(Ffmpeg::default().probe(path)))
        .expect("probe")
        .duration_seconds
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_in_out_of_order_and_twice_then_a_replay_gives_revision_two() {
    let ep = Episode::transcribed(&["titles", "summary", "chapters", "clips", "blog-post"]).await;
    let publisher = ep.publisher();

    // Completions arrive out of order, some twice; nothing is published while one is open.
    let chapters = ep.complete("chapters", CHAPTERS).await;
    let titles = ep.complete("titles", TITLES).await;
    for d in [&chapters, &titles, &chapters] {
        assert!(summaries(publisher.handle(d).await).is_empty());
    }
    let clips = ep.complete("clips", CLIPS).await;
    let summary = ep.complete("summary", SUMMARY).await;
    assert!(
        summaries(publisher.handle(&summary).await).is_empty(),
        "blog-post still open"
    );
    ep.fail("blog-post").await;

    let mut ids = Vec::new();
    for d in [&clips, &summary, &titles, &clips] {
        for e in summaries(publisher.handle(d).await) {
            ids.push(e.id);
        }
    }
    ids.dedup();
    assert_eq!(
        ids,
        [format!("{EPISODE}:summary:r1")],
        "one revision for one outcome"
    );
    let r1: EpisodeSummarized = ep
        .db
        .summary(EPISODE, Some(1))
        .await
        .expect("summary")
        .expect("r1")
        .decode()
        .expect("decode");
    assert_eq!(r1.status, SummaryStatus::Partial);
    assert_eq!(r1.failed_prompts.len(), 1);
    assert_eq!(r1.outputs.len(), 4);
    assert!(!ep.file("blog-post.md").exists());

    // The files.
    let notes = std::fs::read_to_string(ep.file("show-notes.md")).expect("show notes");
    assert!(
        notes.starts_with("---\nengine: llm\n---\n# Retries Without Tears\n"),
        "{notes}"
    );
    assert!(notes.contains("We talk about retries."));
    assert!(
        notes.contains("- 00:00:20 Why prompts fail\n- 00:00:40 Never twice\n"),
        "{notes}"
    );
    assert!(notes.contains("[Audio (MP3)](audio.mp3)"));
    assert!(
        !notes.contains("Blog post"),
        "no link to a file that does not exist"
    );

    let chapters_json: Value =
        serde_json::from_slice(&std::fs::read(ep.file("chapters.json")).expect("chapters"))
            .expect("json");
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/podcasting-chapters.schema.json"))
            .expect("schema");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    assert!(validator.is_valid(&chapters_json), "{chapters_json}");
    assert_eq!(chapters_json["version"], "1.2.0");
    assert_eq!(
        chapters_json["chapters"].as_array().map(Vec::len),
        Some(3),
        "95 s dropped"
    );

    let clips_json: Value =
        serde_json::from_slice(&std::fs::read(ep.file("clips.json")).expect("clips"))
            .expect("json");
    assert_eq!(clips_json["clips"].as_array().map(Vec::len), Some(2));
    let skipped: Vec<u64> = clips_json["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["suggestion"].as_u64())
        .collect();
    assert_eq!(skipped, [3, 4]);
    for (n, want) in [(1, 20.0), (2, 18.5)] {
        let got = probe_seconds(&ep.file(&format!("clips/{n}.mp3")));
        assert!(
            (got - want).abs() < 0.15,
            "clip {n}: {got} s, want {want} s"
        );
        let srt = std::fs::read_to_string(ep.file(&format!("clips/{n}.srt"))).expect("srt");
        let cues = podflow_core::subtitles::parse_srt(&srt).expect("srt parses");
        assert!(!cues.is_empty() && cues.iter().all(|c| c.start >= 0.0 && c.end <= want + 0.01));
    }
    // The trailer: the first 15 s of each clip (both are longer).
    let trailer = probe_seconds(&ep.file("trailer.mp3"));
    assert!((trailer - 30.0).abs() < 0.3, "trailer {trailer} s");

    let stored: Value = serde_json::from_slice(
        &std::fs::read(ep.file("episode-summarized.json")).expect("summary file"),
    )
    .expect("json");
    let schema = podflow_events::schema::validator("EpisodeSummarized").expect("schema");
    assert!(schema.is_valid(&stored["detail"]), "{}", stored["detail"]);
    let cost = r1.cost.expect("cost block");
    assert_eq!(cost.audio_minutes, 1.0);
    assert_eq!(
        cost.models[0].input_tokens, 8000,
        "four completed prompts × 2000"
    );
    assert_eq!(cost.models[0].usd, Some(0.0035));

    // The replayed prompt succeeds: revision 2, complete, outputs the union; clips not recut.
    let blog = ep.complete("blog-post", "An article about retries.").await;
    let r2 = summaries(publisher.handle(&blog).await);
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0].id, format!("{EPISODE}:summary:r2"));
    let r2: EpisodeSummarized = r2[0].decode().expect("decode");
    assert_eq!((r2.status, r2.outputs.len()), (SummaryStatus::Complete, 5));
    assert!(r2.files.iter().any(|f| f.name == "blog-post.md"));
    let blog_md = std::fs::read_to_string(ep.file("blog-post.md")).expect("blog");
    assert!(blog_md.starts_with("---\nengine: llm\n---\n# Retries Without Tears\n\nAn article"));
    assert_eq!(ep.db.work_count("clips", EPISODE).await.expect("count"), 1);
    // Delivered again: the same revision, never a third.
    let again = summaries(publisher.handle(&blog).await);
    assert_eq!(again[0].id, format!("{EPISODE}:summary:r2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_chapter_and_clip_answers_are_noted_and_everything_else_is_published() {
    let ep = Episode::transcribed(&["chapters", "clips", "summary"]).await;
    let publisher = ep.publisher();
    ep.complete("chapters", "Sorry, I cannot help with that.")
        .await;
    ep.complete(
        "clips",
        "{\"clips\": [{\"start\": 500, \"end\": 530, \"hook\": \"x\"}]}",
    )
    .await;
    let d = ep.complete("summary", SUMMARY).await;
    let published = summaries(publisher.handle(&d).await);
    assert_eq!(published.len(), 1);
    assert!(!ep.file("chapters.json").exists());
    assert!(ep.file("show-notes.md").exists());
    let clips: Value =
        serde_json::from_slice(&std::fs::read(ep.file("clips.json")).expect("clips"))
            .expect("json");
    assert_eq!(clips["clips"].as_array().map(Vec::len), Some(0));
    assert!(
        clips["skipped"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("outside the audio")
    );
    assert!(!ep.file("trailer.mp3").exists());
    let steps = ep.db.steps(EPISODE).await.expect("steps");
    let note = steps
        .iter()
        .find(|s| s.step == "publish")
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    assert!(note.contains("chapters answer holds no JSON"), "{note}");
}

fn notifier(ep: &Episode, url: Option<&str>) -> NotifyHandler {
    NotifyHandler {
        store: Arc::new(ep.db.clone()),
        blobs: ep.blobs.clone(),
        notifier: notifier_from(url).expect("notifier"),
        links: publisher::links::ShareLinks::direct(Duration::from_secs(3600)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_gets_the_mp3_at_once_and_one_valid_message_per_revision() {
    let ep = Episode::transcribed(&["titles", "summary"]).await;
    // Slack rate-limits the first message.
    let slack = FakeSlack::start(vec![(429, "rate_limited", Some(2))])
        .await
        .expect("fake slack");
    let notify = notifier(&ep, Some(&slack.url));

    let audio = ep.db.artifacts(EPISODE).await.expect("a")["audio"].clone();
    let transcoded = EventEnvelope::wrap(&EpisodeTranscoded {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: EPISODE.into(),
        correlation_id: "corr-1".into(),
        audio,
        duration_seconds: AUDIO_SECONDS,
        bitrate_kbps: 128,
        reused: false,
    });
    match notify.handle(&delivery(&transcoded)).await {
        Outcome::Retry { delay, reason } => {
            assert!(
                delay >= Duration::from_secs(2),
                "Retry-After honoured: {delay:?}"
            );
            assert!(reason.contains("429"), "{reason}");
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    let mut again = delivery(&transcoded);
    again.attempt = 2;
    assert!(summaries(notify.handle(&again).await).is_empty());
    let mp3 = slack.accepted();
    assert_eq!(mp3.len(), 1);
    assert!(mp3[0].to_string().contains("MP3 ready: weekly-42.m4a"));
    assert!(mp3[0].to_string().contains("file://"));

    // Two revisions, each delivered twice, and again under the new id EventBridge gives an
    // event published a second time (and the MP3 event twice more).
    let publisher = ep.publisher();
    let titles = ep.complete("titles", TITLES).await;
    ep.fail("summary").await;
    let r1 = summaries(publisher.handle(&titles).await);
    let summary = ep
        .complete("summary", &"Long summary sentence. ".repeat(3000))
        .await;
    let r2 = summaries(publisher.handle(&summary).await);
    let republished = |e: &EventEnvelope| EventEnvelope {
        id: format!("{}-republished", e.id),
        ..e.clone()
    };
    let deliveries: Vec<EventEnvelope> = [&r1, &r1, &r2, &r2]
        .into_iter()
        .flatten()
        .cloned()
        .chain(r1.iter().chain(&r2).map(republished))
        .chain([transcoded.clone(), republished(&transcoded)])
        .collect();
    for e in &deliveries {
        assert!(summaries(notify.handle(&delivery(e)).await).is_empty());
    }
    let accepted = slack.accepted();
    assert_eq!(accepted.len(), 3, "MP3 + one per revision");
    assert_eq!(slack.requests(), 4, "the 429 and three messages");
    for m in &accepted {
        assert_eq!(slack::problems(m), Vec::<String>::new());
    }
    let first = accepted[1].to_string();
    assert!(first.contains("Retries Without Tears") && first.contains("revision 1"));
    assert!(first.contains("Failed") && first.contains("summary v1"));
    let second = accepted[2].to_string();
    assert!(second.contains("revision 2") && !second.contains("Failed"));
    assert!(
        second.len() < 12_000,
        "a long summary is cut, not posted whole"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_webhook_dead_letters_with_a_reason_and_none_is_only_a_note() {
    let ep = Episode::transcribed(&["titles"]).await;
    let d = ep.complete("titles", TITLES).await;
    let r1 = summaries(ep.publisher().handle(&d).await);

    let slack = FakeSlack::start(vec![(404, "no_service", None)])
        .await
        .expect("fake slack");
    match notifier(&ep, Some(&slack.url))
        .handle(&delivery(&r1[0]))
        .await
    {
        Outcome::DeadLetter { reason, .. } => {
            assert!(reason.contains("no_service"), "{reason}");
            assert!(reason.contains("PODFLOW_SLACK_WEBHOOK_URL"), "{reason}");
            assert!(
                !reason.contains("XXXXXXXX"),
                "the webhook's secret path is not logged"
            );
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let failed = ep.db.steps(EPISODE).await.expect("steps");
    assert!(
        failed
            .iter()
            .any(|s| s.step == "notify" && s.status == StepStatus::Failed)
    );

    let quiet = notifier(&ep, None);
    assert!(summaries(quiet.handle(&delivery(&r1[0])).await).is_empty());
    let steps = ep.db.steps(EPISODE).await.expect("steps");
    let note = steps
        .iter()
        .find(|s| s.step == "notify")
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    assert!(note.contains("no Slack webhook configured"), "{note}");
    assert!(notifier_from(Some("hooks.slack.com/x")).is_err());
}

/// The text of one of the summary's outputs, and the model that wrote it.
async fn output_of(
    ep: &Episode,
    summary: &EpisodeSummarized,
    prompt: &str,
) -> Option<(String, String)> {
    let out = summary.outputs.iter().find(|o| o.prompt_id == prompt)?;
    let bytes = ep.blobs.get(&out.output).await.expect("output");
    Some((
        String::from_utf8_lossy(&bytes).into_owned(),
        out.model.clone(),
    ))
}

fn read(ep: &Episode, name: &str) -> String {
    std::fs::read_to_string(ep.file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_prompt_is_filled_in_by_the_extractive_engine_and_says_so() {
    let mut ep = Episode::transcribed(&["summary", "chapters", "titles"]).await;
    ep.text_engine = TextEngine::Auto;
    let publisher = ep.publisher();
    ep.complete("titles", TITLES).await;
    ep.fail("chapters").await;
    let d = ep.complete("summary", SUMMARY).await;
    let published = summaries(publisher.handle(&d).await);
    let summary: EpisodeSummarized = published[0].decode().expect("summary");
    // The prompt still failed (its job waits in the DLQ for a replay)...
    assert_eq!(summary.status, SummaryStatus::Partial);
    assert_eq!(summary.failed_prompts.len(), 1);
    assert_eq!(summary.failed_prompts[0].prompt_id, "chapters");
    // ...but its output is there, from the extractive engine, and marked as such.
    let (chapters, model) = output_of(&ep, &summary, "chapters")
        .await
        .expect("chapters output");
    assert_eq!(model, "extractive");
    assert!(chapters.contains("startTime"), "{chapters}");
    let (text, model) = output_of(&ep, &summary, "summary").await.expect("summary");
    assert_eq!((text.as_str(), model.as_str()), (SUMMARY, MODEL));
    let doc: Value = serde_json::from_str(&read(&ep, "chapters.json")).expect("json");
    assert_eq!(doc["engine"], "extractive");
    assert_eq!(
        doc["title"], "Retries Without Tears",
        "the LLM's title stays"
    );
    let notes = read(&ep, "show-notes.md");
    assert!(
        notes.starts_with(
            "---\nengine: mixed\nextractive: [chapters]\n---\n# Retries Without Tears\n"
        ),
        "{notes}"
    );
    // Only failed prompts are filled in: no blog post was asked for.
    assert!(!ep.file("blog-post.md").exists());

    // With the LLM alone, the failed output is left out.
    ep.text_engine = TextEngine::Llm;
    let d = ep.complete("summary", SUMMARY).await;
    let published = summaries(ep.publisher().handle(&d).await);
    let summary: EpisodeSummarized = published[0].decode().expect("summary");
    assert!(output_of(&ep, &summary, "chapters").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_llm_every_output_comes_from_the_extractive_engine() {
    let mut ep = Episode::transcribed(&[]).await;
    ep.text_engine = TextEngine::Extractive;
    let d = ep.wake().await;
    let published = summaries(ep.publisher().handle(&d).await);
    let summary: EpisodeSummarized = published[0].decode().expect("summary");
    assert_eq!(summary.status, SummaryStatus::Complete);
    for output in publisher::extractive::OUTPUTS {
        let (text, model) = output_of(&ep, &summary, output)
            .await
            .unwrap_or_else(|| panic!("no {output}"));
        assert_eq!(model, "extractive", "{output}");
        assert!(!text.trim().is_empty(), "{output}");
    }
    for file in ["show-notes.md", "blog-post.md", "social.md"] {
        assert!(
            read(&ep, file).starts_with("---\nengine: extractive\n---\n"),
            "{file}"
        );
    }
    let chapters: Value = serde_json::from_str(&read(&ep, "chapters.json")).expect("json");
    assert_eq!(chapters["engine"], "extractive");
    let clips: Value = serde_json::from_str(&read(&ep, "clips.json")).expect("json");
    assert_eq!(clips["engine"], "extractive");
    let notes = read(&ep, "show-notes.md");
    for section in ["## Chapters", "### Topics", "## Keywords"] {
        assert!(notes.contains(section), "{section}: {notes}");
    }
}
