//! ffmpeg/ffprobe as the media probe and the MP3 transcoder.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use podflow_core::{ClipCutter, MediaInfo, MediaProbe, Mp3Options, PortError, Transcoder};
use serde::Deserialize;
use tokio::process::Command;

/// Runs the `ffmpeg` and `ffprobe` found on `PATH`.
#[derive(Debug, Clone, Default)]
pub struct Ffmpeg;

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    channels: Option<u32>,
    sample_rate: Option<String>,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

fn tool_missing(tool: &str, e: std::io::Error) -> PortError {
    PortError::setup(format!(
        "cannot run {tool} ({e}); install ffmpeg (Debian: apt-get install ffmpeg; on Lambda: \
         the FfmpegLayerArn layer, see docs/deploy.md)"
    ))
}

/// The last meaningful line ffmpeg printed: its actual complaint.
fn last_error_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_owned()
}

#[async_trait]
impl MediaProbe for Ffmpeg {
    async fn probe(&self, file: &Path) -> Result<MediaInfo, PortError> {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_streams",
                "-show_format",
            ])
            .arg(file)
            // A step that is stopped (Ctrl-C, shutdown) takes its tool with it.
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| tool_missing("ffprobe", e))?;
        if !out.status.success() {
            return Err(PortError::input(format!(
                "not a readable audio file ({})",
                last_error_line(&out.stderr)
            )));
        }
        let parsed: ProbeOutput = serde_json::from_slice(&out.stdout)
            .map_err(|e| PortError::setup(format!("ffprobe printed something unexpected: {e}")))?;
        let audio = parsed
            .streams
            .iter()
            .find(|s| s.codec_type.as_deref() == Some("audio"))
            .ok_or_else(|| PortError::input("contains no audio stream"))?;
        let duration = audio
            .duration
            .as_deref()
            .or(parsed.format.as_ref().and_then(|f| f.duration.as_deref()))
            .and_then(|d| d.parse::<f64>().ok())
            .unwrap_or(0.0);
        if duration <= 0.0 {
            return Err(PortError::input(
                "audio has no duration (empty or truncated)",
            ));
        }
        Ok(MediaInfo {
            duration_seconds: duration,
            codec: audio.codec_name.clone().unwrap_or_default(),
            channels: audio.channels.unwrap_or(0),
            sample_rate: audio
                .sample_rate
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        })
    }
}

#[async_trait]
impl Transcoder for Ffmpeg {
    async fn to_mp3(
        &self,
        input: &Path,
        output: &Path,
        options: &Mp3Options,
    ) -> Result<MediaInfo, PortError> {
        let source = self.probe(input).await?;
        // Podcast loudness targets: -16 LUFS for stereo, -19 LUFS for mono (same perceived
        // loudness on phones); single-pass loudnorm is within a dB and keeps this one pass.
        let target = if source.channels >= 2 { -16 } else { -19 };
        let args = vec![
            "-i".into(),
            input.as_os_str().to_owned(),
            "-vn".into(),
            "-map".into(),
            "0:a:0".into(),
            "-af".into(),
            format!("loudnorm=I={target}:TP=-1.5:LRA=11").into(),
            "-ar".into(),
            "44100".into(),
            "-codec:a".into(),
            "libmp3lame".into(),
            "-b:a".into(),
            format!("{}k", options.bitrate_kbps).into(),
            "-id3v2_version".into(),
            "3".into(),
            "-metadata".into(),
            format!("title={}", options.title).into(),
            "-f".into(),
            "mp3".into(),
        ];
        self.run(args, output, "the MP3").await?;
        self.probe(output).await
    }
}

impl Ffmpeg {
    /// Runs ffmpeg quietly; a failure names what was being made and ffmpeg's complaint.
    /// Needs only `ffmpeg`, not `ffprobe`: a Lambda layer may carry ffmpeg alone.
    async fn run(
        &self,
        args: Vec<std::ffi::OsString>,
        output: &Path,
        what: &str,
    ) -> Result<(), PortError> {
        if let Some(parent) = output.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                PortError::setup(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(output)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| tool_missing("ffmpeg", e))?;
        if !out.status.success() {
            let _ = tokio::fs::remove_file(output).await;
            return Err(PortError::input(format!(
                "ffmpeg could not make {what} ({})",
                last_error_line(&out.stderr)
            )));
        }
        match tokio::fs::metadata(output).await {
            Ok(meta) if meta.len() > 0 => Ok(()),
            _ => Err(PortError::input(format!(
                "ffmpeg made no {what} (the output is empty)"
            ))),
        }
    }
}

#[async_trait]
impl ClipCutter for Ffmpeg {
    async fn cut(
        &self,
        input: &Path,
        start: f64,
        end: f64,
        fade: f64,
        output: &Path,
    ) -> Result<(), PortError> {
        let length = end - start;
        let fade = fade.min(length / 4.0);
        // Seeking after -i decodes from the start: exact to the sample, and an episode's
        // MP3 decodes fast enough that this costs well under a second.
        let mut args: Vec<std::ffi::OsString> = vec![
            "-i".into(),
            input.as_os_str().to_owned(),
            "-ss".into(),
            format!("{start:.3}").into(),
            "-t".into(),
            format!("{length:.3}").into(),
            "-af".into(),
            format!(
                "afade=t=in:d={fade:.3},afade=t=out:st={:.3}:d={fade:.3}",
                (length - fade).max(0.0)
            )
            .into(),
        ];
        args.extend(clip_mp3());
        self.run(args, output, "the clip").await
    }

    async fn join(&self, parts: &[PathBuf], output: &Path) -> Result<(), PortError> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for part in parts {
            args.push("-i".into());
            args.push(part.as_os_str().to_owned());
        }
        let inputs: String = (0..parts.len()).map(|i| format!("[{i}:a]")).collect();
        args.extend([
            "-filter_complex".into(),
            format!("{inputs}concat=n={}:v=0:a=1[out]", parts.len()).into(),
            "-map".into(),
            "[out]".into(),
        ]);
        args.extend(clip_mp3());
        self.run(args, output, "the trailer").await
    }
}

/// The output format of clips and trailers: 128 kb/s MP3.
fn clip_mp3() -> [std::ffi::OsString; 6] {
    ["-codec:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"].map(Into::into)
}
