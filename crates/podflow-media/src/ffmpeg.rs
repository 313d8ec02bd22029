//! ffmpeg/ffprobe as the media probe and the MP3 transcoder.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use podflow_core::{ClipCutter, MediaInfo, MediaProbe, Mp3Options, PortError, Transcoder};
use serde::Deserialize;

use crate::{
    loudness::{self, LoudnormMeasurement},
    tool::{self, ToolDeadlines},
};

/// Runs the `ffmpeg` and `ffprobe` found on `PATH`, each run bounded by `deadlines`.
#[derive(Debug, Clone)]
pub struct Ffmpeg {
    pub deadlines: ToolDeadlines,
}

impl Default for Ffmpeg {
    /// Deadlines from `PODFLOW_TOOL_TIMEOUT`, for every runtime alike.
    fn default() -> Self {
        Self::new(ToolDeadlines::from_env())
    }
}

impl Ffmpeg {
    pub fn new(deadlines: ToolDeadlines) -> Self {
        Self { deadlines }
    }
}

/// A file name as an argument no tool reads as an option or a protocol (`-x.wav`,
/// `concat:a|b`): relative names get a `./` in front.
pub fn file_arg(path: &Path) -> OsString {
    if path.is_absolute() {
        path.as_os_str().to_owned()
    } else {
        Path::new(".").join(path).into_os_string()
    }
}

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

#[async_trait]
impl MediaProbe for Ffmpeg {
    async fn probe(&self, file: &Path) -> Result<MediaInfo, PortError> {
        let mut args: Vec<OsString> = [
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ]
        .map(Into::into)
        .to_vec();
        args.push(file_arg(file));
        let out = match tool::run("ffprobe", args, self.deadlines.fixed()).await {
            Ok(out) => out,
            Err(tool::ToolError::Failed { stderr_tail, .. }) => {
                return Err(PortError::input(format!(
                    "not a readable audio file ({})",
                    tool::last_line(&stderr_tail)
                )));
            }
            Err(e) => return Err(e.into_port_error("a probe of the audio")),
        };
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

/// The true-peak ceiling handed to loudnorm, a dB under the -1 dBTP the MP3 must meet:
/// loudnorm bounds the PCM it outputs, and the MP3 encoder's lowpass and quantisation
/// then move the inter-sample peaks (measured on speech: +0.1 dB at 64 kb/s for plain
/// speech, +0.8 dB for a brick-wall-limited master; 128 kb/s stayed under the PCM's), so
/// TP=-1.5 could let an MP3 measure over -1 dBTP.
const TRUE_PEAK_DBTP: f64 = -2.0;

/// Loudness range loudnorm allows before it compresses; speech rarely exceeds it.
const LOUDNESS_RANGE_LU: f64 = 11.0;

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
        // loudness on phones). Two passes: single-pass loudnorm can only ride its gain
        // over a 3 s window; measured first, the whole recording gets one gain when the
        // peaks allow it, and the aim is the whole file's loudness, not a running guess.
        let target = if source.channels >= 2 { -16.0 } else { -19.0 };
        let deadline = self.deadlines.for_audio(source.duration_seconds);
        let measured = self.measure_loudnorm(input, target, deadline).await?;
        let args = vec![
            "-i".into(),
            file_arg(input),
            "-vn".into(),
            "-map".into(),
            "0:a:0".into(),
            "-af".into(),
            loudnorm_filter(target, Some(&measured).filter(|m| m.usable())).into(),
            // loudnorm works (and, when it must limit, outputs) at 192 kHz.
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
        self.run(args, output, "the MP3", deadline).await?;
        self.probe(output).await
    }
}

/// The second pass's loudnorm. With a usable first-pass measurement, `linear=true` applies
/// one gain to the whole recording; loudnorm itself falls back to its dynamic mode (a
/// gain that follows the audio, with its true-peak limiter) when that one gain would push
/// the peaks over [`TRUE_PEAK_DBTP`] or the range is over [`LOUDNESS_RANGE_LU`], so
/// the integrated loudness lands on the target either way.
///
/// Without one (silence, or audio shorter than one 400 ms gating block: loudnorm reports
/// `-inf` and there is no integrated loudness to correct), the single-pass filter runs as
/// before: it leaves silence silent and at most limits a blip, and the episode still gets
/// its MP3 rather than a failure.
fn loudnorm_filter(target: f64, measured: Option<&LoudnormMeasurement>) -> String {
    let base = format!("loudnorm=I={target}:TP={TRUE_PEAK_DBTP}:LRA={LOUDNESS_RANGE_LU}");
    match measured {
        Some(m) => format!(
            "{base}:measured_I={:.2}:measured_TP={:.2}:measured_LRA={:.2}:\
             measured_thresh={:.2}:offset={:.2}:linear=true",
            m.input_i, m.input_tp, m.input_lra, m.input_thresh, m.target_offset
        ),
        None => base,
    }
}

impl Ffmpeg {
    /// The first pass: loudnorm with the MP3's targets over the whole input, output
    /// discarded, its measurement read from the JSON it prints at info level.
    async fn measure_loudnorm(
        &self,
        input: &Path,
        target: f64,
        deadline: std::time::Duration,
    ) -> Result<LoudnormMeasurement, PortError> {
        let mut args: Vec<OsString> = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
            .map(Into::into)
            .to_vec();
        args.push("-i".into());
        args.push(file_arg(input));
        args.extend(["-vn", "-map", "0:a:0", "-af"].map(OsString::from));
        args.push(format!("{}:print_format=json", loudnorm_filter(target, None)).into());
        args.extend(["-f", "null", "-"].map(OsString::from));
        let out = match tool::run("ffmpeg", args, deadline).await {
            Ok(out) => out,
            Err(tool::ToolError::Failed { stderr_tail, .. }) => {
                return Err(PortError::input(format!(
                    "ffmpeg could not measure the loudness of {} ({})",
                    input.display(),
                    tool::last_line(&stderr_tail)
                )));
            }
            Err(e) => {
                return Err(
                    e.into_port_error(&format!("the loudness measurement of {}", input.display()))
                );
            }
        };
        loudness::parse_loudnorm(&out.stderr_tail).map_err(|e| {
            PortError::setup(format!(
                "measuring the loudness of {}: {e} (an ffmpeg without loudnorm's JSON?)",
                input.display()
            ))
        })
    }

