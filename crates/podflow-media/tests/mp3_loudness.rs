//! The podcast MP3's loudness, measured as a player or a feed checker would (ffmpeg's
//! `ebur128`, true peak on): real speech (espeak-ng), once quiet and mono, once hot and
//! stereo, comes out at −19 / −16 LUFS ±1 integrated with true peak ≤ −1 dBTP. Each input
//! is measured first too, so the test would fail if the transcode did nothing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use podflow_core::{Mp3Options, Transcoder};
use podflow_media::{
    Ffmpeg,
    loudness::{self, Loudness},
};

const QUIET_TEXT: &str = "Welcome back to the show. Today we are talking about building \
    reliable pipelines for podcasts. Every episode starts as a recording on someone's laptop, \
    usually a long file with two or three voices, some laughter, and a few long pauses where \
    somebody went to get coffee. The first step is to turn that recording into something a \
    podcast app can play: an MP3 at a sensible bitrate, with the loudness that listeners \
    expect. If one episode is much quieter than the next, people reach for the volume button, \
    and if it is too loud, the peaks distort on cheap earbuds. That is why the pipeline \
    measures the loudness of the whole recording first, and only then applies one gain to all \
    of it.";

const HOT_TEXT: &str = "Thanks for having me. I have been running a weekly show for three \
    years, and the tooling still hurts. Most of the pain is not in the recording itself, it is \
    in everything that comes after it. We export a file, someone listens to it again to check \
    the levels, somebody else writes the show notes, and when a single step fails we start \
    over from the beginning. Last month one episode went out twice as loud as the one before \
    it, and we got a dozen emails about it in a single morning. Listeners notice these things \
    much more than you would think.";

/// What an MP3 may be off its integrated target, in LU.
const TOLERANCE_LU: f64 = 1.0;
/// The MP3's true-peak ceiling.
const MAX_TRUE_PEAK_DBTP: f64 = -1.0;

fn run(command: &mut Command) {
    let out = command
        .output()
        .expect("the tool runs (scripts/setup.sh installs ffmpeg and espeak-ng)");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn speak(voice: &str, text: &str, wav: &Path) {
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", "155", "-w"])
        .arg(wav)
        .arg(text));
}

/// Rewrites `input` into `output` through ffmpeg's audio filter `filter`.
fn filter(input: &Path, filter: &str, output: &Path) {
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(["-af", filter])
        .arg(output));
}

async fn measure(path: &Path) -> Loudness {
    loudness::measure(path, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("measuring {}: {e}", path.display()))
}

/// Transcodes `input` as transcode-watcher does and returns the MP3's path and channels.
async fn to_mp3(input: &Path, bitrate_kbps: u32) -> (PathBuf, u32) {
    let output = input.with_extension("mp3");
    let info = Ffmpeg::default()
        .to_mp3(
            input,
            &output,
            &Mp3Options {
                bitrate_kbps,
                title: "Loudness".into(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("transcoding {}: {e}", input.display()));
    (output, info.channels)
}

fn assert_on_target(what: &str, mp3: Loudness, target_lufs: f64) {
    assert!(
        (mp3.integrated_lufs - target_lufs).abs() <= TOLERANCE_LU,
        "{what}: the MP3 measures {:.1} LUFS, not {target_lufs} ±{TOLERANCE_LU}",
        mp3.integrated_lufs
    );
    assert!(
        mp3.true_peak_dbtp <= MAX_TRUE_PEAK_DBTP,
        "{what}: the MP3's true peak is {:.1} dBTP, over {MAX_TRUE_PEAK_DBTP}",
        mp3.true_peak_dbtp
    );
}

#[tokio::test]
async fn quiet_mono_speech_comes_out_at_minus_19_lufs_under_minus_1_dbtp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("raw.wav");
    speak("en-us", QUIET_TEXT, &raw);
    // A distant microphone: 14 dB down, around -35 LUFS, 22.05 kHz mono as espeak-ng makes it.
    let input = dir.path().join("quiet.wav");
    filter(&raw, "volume=-14dB", &input);
    let before = measure(&input).await;
    assert!(
        before.integrated_lufs < -19.0 - 10.0,
        "the input should be far below the target: {before:?}"
    );

    let (mp3, channels) = to_mp3(&input, 64).await;
    let after = measure(&mp3).await;
    println!("quiet mono: input {before:?}, MP3 {after:?}");
    assert_eq!(channels, 1, "a mono recording stays mono");
    assert_on_target("quiet mono", after, -19.0);
}

#[tokio::test]
async fn hot_stereo_speech_comes_out_at_minus_16_lufs_under_minus_1_dbtp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("raw.wav");
    speak("en-us+Annie", HOT_TEXT, &raw);
    // A loudness-war master: 48 kHz stereo (the right channel a little lower), 12 dB up and
    // brick-wall limited at -1 dBFS sample peak, so nothing clips yet it is around -8.6 LUFS
    // with inter-sample peaks over -1 dBTP.
    let input = dir.path().join("hot.flac");
    filter(
        &raw,
        "aresample=48000,pan=stereo|c0=c0|c1=0.9*c0,volume=12dB,alimiter=limit=0.89:level=false",
        &input,
    );
    let before = measure(&input).await;
    assert!(
        before.integrated_lufs > -16.0 + 5.0,
        "the input should be far above the target: {before:?}"
    );
    assert!(
        before.true_peak_dbtp > MAX_TRUE_PEAK_DBTP,
        "the input's peaks should be over the ceiling: {before:?}"
    );

    let (mp3, channels) = to_mp3(&input, 128).await;
    let after = measure(&mp3).await;
    println!("hot stereo: input {before:?}, MP3 {after:?}");
    assert_eq!(channels, 2, "a stereo recording stays stereo");
    assert_on_target("hot stereo", after, -16.0);
}

#[tokio::test]
async fn silence_and_a_blip_shorter_than_a_gating_block_still_make_an_mp3() {
    // loudnorm measures -inf for both: the transcode falls back to a single pass.
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, source) in [
        ("silence.wav", "anullsrc=r=44100:cl=mono:d=5"),
        ("blip.wav", "sine=frequency=440:duration=0.2"),
    ] {
        let input = dir.path().join(name);
        run(Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(source)
            .arg(&input));
        let (mp3, _) = to_mp3(&input, 64).await;
        let after = measure(&mp3).await;
        println!("{name}: MP3 {after:?}");
        assert!(
            after.true_peak_dbtp <= MAX_TRUE_PEAK_DBTP,
            "{name}: {after:?}"
        );
    }
}
