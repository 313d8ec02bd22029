//! File names that ffmpeg would read as something else: `-i.mp3` as an option, `concat:a|b`
//! and `subfile,,…:x` as protocols (reading other files), a newline, template markers, a
//! 255-byte name. Given as relative paths (as a user types them), each goes through every
//! place a path reaches ffmpeg or ffprobe — the probe, the length, the decoded stream, the
//! loudness measurement and the MP3 — and is read as the file it names. Decoys named as the
//! protocols would read them hold audio of another length, so reading them shows.
//!
//! One test in this file: it changes the process's working directory.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use podflow_core::{MediaProbe, Mp3Options, Transcoder};
use podflow_media::{Ffmpeg, decode::AudioStream, ffmpeg::file_arg, loudness};
use proptest::prelude::*;

fn tone(path: &Path, seconds: f64) {
    let made = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(["-f", "wav"])
        .arg(path)
        .status()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(made.success());
}

/// The hostile names; every one holds 1.5 s of audio.
fn names() -> Vec<String> {
    vec![
        "-i.mp3".into(),
        "-y".into(),
        "concat:a|b.mp3".into(),
        "subfile,,start,0,end,0,,:a".into(),
        "file:b.mp3".into(),
        "episode\nname.mp3".into(),
        "{{transcript}}.mp3".into(),
        format!("{}x.mp3", "é".repeat(125)),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_relative_names_reach_every_tool_as_the_file_they_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Decoys: what a protocol reading of the names would open, 4 s each.
    for decoy in ["a", "b.mp3"] {
        tone(&dir.path().join(decoy), 4.0);
    }
    for name in names() {
        assert!(name.len() <= 255, "{name}");
        tone(&dir.path().join(&name), 1.5);
    }
    std::env::set_current_dir(dir.path()).expect("cd");
    let ffmpeg = Ffmpeg::default();
    for name in names() {
        let path = PathBuf::from(&name);
        let info = ffmpeg
            .probe(&path)
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert!(
            (info.duration_seconds - 1.5).abs() < 0.05,
            "{name:?}: {info:?}"
        );
        let seconds = podflow_media::duration_seconds(&path).expect("a length");
        assert!((seconds - 1.5).abs() < 0.05, "{name:?}: {seconds}");

        let mut stream = AudioStream::open(&path).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        let mut samples = Vec::new();
        while stream.read_into(&mut samples, 16_000).expect("read") > 0 {}
        stream.finish().expect("decoded");
        let decoded = samples.len() as f64 / 16_000.0;
        assert!(
            (decoded - 1.5).abs() < 0.05,
            "{name:?}: {decoded} s decoded"
        );

        let measured = loudness::measure(&path, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert!(measured.integrated_lufs > -70.0, "{name:?}: {measured:?}");

        // The output is a hostile name too: written where it says, nothing else.
        let out = PathBuf::from(format!("-out-{}.mp3", name.len()));
        let mp3 = ffmpeg
            .to_mp3(
                &path,
                &out,
                &Mp3Options {
                    bitrate_kbps: 64,
                    title: name.clone(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert!(
            (mp3.duration_seconds - 1.5).abs() < 0.1,
            "{name:?}: {mp3:?}"
        );
        assert!(dir.path().join(&out).is_file());
    }
    // The decoys were only ever read, never written.
    for decoy in ["a", "b.mp3"] {
        let seconds = podflow_media::duration_seconds(Path::new(decoy)).expect("decoy");
        assert!((seconds - 4.0).abs() < 0.05);
    }
}

/// The characters ffmpeg reads as a protocol name before `:` (libavformat's
/// `URL_SCHEME_CHARS`).
fn scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// A path's components without `.`: what the file system resolves.
fn parts(p: &Path) -> Vec<std::path::Component<'_>> {
    p.components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Whatever a relative name holds, its argument starts with `./` (not an option, and no
    /// protocol: a scheme ends at the `/`), names the same file, and absolute paths pass as
    /// they are.
    #[test]
    fn file_args_are_never_options_or_protocols(
        name in "\\PC{1,40}|[-a-z:|,.+ ]{1,20}",
        absolute in any::<bool>(),
    ) {
        let path = if absolute { Path::new("/tmp").join(&name) } else { PathBuf::from(&name) };
        let arg = file_arg(&path);
        let text = arg.to_string_lossy();
        prop_assert!(!text.starts_with('-'), "{text}");
        let scheme = text.chars().take_while(|c| scheme_char(*c)).count();
        prop_assert_ne!(text.chars().nth(scheme), Some(':'), "{}", text);
        prop_assert!(!text.starts_with("subfile,"));
        prop_assert_eq!(parts(Path::new(&arg)), parts(&path));
    }
}
