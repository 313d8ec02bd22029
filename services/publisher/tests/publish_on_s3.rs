//! The publisher as it runs on Lambda: the episode's files in S3 (moto server), so the MP3
//! is downloaded to scratch space before clips are cut. First without ffmpeg (a function
//! deployed without the ffmpeg layer): everything else is published, clips are listed but
//! not cut, and nothing is remembered; then with ffmpeg the next delivery cuts them once.
use podflow_core::TextEngine;
use std::sync::Arc;

use async_trait::async_trait;
use podflow_aws::s3::S3BlobStore;
use podflow_core::{
    BlobStore, ClipCutter, EpisodeRecord, EpisodeStore, MediaProbe, MessageHandler, Outcome,
    PortError,
    transcript::{Transcript, TranscriptSegment},
};
use podflow_embedded::Db;
use podflow_events::EpisodeSummarized;
use podflow_fakes::moto::MotoServer;
use podflow_media::Ffmpeg;
use publisher::{PublishHandler, cost::PriceTable};
use serde_json::Value;

mod support;

const BUCKET: &str = "podflow-publish";
const EPISODE: &str = "weekly-43-0123456789ab";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// What the Ffmpeg adapter says on a function without the layer.
struct NoFfmpeg;

#[async_trait]
impl ClipCutter for NoFfmpeg {
    async fn cut(
        &self,
        _: &std::path::Path,
        _: f64,
        _: f64,
        _: f64,
        _: &std::path::Path,
    ) -> Result<(), PortError> {
        Err(PortError::setup(
            "cannot run ffmpeg (No such file or directory (os error 2))",
        ))
    }
    async fn join(&self, _: &[std::path::PathBuf], _: &std::path::Path) -> Result<(), PortError> {
        Err(PortError::setup(
            "cannot run ffmpeg (No such file or directory (os error 2))",
        ))
    }
}

fn summary_of(outcome: Outcome) -> EpisodeSummarized {
    let Outcome::Done { emit, .. } = outcome else {
        panic!("expected Done, got {outcome:?}");
    };
    assert_eq!(emit.len(), 1, "one EpisodeSummarized");
    serde_json::from_value(emit[0].detail.clone()).expect("EpisodeSummarized")
}

