//! ffmpeg/ffprobe as the media probe and the MP3 transcoder.

use std::path::Path;

use async_trait::async_trait;
use podflow_core::{MediaError, MediaInfo, MediaProbe, Mp3Options, Transcoder};
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

fn tool_missing(tool: &str, e: std::io::Error) -> MediaError {
    MediaError::Tool(format!(
        "cannot run {tool} ({e}); install ffmpeg (Debian: apt-get install ffmpeg)"
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
    async fn probe(&self, file: &Path) -> Result<MediaInfo, MediaError> {
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
            .output()
            .await
            .map_err(|e| tool_missing("ffprobe", e))?;
        if !out.status.success() {
            return Err(MediaError::Unreadable(format!(
                "not a readable audio file ({})",
                last_error_line(&out.stderr)
            )));
        }
        let parsed: ProbeOutput = serde_json::from_slice(&out.stdout)
            .map_err(|e| MediaError::Tool(format!("ffprobe printed something unexpected: {e}")))?;
        let audio = parsed
            .streams
            .iter()
            .find(|s| s.codec_type.as_deref() == Some("audio"))
            .ok_or_else(|| MediaError::Unreadable("contains no audio stream".into()))?;
        let duration = audio
            .duration
            .as_deref()
            .or(parsed.format.as_ref().and_then(|f| f.duration.as_deref()))
            .and_then(|d| d.parse::<f64>().ok())
            .unwrap_or(0.0);
        if duration <= 0.0 {
            return Err(MediaError::Unreadable(
                "audio has no duration (empty or truncated)".into(),
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
    ) -> Result<MediaInfo, MediaError> {
        let source = self.probe(input).await?;
        if let Some(parent) = output.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                MediaError::Tool(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        // Podcast loudness targets: -16 LUFS for stereo, -19 LUFS for mono (same perceived
        // loudness on phones); single-pass loudnorm is within a dB and keeps this one pass.
        let target = if source.channels >= 2 { -16 } else { -19 };
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(input)
            .args(["-vn", "-map", "0:a:0", "-af"])
            .arg(format!("loudnorm=I={target}:TP=-1.5:LRA=11"))
            .args(["-ar", "44100", "-codec:a", "libmp3lame", "-b:a"])
            .arg(format!("{}k", options.bitrate_kbps))
            .args(["-id3v2_version", "3", "-metadata"])
            .arg(format!("title={}", options.title))
            .args(["-f", "mp3"])
            .arg(output)
            .output()
            .await
            .map_err(|e| tool_missing("ffmpeg", e))?;
        if !out.status.success() {
            let _ = tokio::fs::remove_file(output).await;
            return Err(MediaError::Unreadable(format!(
                "ffmpeg could not convert it to MP3 ({})",
                last_error_line(&out.stderr)
            )));
        }
        self.probe(output).await
    }
}