    /// Runs ffmpeg quietly; a failure names what was being made and ffmpeg's complaint.
    /// Needs only `ffmpeg`, not `ffprobe`: a Lambda layer may carry ffmpeg alone.
    async fn run(
        &self,
        mut args: Vec<OsString>,
        output: &Path,
        what: &str,
        deadline: std::time::Duration,
    ) -> Result<(), PortError> {
        if let Some(parent) = output.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                PortError::setup(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut full: Vec<OsString> = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
            .map(Into::into)
            .to_vec();
        full.append(&mut args);
        full.push(file_arg(output));
        if let Err(e) = tool::run("ffmpeg", full, deadline).await {
            let _ = tokio::fs::remove_file(output).await;
            return Err(e.into_port_error(what));
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
        let mut args: Vec<OsString> = vec![
            "-i".into(),
            file_arg(input),
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
        // Decoding from the start reads up to `end` seconds of audio.
        let deadline = self.deadlines.for_audio(end);
        self.run(args, output, "the clip", deadline).await
    }

    async fn join(&self, parts: &[PathBuf], output: &Path) -> Result<(), PortError> {
        let mut args: Vec<OsString> = Vec::new();
        for part in parts {
            args.push("-i".into());
            args.push(file_arg(part));
        }
        let inputs: String = (0..parts.len()).map(|i| format!("[{i}:a]")).collect();
        args.extend([
            "-filter_complex".into(),
            format!("{inputs}concat=n={}:v=0:a=1[out]", parts.len()).into(),
            "-map".into(),
            "[out]".into(),
        ]);
        args.extend(clip_mp3());
        // Trailers join a few short clips; the fixed deadline is ample.
        self.run(args, output, "the trailer", self.deadlines.fixed())
            .await
    }
}

/// The output format of clips and trailers: 128 kb/s MP3.
fn clip_mp3() -> [OsString; 6] {
    ["-codec:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"].map(Into::into)
}
