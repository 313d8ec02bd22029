//! Speaker labels from the real model's segments, on episodes whose true turns are known:
//! generated voices (espeak-ng) and real recordings (LibriVox and AN4 speech from Debian's
//! `pocketsphinx-testdata`).
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use podflow_core::{SpeechToText, transcript::Transcript};
use podflow_fakes::diarization::{TrueTurn, speaker_accuracy};
use podflow_speech::engine::{EngineKind, LocalEngine};

const TESTDATA: &str = "/usr/share/pocketsphinx/test/data";

/// One turn of a test episode: who speaks, and the audio.
enum Turn<'a> {
    Voice(&'a str, &'a str),
    File(&'a str, PathBuf),
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("tool runs (see scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The turns one after another with 0.5 s pauses, as 16 kHz WAV, and when each was spoken.
fn episode(dir: &Path, turns: &[Turn]) -> (PathBuf, Vec<TrueTurn>) {
    let gap = dir.join("gap.wav");
    run(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-t", "0.5", "-i"])
        .arg("anullsrc=r=16000:cl=mono")
        .arg(&gap));
    let mut parts = Vec::new();
    let mut truth = Vec::new();
    let mut at = 0.0;
    for (i, turn) in turns.iter().enumerate() {
        let part = dir.join(format!("{i}.wav"));
        let (who, source) = match turn {
            Turn::Voice(voice, text) => {
                let raw = dir.join(format!("{i}.espeak.wav"));
                run(Command::new("espeak-ng")
                    .args(["-v", voice, "-s", "160", "-w"])
                    .arg(&raw)
                    .arg(text));
                (*voice, raw)
            }
            Turn::File(who, path) => (*who, path.clone()),
        };
        let mut ffmpeg = Command::new("ffmpeg");
        ffmpeg.args(["-loglevel", "error", "-y"]);
        if source.extension().is_some_and(|e| e == "raw") {
            ffmpeg.args(["-f", "s16le", "-ar", "16000", "-ac", "1"]);
        }
        run(ffmpeg
            .arg("-i")
            .arg(&source)
            .args(["-ar", "16000", "-ac", "1"])
            .arg(&part));
        let len = podflow_media::duration_seconds(&part).expect("a duration");
        truth.push((at, at + len, who.to_owned()));
        at += len + 0.5;
        parts.push(part);
        parts.push(gap.clone());
    }
    let out = dir.join("episode.wav");
    podflow_fakes::media::concat(&parts, &out);
    (out, truth)
}

async fn transcribe(dir: &Path, audio: &Path) -> Transcript {
    // One converted model for all tests of this binary.
    let models = std::env::temp_dir().join("podflow-test-models");
    // The default engine: what users get.
    LocalEngine::new(EngineKind::default_kind(), None, models)
        .expect("default engine is built in")
        .transcribe(audio, None)
        .await
        .unwrap_or_else(|e| panic!("transcribing {}: {e}", dir.display()))
}

fn librivox() -> Vec<PathBuf> {
    let mut clips: Vec<PathBuf> = std::fs::read_dir(format!("{TESTDATA}/librivox"))
        .expect("pocketsphinx-testdata is installed (scripts/setup.sh --tests)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    clips.sort();
    clips
}

const LINES: [&str; 8] = [
    "Welcome back to the show. Today we are talking about building reliable pipelines.",
    "Thanks for having me. I have been running a weekly show for three years.",
    "What hurts the most? Is it the transcription, or everything after it?",
    "Mostly the retries. One failed prompt and nothing comes out at all.",
    "That is exactly what we want to fix. Every step should run on its own.",
    "And the expensive work, like transcription, should never be done twice.",
    "How do you cut the clips that you share with your listeners each week?",
    "We pick three moments with a strong hook and add subtitles to each one.",
];

#[tokio::test]
async fn two_distinct_generated_voices_are_labelled_by_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let turns: Vec<Turn> = LINES
        .iter()
        .enumerate()
        .map(|(i, text)| Turn::Voice(if i % 2 == 0 { "en-us" } else { "en-us+Annie" }, text))
        .collect();
    let (audio, truth) = episode(dir.path(), &turns);
    let transcript = transcribe(dir.path(), &audio).await;
    let score = speaker_accuracy(&transcript.segments, &truth);
    eprintln!("generated voices: {score:?}");
    // Whisper's segments follow the pauses between turns here, so nearly all speech
    // should be attributed right; 0.9 leaves room for a segment that spans a turn.
    assert!(
        score.accuracy >= 0.9,
        "{score:?}: {:#?}",
        transcript.segments
    );
    assert_eq!(
        transcript
            .segments
            .first()
            .and_then(|s| s.speaker.as_deref()),
        Some("spk_0"),
        "the first voice is spk_0"
    );
}

#[tokio::test]
async fn real_recordings_of_two_people_are_told_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The LibriVox reader, and the AN4 speaker of the `cards` recordings, taking turns.
    let mut turns = Vec::new();
    for (i, clip) in librivox().into_iter().enumerate() {
        turns.push(Turn::File("reader", clip));
        let card = PathBuf::from(format!("{TESTDATA}/cards/00{}.wav", i + 1));
        turns.push(Turn::File("an4", card));
    }
    let (audio, truth) = episode(dir.path(), &turns);
    let transcript = transcribe(dir.path(), &audio).await;
    let score = speaker_accuracy(&transcript.segments, &truth);
    eprintln!("real recordings: {score:?}");
    assert!(
        score.accuracy > score.one_speaker + 0.1,
        "{score:?}: {:#?}",
        transcript.segments
    );
}

#[tokio::test]
async fn one_reader_gets_no_speaker_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let turns: Vec<Turn> = librivox()
        .into_iter()
        .map(|clip| Turn::File("reader", clip))
        .collect();
    let (audio, _) = episode(dir.path(), &turns);
    let transcript = transcribe(dir.path(), &audio).await;
    let labelled: Vec<_> = transcript
        .segments
        .iter()
        .filter_map(|s| s.speaker.as_deref())
        .collect();
    assert!(labelled.is_empty(), "{labelled:?}");
}
