//! The publisher over real parts — SQLite store, files, ffmpeg — with prompt outcomes
//! written straight into the store and their events delivered out of order and twice; and
//! the notifier against a fake Slack webhook that answers like Slack.

use std::{path::Path, sync::Arc, time::Duration};

use podflow_core::show::Approval;
use podflow_core::{
    BlobStore, Delivery, EpisodeRecord, EpisodeStore, MediaProbe, MessageHandler, Outcome,
    PromptUpdate, StepStatus, TextEngine,
    secret::Secret,
    transcript::{Transcript, TranscriptSegment},
};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::{
    EpisodeApproved, EpisodeProposed, EpisodeRejected, EpisodeSummarized, EpisodeTranscoded,
    EventEnvelope, PromptCompleted, SCHEMA_VERSION, SummaryStatus,
};
use podflow_fakes::slack::FakeSlack;
use podflow_media::Ffmpeg;
use publisher::{
    PublishHandler, approval,
    cost::PriceTable,
    notify::{NotifyHandler, notifier_from},
    slack,
};
use serde_json::Value;

mod support;

use support::{Completion, delivery, events_of};

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
    /// The show layers the publisher gets (none unless a test sets them).
    show: podflow_core::show::ShowLayers,
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
            show: Default::default(),
        }
    }

    fn publisher(&self) -> PublishHandler {
        PublishHandler {
            store: Arc::new(self.db.clone()),
            blobs: self.blobs.clone(),
            clips: Arc::new(Ffmpeg::default()),
            prices: PriceTable::load(None).expect("prices"),
            text_engine: self.text_engine,
            show: self.show.clone(),
        }
    }

    /// The prompt completed with `answer`; returns the event the invoker would publish.
    async fn complete(&self, prompt: &str, answer: &str) -> Delivery {
        Completion {
            episode: EPISODE,
            correlation_id: "corr-1",
            model: MODEL,
            prompt,
            answer,
            tokens: (2000, 300),
        }
        .finish(&self.db, self.blobs.as_ref())
        .await
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
        assert!(events_of(publisher.handle(d).await).is_empty());
    }
    let clips = ep.complete("clips", CLIPS).await;
    let summary = ep.complete("summary", SUMMARY).await;
    assert!(
        events_of(publisher.handle(&summary).await).is_empty(),
        "blog-post still open"
    );
    ep.fail("blog-post").await;

    let mut ids = Vec::new();
    for d in [&clips, &summary, &titles, &clips] {
        for e in events_of(publisher.handle(d).await) {
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
    let r2 = events_of(publisher.handle(&blog).await);
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0].id, format!("{EPISODE}:summary:r2"));
    let r2: EpisodeSummarized = r2[0].decode().expect("decode");
    assert_eq!((r2.status, r2.outputs.len()), (SummaryStatus::Complete, 5));
    assert!(r2.files.iter().any(|f| f.name == "blog-post.md"));
    let blog_md = std::fs::read_to_string(ep.file("blog-post.md")).expect("blog");
    assert!(blog_md.starts_with("---\nengine: llm\n---\n# Retries Without Tears\n\nAn article"));
    assert_eq!(ep.db.work_count("clips", EPISODE).await.expect("count"), 1);
    // Delivered again: the same revision, never a third.
    let again = events_of(publisher.handle(&blog).await);
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
    let published = events_of(publisher.handle(&d).await);
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
    let note = support::step_state(&ep.db, EPISODE, "publish")
        .await
        .note
        .unwrap_or_default();
    assert!(note.contains("chapters answer holds no JSON"), "{note}");
}