async fn clips_json(blobs: &S3BlobStore, summary: &EpisodeSummarized) -> Value {
    let file = summary
        .files
        .iter()
        .find(|f| f.name == "clips.json")
        .expect("clips.json published");
    serde_json::from_slice(&blobs.get(&file.file).await.expect("get")).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn clips_are_cut_from_s3_audio_and_a_missing_ffmpeg_is_not_remembered() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    podflow_fakes::moto::create_bucket(&config, BUCKET).await;
    let blobs = Arc::new(S3BlobStore::new(&config, BUCKET, true));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");

    let tone = dir.path().join("tone.mp3");
    support::tone_mp3(&tone, 60.0);
    let audio = podflow_media::store_file(
        blobs.as_ref(),
        &format!("episodes/{EPISODE}/audio.mp3"),
        &tone,
    )
    .await
    .expect("audio");
    assert!(blobs.local_path(&audio).is_none(), "S3 audio is not local");
    let segments = (0..6)
        .map(|i| TranscriptSegment {
            start: f64::from(i) * 10.0,
            end: f64::from(i) * 10.0 + 8.0,
            speaker: None,
            text: format!("Sentence number {i} of the show."),
            words: Vec::new(),
        })
        .collect();
    let transcript = Transcript {
        language: "en".into(),
        duration_seconds: 60.0,
        engine: "amazon-transcribe".into(),
        model: "en-US".into(),
        segments,
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
            correlation_id: "corr-43".into(),
            original_name: "weekly-43.m4a".into(),
            source: audio,
            created_at_ms: 0,
        },
        &transcript,
        &["clips"],
        MODEL,
    )
    .await;
    let answer = r#"{"clips": [{"start": 10, "end": 30, "hook": "First"},
                                {"start": 35, "end": 50, "hook": "Second"}]}"#;
    let delivery = support::Completion {
        episode: EPISODE,
        correlation_id: "corr-43",
        model: MODEL,
        prompt: "clips",
        answer,
        tokens: (1500, 120),
    }
    .finish(&db, blobs.as_ref())
    .await;
    let handler = |clips: Arc<dyn ClipCutter>, text_engine| PublishHandler {
        store: Arc::new(db.clone()),
        blobs: blobs.clone(),
        clips,
        prices: PriceTable::load(None).expect("prices"),
        text_engine,
        show: Default::default(),
    };

    // Without ffmpeg: published, clips listed without audio, the reason noted, not cached.
    let first = summary_of(
        handler(Arc::new(NoFfmpeg), TextEngine::Llm)
            .handle(&delivery)
            .await,
    );
    assert_eq!(first.revision, 1);
    let doc = clips_json(&blobs, &first).await;
    let listed = doc["clips"].as_array().expect("clips");
    assert_eq!(listed.len(), 2, "{doc}");
    assert!(listed.iter().all(|c| c.get("audio").is_none()), "{doc}");
    assert!(
        !first
            .files
            .iter()
            .any(|f| f.name.starts_with("clips/") || f.name == "trailer.mp3")
    );
    let note = support::step_state(&db, EPISODE, "publish")
        .await
        .note
        .expect("publish note");
    assert!(note.contains("clip 1 not cut: cannot run ffmpeg"), "{note}");
    // No podflow.toml in the bucket and no base URL: no feed, and the note says what to set.
    assert!(note.contains("feed.xml not written: no base URL"), "{note}");
    assert_eq!(db.work_count("clips", EPISODE).await.expect("count"), 0);

    // With ffmpeg: the same event again cuts the clips from the downloaded MP3: revision 2.
    let second = summary_of(
        handler(Arc::new(Ffmpeg::default()), TextEngine::Llm)
            .handle(&delivery)
            .await,
    );
    assert_eq!(second.revision, 2);
    let doc = clips_json(&blobs, &second).await;
    assert_eq!(doc["clips"][0]["audio"], "clips/1.mp3", "{doc}");
    assert_eq!(doc["trailer"], "trailer.mp3", "{doc}");
    for (name, seconds) in [("clips/1.mp3", 20.0), ("clips/2.mp3", 15.0)] {
        let file = second
            .files
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} published"));
        assert_eq!(file.file.key, format!("episodes/{EPISODE}/{name}"));
        let local = dir.path().join("fetched.mp3");
        std::fs::write(&local, blobs.get(&file.file).await.expect("get")).expect("write");
        let got = Ffmpeg::default()
            .probe(&local)
            .await
            .expect("probe")
            .duration_seconds;
        assert!((got - seconds).abs() < 0.2, "{name}: {got} s");
    }
    assert_eq!(db.work_count("clips", EPISODE).await.expect("count"), 1);

    // Delivered once more: the same revision, nothing cut again.
    let third = summary_of(
        handler(Arc::new(NoFfmpeg), TextEngine::Llm)
            .handle(&delivery)
            .await,
    );
    assert_eq!(third.revision, 2);
    assert_eq!(db.work_count("clips", EPISODE).await.expect("count"), 1);

    // The show configured in the bucket: the next publish writes feed.xml there, with the
    // MP3 tagged from a download (no local path on S3).
    blobs
        .put(
            "podflow.toml",
            b"title = \"On S3\"\nbase_url = \"https://cdn.example.com\"\n".to_vec(),
        )
        .await
        .expect("podflow.toml");

    // With the stack's TextEngine set to extractive, the publisher writes every output no
    // prompt gave into the bucket, marked as the extractive engine's: revision 3.
    let fourth = summary_of(
        handler(Arc::new(NoFfmpeg), TextEngine::Extractive)
            .handle(&delivery)
            .await,
    );
    assert_eq!(fourth.revision, 3);
    for output in publisher::extractive::OUTPUTS
        .iter()
        .filter(|o| **o != "clips")
    {
        let out = fourth
            .outputs
            .iter()
            .find(|o| o.prompt_id == *output)
            .unwrap_or_else(|| panic!("no {output}"));
        assert_eq!(out.model, "extractive", "{output}");
        assert!(
            out.output
                .key
                .starts_with(&format!("episodes/{EPISODE}/extractive/"))
        );
        assert!(
            !blobs
                .get(&out.output)
                .await
                .expect("in the bucket")
                .is_empty()
        );
    }
    let notes = fourth
        .files
        .iter()
        .find(|f| f.name == "show-notes.md")
        .expect("show notes");
    let notes = String::from_utf8(blobs.get(&notes.file).await.expect("get")).expect("utf-8");
    assert!(
        notes.starts_with("---\nengine: extractive\n---\n"),
        "{notes}"
    );
    let doc = clips_json(&blobs, &fourth).await;
    assert_eq!(doc["engine"], "llm", "the clips prompt answered: {doc}");
    let feed = blobs
        .digest("feed.xml")
        .await
        .expect("feed.xml in the bucket");
    let feed = String::from_utf8(blobs.get(&feed).await.expect("get")).expect("utf-8");
    assert!(feed.contains("<title>On S3</title>"), "{feed}");
    let tagged = fourth
        .files
        .iter()
        .find(|f| f.name == "episode.mp3")
        .expect("tagged MP3");
    assert!(
        feed.contains(&format!(
            "<enclosure url=\"https://cdn.example.com/episodes/{EPISODE}/episode.mp3\" length=\"{}\" type=\"audio/mpeg\"",
            tagged.file.size
        )),
        "{feed}"
    );
    let local = dir.path().join("tagged.mp3");
    std::fs::write(&local, blobs.get(&tagged.file).await.expect("get")).expect("write");
    let tag = id3::Tag::read_from_path(&local).expect("ID3 tag");
    assert_eq!(id3::TagLike::album(&tag), Some("On S3"));
    assert!(
        tag.chapters().count() >= 1,
        "the extractive chapters are in the MP3"
    );
}