fn notifier(ep: &Episode, url: Option<&str>) -> NotifyHandler {
    NotifyHandler {
        store: Arc::new(ep.db.clone()),
        blobs: ep.blobs.clone(),
        notifier: notifier_from(url.map(Secret::new).as_ref()).expect("notifier"),
        links: publisher::links::ShareLinks::direct(Duration::from_secs(3600)),
        show: Default::default(),
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
    assert!(events_of(notify.handle(&again).await).is_empty());
    let mp3 = slack.accepted();
    assert_eq!(mp3.len(), 1);
    assert!(mp3[0].to_string().contains("MP3 ready: weekly-42.m4a"));
    assert!(mp3[0].to_string().contains("file://"));

    // Two revisions, each delivered twice, and again under the new id EventBridge gives an
    // event published a second time (and the MP3 event twice more).
    let publisher = ep.publisher();
    let titles = ep.complete("titles", TITLES).await;
    ep.fail("summary").await;
    let r1 = events_of(publisher.handle(&titles).await);
    let summary = ep
        .complete("summary", &"Long summary sentence. ".repeat(3000))
        .await;
    let r2 = events_of(publisher.handle(&summary).await);
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
        assert!(events_of(notify.handle(&delivery(e)).await).is_empty());
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
    let r1 = events_of(ep.publisher().handle(&d).await);

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
    assert!(events_of(quiet.handle(&delivery(&r1[0])).await).is_empty());
    let note = support::step_state(&ep.db, EPISODE, "notify")
        .await
        .note
        .unwrap_or_default();
    assert!(note.contains("no Slack webhook configured"), "{note}");
    assert!(notifier_from(Some(&Secret::new("hooks.slack.com/x"))).is_err());
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
    let published = events_of(publisher.handle(&d).await);
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
    let published = events_of(ep.publisher().handle(&d).await);
    let summary: EpisodeSummarized = published[0].decode().expect("summary");
    assert!(output_of(&ep, &summary, "chapters").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_llm_every_output_comes_from_the_extractive_engine() {
    let mut ep = Episode::transcribed(&[]).await;
    ep.text_engine = TextEngine::Extractive;
    let d = ep.wake().await;
    let published = events_of(ep.publisher().handle(&d).await);
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

/// What `support/read_feed.py` (feedparser + the standard XML parser) reads from a feed.
fn read_feed(path: &Path) -> Value {
    let python = podflow_core::cache::python_env_program("python3")
        .expect("podflow's Python environment (scripts/setup.sh --tests installs feedparser)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/read_feed.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "read_feed.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// ffprobe's view of an MP3: its tags, chapters and streams.
fn ffprobe(path: &Path) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_format",
            "-show_chapters",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_and_the_tagged_mp3_carry_the_episode_for_podcast_apps() {
    let mut ep =
        Episode::transcribed(&["titles", "summary", "chapters", "clips", "keywords"]).await;
    std::fs::write(
        ep.data.join("podflow.toml"),
        "title = \"Retry Radio\"\nauthor = \"Ana Lima\"\nhosts = [\"Ana Lima\"]\n\
         artwork = \"show/art.png\"\nbase_url = \"https://cdn.example.com/retry radio/\"\n\
         category = \"Technology\"\nemail = \"ana@example.com\"\nlanguage = \"en\"\n",
    )
    .expect("podflow.toml");
    std::fs::create_dir_all(ep.data.join("show")).expect("show dir");
    let art = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=64x64",
        ])
        .args(["-frames:v", "1"])
        .arg(ep.data.join("show/art.png"))
        .status()
        .expect("ffmpeg runs");
    assert!(art.success());
    for (artifact, name, text) in [
        (
            "subtitles_vtt",
            "subtitles.vtt",
            "WEBVTT\n\n00:00.000 --> 00:08.000\nWelcome back to the show.\n",
        ),
        (
            "subtitles_srt",
            "subtitles.srt",
            "1\n00:00:00,000 --> 00:00:08,000\nWelcome back to the show.\n",
        ),
    ] {
        let blob = ep
            .blobs
            .put(
                &format!("episodes/{EPISODE}/{name}"),
                text.as_bytes().to_vec(),
            )
            .await
            .expect("subtitles");
        ep.db
            .put_artifact(EPISODE, artifact, &blob)
            .await
            .expect("artifact");
    }
    // A flag above the file: the show's description.
    ep.show.above.description = Some("Every step retries on its own.".into());
    let publisher = ep.publisher();
    let mut published = Vec::new();
    for (prompt, answer) in [
        ("titles", TITLES),
        ("summary", SUMMARY),
        ("chapters", CHAPTERS),
        ("clips", CLIPS),
        ("keywords", "retries, prompts, transcription"),
    ] {
        let delivery = ep.complete(prompt, answer).await;
        published.extend(events_of(publisher.handle(&delivery).await));
    }
    assert_eq!(published.len(), 1, "one revision");
    let summary: EpisodeSummarized = published[0].decode().expect("summary");
    let names: Vec<&str> = summary.files.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"episode.mp3"), "{names:?}");
    assert!(names.contains(&"podcast-transcript.json"), "{names:?}");

    // The feed, read by feedparser and a plain XML parser.
    let feed = read_feed(&ep.data.join("feed.xml"));
    assert_eq!(feed["bozo"], false, "{feed}");
    assert_eq!(feed["version"], "rss20");
    assert_eq!(feed["title"], "Retry Radio");
    assert_eq!(feed["author"], "Ana Lima");
    assert_eq!(feed["language"], "en");
    assert_eq!(
        feed["image"],
        "https://cdn.example.com/retry%20radio/show/art.png"
    );
    assert_eq!(feed["persons"], serde_json::json!([["host", "Ana Lima"]]));
    let items = feed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{feed}");
    let item = &items[0];
    let base = format!("https://cdn.example.com/retry%20radio/episodes/{EPISODE}");
    assert_eq!(item["title"], "Retries Without Tears");
    assert_eq!(item["episode"], "1");
    assert_eq!(item["duration"], "60");
    assert_eq!(item["published"], serde_json::json!([1970, 1, 1, 0, 0, 0]));
    let tagged = ep.file("episode.mp3");
    let size = std::fs::metadata(&tagged).expect("episode.mp3").len();
    assert_eq!(
        item["enclosures"],
        serde_json::json!([[
            format!("{base}/episode.mp3"),
            size.to_string(),
            "audio/mpeg"
        ]])
    );
    let description = item["description"].as_str().expect("description");
    assert!(
        description.contains("Every step retries on its own."),
        "{description}"
    );
    assert!(
        description.contains("00:00:20 Why prompts fail"),
        "{description}"
    );
    assert!(
        !description.contains("audio.mp3"),
        "no relative links: {description}"
    );
    let transcripts: Vec<(String, String)> = item["transcripts"]
        .as_array()
        .expect("transcripts")
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap_or("").to_owned(),
                t["url"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        transcripts,
        [
            ("text/vtt".to_owned(), format!("{base}/subtitles.vtt")),
            (
                "application/x-subrip".to_owned(),
                format!("{base}/subtitles.srt")
            ),
            (
                "application/json".to_owned(),
                format!("{base}/podcast-transcript.json")
            ),
        ]
    );
    assert_eq!(
        item["chapters"],
        serde_json::json!([{"url": format!("{base}/chapters.json"), "type": "application/json+chapters"}])
    );
    // Clips within 15–120 s become soundbites; the 1-s one was never a clip.
    assert_eq!(
        item["soundbites"],
        serde_json::json!([
            [10.0, 20.0, "One failed prompt and nothing comes out"],
            [30.0, 18.5, "Retry on your own"]
        ])
    );
    assert_eq!(item["persons"], serde_json::json!([["host", "Ana Lima"]]));

    // The Podcasting 2.0 JSON transcript.
    let json: Value = serde_json::from_slice(
        &std::fs::read(ep.file("podcast-transcript.json")).expect("transcript"),
    )
    .expect("json");
    assert_eq!(json["version"], "1.0.0");
    assert_eq!(json["segments"][1]["body"], "Today we talk about retries.");
    assert_eq!(json["segments"][1]["startTime"], 10.0);

    // The tagged MP3, as ffprobe reads it: tags, artwork and chapters with their times.
    let probe = ffprobe(&tagged);
    let tags = &probe["format"]["tags"];
    assert_eq!(tags["title"], "Retries Without Tears", "{probe}");
    assert_eq!(tags["album"], "Retry Radio", "{probe}");
    assert_eq!(tags["artist"], "Ana Lima", "{probe}");
    assert_eq!(tags["track"], "1", "{probe}");
    let chapters: Vec<(f64, f64, &str)> = probe["chapters"]
        .as_array()
        .expect("chapters")
        .iter()
        .map(|c| {
            (
                c["start_time"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(-1.0),
                c["end_time"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(-1.0),
                c["tags"]["title"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        chapters,
        [
            (0.0, 20.0, "Welcome"),
            (20.0, 40.0, "Why prompts fail"),
            (40.0, 60.0, "Never twice"),
        ],
        "{probe}"
    );
    let streams = probe["streams"].as_array().expect("streams");
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "png" && s["disposition"]["attached_pic"] == 1),
        "artwork embedded: {probe}"
    );
    // The transcoded MP3 is left as it was (its hash keys the caches).
    assert!(
        ffprobe(&ep.file("audio.mp3"))["chapters"]
            .as_array()
            .is_none_or(|c| c.is_empty())
    );

    // A second publish with the same outcome tags nothing again and writes the same feed.
    let before = std::fs::read(ep.data.join("feed.xml")).expect("feed");
    let again = ep.wake().await;
    let _ = publisher.handle(&again).await;
    assert_eq!(
        std::fs::read(ep.data.join("feed.xml")).expect("feed"),
        before
    );
}

fn decision_delivery<E: podflow_events::PodflowEvent>(event: &E) -> Delivery {
    delivery(&EventEnvelope::wrap(event))
}

fn approved(proposal: u32, title: &str, summary: Option<&str>, by: &str) -> EpisodeApproved {
    EpisodeApproved {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: EPISODE.into(),
        correlation_id: "corr-1".into(),
        proposal,
        title: title.into(),
        summary: summary.map(str::to_owned),
        approved_by: by.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proposal_is_published_once_approved_with_the_chosen_title_and_edited_summary() {
    let mut ep = Episode::transcribed(&["titles", "summary", "chapters"]).await;
    ep.show.above.approval = Some(Approval::Required);
    ep.show.above.base_url = Some("https://cdn.example.com".into());
    let publisher = ep.publisher();
    let mut emitted = Vec::new();
    for (prompt, answer) in [
        ("titles", TITLES),
        ("summary", SUMMARY),
        ("chapters", CHAPTERS),
    ] {
        let d = ep.complete(prompt, answer).await;
        emitted.extend(events_of(publisher.handle(&d).await));
    }
    // Proposed, not published: no summary event, no feed, no tagged MP3.
    let kinds: Vec<&str> = emitted.iter().map(|e| e.detail_type.as_str()).collect();
    assert_eq!(kinds, ["EpisodeProposed"]);
    let proposed: EpisodeProposed = emitted[0].decode().expect("proposal");
    assert_eq!(proposed.proposal, 1);
    assert_eq!(proposed.titles, ["Retries Without Tears", "Never Twice"]);
    assert_eq!(proposed.summary.as_deref(), Some(SUMMARY));
    assert_eq!(proposed.chapters.len(), 3);
    assert!(!ep.data.join("feed.xml").exists());
    assert!(!ep.file("episode.mp3").exists());
    assert!(!ep.file("episode-summarized.json").exists());
    let store = ep.db.clone();
    let pending = approval::pending(&store, EPISODE, None)
        .await
        .expect("pending");
    assert_eq!(pending.proposal.proposal, 1);

    // Approved with the second title, edited, and an edited summary: one revision.
    let approve = decision_delivery(&approved(
        1,
        "Never Twice, Really",
        Some("An edited summary."),
        "cli",
    ));
    let published = events_of(publisher.handle(&approve).await);
    let kinds: Vec<&str> = published.iter().map(|e| e.detail_type.as_str()).collect();
    assert_eq!(kinds, ["EpisodeSummarized"]);
    let summary: EpisodeSummarized = published[0].decode().expect("summary");
    assert_eq!(summary.revision, 1);
    let notes = std::fs::read_to_string(ep.file("show-notes.md")).expect("notes");
    assert!(notes.contains("# Never Twice, Really\n"), "{notes}");
    assert!(notes.contains("An edited summary."), "{notes}");
    assert!(!notes.contains(SUMMARY), "{notes}");
    let feed = std::fs::read_to_string(ep.data.join("feed.xml")).expect("feed");
    assert!(
        feed.contains("<title>Never Twice, Really</title>"),
        "{feed}"
    );
    assert!(ep.file("episode.mp3").exists());
    let step = support::step_state(&ep.db, EPISODE, "approve").await;
    assert_eq!(step.status, StepStatus::Done);
    assert!(
        step.note
            .as_deref()
            .unwrap_or("")
            .contains("approved by cli"),
        "{step:?}"
    );

    // The same approval again: the same revision, announced under the same id.
    let again = events_of(publisher.handle(&approve).await);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, published[0].id);
    // A different approval of the same proposal: refused, nothing published.
    let other = approved(1, "Another Title", None, "U012AB3CD");
    let refused = approval::pending(&store, EPISODE, Some(1))
        .await
        .expect_err("decided");
    assert!(refused.to_string().contains("already"), "{refused}");
    assert!(events_of(publisher.handle(&decision_delivery(&other)).await).is_empty());
    let notes = std::fs::read_to_string(ep.file("show-notes.md")).expect("notes");
    assert!(notes.contains("# Never Twice, Really\n"), "{notes}");
    // An episode nobody knows: refused with a reason.
    let unknown = approval::pending(&store, "no-such-episode", None)
        .await
        .expect_err("unknown");
    assert!(unknown.to_string().contains("not known"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_proposal_waits_for_its_re_run_prompts_and_the_new_outcome_is_proposed_anew() {
    let mut ep = Episode::transcribed(&["titles", "summary"]).await;
    ep.show.above.approval = Some(Approval::Required);
    let publisher = ep.publisher();
    let mut emitted = Vec::new();
    for (prompt, answer) in [("titles", TITLES), ("summary", SUMMARY)] {
        let d = ep.complete(prompt, answer).await;
        emitted.extend(events_of(publisher.handle(&d).await));
    }
    assert_eq!(emitted.len(), 1);
    let reject = EpisodeRejected {
        schema_version: SCHEMA_VERSION.into(),
        episode_id: EPISODE.into(),
        correlation_id: "corr-1".into(),
        proposal: 1,
        note: "Titles are too long".into(),
        rerun: vec!["titles".into()],
        model: None,
        prompt_version: None,
        rejected_by: "web".into(),
    };
    assert!(events_of(publisher.handle(&decision_delivery(&reject)).await).is_empty());
    let step = support::step_state(&ep.db, EPISODE, "approve").await;
    assert!(
        step.note
            .as_deref()
            .unwrap_or("")
            .contains("rejected by web: Titles are too long"),
        "{step:?}"
    );
    // Approving the rejected proposal is refused.
    let late = approval::pending(&ep.db, EPISODE, Some(1))
        .await
        .expect_err("decided");
    assert!(late.to_string().contains("rejected"), "{late}");

    // The titles prompt ran again (as the dispatcher does for a rejection): proposal 2.
    let rerun = ep.complete("titles", "1. Short\n2. Shorter").await;
    let next = events_of(publisher.handle(&rerun).await);
    assert_eq!(next.len(), 1);
    let proposed: EpisodeProposed = next[0].decode().expect("proposal");
    assert_eq!(proposed.proposal, 2);
    assert_eq!(proposed.titles, ["Short", "Shorter"]);
    // Proposal 1 is no longer the latest.
    let stale = approval::pending(&ep.db, EPISODE, Some(1))
        .await
        .expect_err("stale");
    assert!(
        stale.to_string().contains("latest is proposal 2"),
        "{stale}"
    );
    assert!(
        events_of(
            publisher
                .handle(&decision_delivery(&approved(1, "Old", None, "cli")))
                .await
        )
        .is_empty()
    );
    let ok = events_of(
        publisher
            .handle(&decision_delivery(&approved(2, "Short", None, "cli")))
            .await,
    );
    let kinds: Vec<&str> = ok.iter().map(|e| e.detail_type.as_str()).collect();
    assert_eq!(kinds, ["EpisodeSummarized"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proposal_left_waiting_is_reminded_once_and_never_published_by_the_wait() {
    let mut ep = Episode::transcribed(&["titles"]).await;
    ep.show.above.approval = Some(Approval::Required);
    ep.show.above.approval_reminder_hours = Some(24);
    let publisher = ep.publisher();
    let d = ep.complete("titles", TITLES).await;
    assert_eq!(events_of(publisher.handle(&d).await).len(), 1);
    let show = ep.show.with_file(None);
    let hour = 3_600_000;
    let now = podflow_core::now_ms();
    let due = |at: i64| {
        let db = ep.db.clone();
        let show = show.clone();
        async move { approval::reminders_due(&db, &show, at).await.expect("due") }
    };
    assert!(due(now + hour).await.is_empty(), "not yet");
    let late = due(now + 25 * hour).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].proposal.proposal, 1);
    assert!(late[0].waiting_hours > 24.0);
    // The notifier sends it once, to Slack, and records it.
    let slack = FakeSlack::start(Vec::new()).await.expect("fake slack");
    let notify = notifier(&ep, Some(&slack.url));
    let notifier = notify.notifier.as_deref();
    let send = |at: i64| {
        publisher::notify::send_reminders(&ep.db, ep.blobs.as_ref(), notifier, &ep.show, at)
    };
    assert_eq!(send(now + hour).await.expect("send"), 0);
    assert_eq!(send(now + 25 * hour).await.expect("send"), 1);
    assert_eq!(send(now + 26 * hour).await.expect("send"), 0, "once");
    let posted = slack.accepted();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].to_string().contains("Waiting for approval"),
        "{:?}",
        posted[0]
    );
    assert!(due(now + 48 * hour).await.is_empty(), "reminded once");
    // Waiting published nothing.
    assert!(
        ep.db
            .summary(EPISODE, None)
            .await
            .expect("summary")
            .is_none()
    );
}

/// EventBridge's hourly scheduled event (the recorded shape) makes the notifier remind.
#[tokio::test(flavor = "multi_thread")]
async fn the_hourly_scheduled_event_sends_due_reminders() {
    let mut ep = Episode::transcribed(&["titles"]).await;
    ep.show.above.approval = Some(Approval::Required);
    ep.show.above.approval_reminder_hours = Some(0);
    let publisher = ep.publisher();
    let d = ep.complete("titles", TITLES).await;
    assert_eq!(events_of(publisher.handle(&d).await).len(), 1);
    let slack = FakeSlack::start(Vec::new()).await.expect("fake slack");
    let mut notify = notifier(&ep, Some(&slack.url));
    notify.show = ep.show.clone();
    let tick = podflow_fakes::fixtures::aws_text(
        "eventbridge/rust-runtime_example-eventbridge-schedule.json",
    );
    let delivery = Delivery {
        message_id: "tick".into(),
        body: tick,
        attempt: 1,
        deadline: None,
    };
    assert!(matches!(
        notify.handle(&delivery).await,
        Outcome::Done { .. }
    ));
    assert!(matches!(
        notify.handle(&delivery).await,
        Outcome::Done { .. }
    ));
    let posted = slack.accepted();
    assert_eq!(
        posted.len(),
        1,
        "one reminder, however many ticks: {posted:?}"
    );
}

/// A webhook URL's path is its secret: when Slack cannot be reached — connection refused,
/// no answer in time, a TLS handshake with something that does not speak TLS — nothing the
/// notifier leaves behind carries it: not the step's note, not the error Lambda records for
/// the invocation, not the dead letter, not a log line (at any level).
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_slack_never_reveals_the_webhook_path() {
    const MARKER: &str = "T0SECRET/B0SECRET/xoxMARKER";
    let logs = podflow_fakes::logs::capture();
    let ep = Episode::transcribed(&["titles"]).await;
    // Refused: a port bound, then closed.
    let refused = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr").port()
    };
    // Silent: accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    // Not TLS: answers a TLS hello with plain HTTP.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let plain_port = plain.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = plain.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let audio = ep.db.artifacts(EPISODE).await.expect("a")["audio"].clone();
    for (n, port, url) in [
        (
            1,
            refused,
            format!("http://127.0.0.1:{refused}/services/{MARKER}"),
        ),
        (
            2,
            silent_port,
            format!("http://127.0.0.1:{silent_port}/services/{MARKER}"),
        ),
        (
            3,
            plain_port,
            format!("https://127.0.0.1:{plain_port}/services/{MARKER}"),
        ),
    ] {
        let transcoded = EventEnvelope::wrap(&EpisodeTranscoded {
            schema_version: SCHEMA_VERSION.into(),
            episode_id: EPISODE.into(),
            correlation_id: format!("corr-{n}"),
            audio: audio.clone(),
            duration_seconds: AUDIO_SECONDS,
            bitrate_kbps: 128,
            reused: false,
        });
        let webhook = publisher::notify::SlackWebhook::new(
            Secret::new(url.clone()),
            Duration::from_millis(800),
        )
        .expect("webhook");
        let mut notify = notifier(&ep, None);
        notify.notifier = Some(Arc::new(webhook));
        // As on Lambda: the rule target's first delivery fails the invocation (Lambda
        // retries it), the second and last gives up into the dead-letter queue.
        let bus = Arc::new(podflow_fakes::bus::RecordingBus::default());
        let effects = podflow_lambda::Effects {
            events: bus.clone(),
            jobs: bus.clone(),
            control: Some(bus.clone()),
            max_receives: None,
            record_budget: None,
            metrics: None,
            event_attempts: Some(podflow_lambda::EventAttempts {
                counter: bus.clone(),
                max: 2,
            }),
        };
        let raw = serde_json::to_value(&transcoded).expect("event");
        let lambda_error = podflow_lambda::handle_event(&notify, &effects, raw.clone())
            .await
            .expect_err("Slack is down: the invocation fails")
            .to_string();
        assert!(!lambda_error.contains("SECRET"), "{url}: {lambda_error}");
        assert!(
            lambda_error.contains(&format!("127.0.0.1:{port}")),
            "the error names where: {lambda_error}"
        );
        podflow_lambda::handle_event(&notify, &effects, raw)
            .await
            .expect("the last delivery is dead-lettered");
        let letters = format!("{:?}", bus.letters());
        assert_eq!(bus.letters().len(), 1, "{letters}");
        assert!(!letters.contains("SECRET"), "{url}: {letters}");
        // As in the local queue: the reason a try failed (a retry's, a dead letter's).
        let mut last = delivery(&transcoded);
        last.attempt = 50;
        let said = format!("{:?}", notify.handle(&last).await);
        assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
        assert!(!said.contains("SECRET"), "{url}: {said}");
        let steps = format!("{:?}", ep.db.steps(EPISODE).await.expect("steps"));
        assert!(!steps.contains("SECRET"), "{url}: {steps}");
        let lines = logs.text();
        assert!(
            lines.contains(&format!("127.0.0.1:{port}")),
            "the failure is logged: {lines}"
        );
        assert!(
            !lines.contains("SECRET"),
            "{url}: a log line holds the secret"
        );
    }
    // And the message for a malformed URL does not repeat it.
    let bad = publisher::notify::SlackWebhook::new(
        Secret::new(format!("hooks.slack.com/{MARKER}")),
        Duration::from_secs(1),
    )
    .err()
    .expect("refused");
    assert!(!bad.to_string().contains("SECRET"), "{bad}");
    // Where errors say the webhook is: its host and port, never a user, password or query.
    let odd = publisher::notify::SlackWebhook::new(
        Secret::new("https://u:SECRETPASS@hooks.example.com:8443?token=SECRETTOKEN"),
        Duration::from_secs(1),
    )
    .expect("webhook");
    assert_eq!(
        podflow_core::Notifier::describe(&odd),
        "Slack webhook at hooks.example.com:8443"
    );
}
