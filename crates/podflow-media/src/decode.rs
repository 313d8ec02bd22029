//! Audio decoded by ffmpeg to 16 kHz mono `f32` samples, read as a stream: what the local
//! speech engines take in.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ChildStdout,
};

use podflow_core::PortError;

use crate::{
    ffmpeg::file_arg,
    tool::{Limit, RunningTool, ToolDeadlines, ToolError},
};

/// Samples per second of the decoded audio (Whisper's rate).
pub const SAMPLE_RATE: usize = 16_000;

/// Audio decoded by ffmpeg, read a stretch at a time so memory stays flat however long the
/// episode is. ffmpeg runs under the tool watchdog: it must produce audio within the fixed
/// tool deadline whenever the reader waits for some (time the speech engine spends working
/// does not count), and its stderr is drained as it runs.
pub struct AudioStream {
    tool: RunningTool,
    stdout: ChildStdout,
    path: PathBuf,
}

impl AudioStream {
    /// Starts ffmpeg on `path` (deadline from `PODFLOW_TOOL_TIMEOUT`); an error means
    /// ffmpeg could not be run (setup).
    pub fn open(path: &Path) -> Result<Self, PortError> {
        Self::open_with(path, ToolDeadlines::from_env())
    }

    pub fn open_with(path: &Path, deadlines: ToolDeadlines) -> Result<Self, PortError> {
        let mut args: Vec<std::ffi::OsString> =
            ["-nostdin", "-hide_banner", "-loglevel", "error", "-i"]
                .map(Into::into)
                .to_vec();
        args.push(file_arg(path));
        args.extend(["-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"].map(Into::into));
        let mut tool = RunningTool::start("ffmpeg", &args, Limit::Stall(deadlines.fixed()))
            .map_err(|e| e.into_port_error("the audio for transcription"))?;
        let stdout = tool
            .child
            .stdout
            .take()
            .ok_or_else(|| PortError::setup("ffmpeg gave no output pipe"))?;
        Ok(Self {
            tool,
            stdout,
            path: path.to_owned(),
        })
    }

    /// Appends up to `n` samples to `buffer`; returns how many came (fewer only at the end).
    pub fn read_into(&mut self, buffer: &mut Vec<f32>, n: usize) -> Result<usize, PortError> {
        let mut bytes = vec![0u8; n * 4];
        let stdout = &mut self.stdout;
        let filled = self.tool.waiting(|| {
            let mut filled = 0;
            while filled < bytes.len() {
                match stdout.read(&mut bytes[filled..]) {
                    Ok(0) => break,
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(PortError::setup(format!("reading ffmpeg's output: {e}")));
                    }
                }
            }
            Ok(filled)
        })?;
        buffer.extend(
            bytes[..filled - filled % 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Ok(filled / 4)
    }

    /// Waits for ffmpeg; an input it could not decode is the audio's fault.
    pub fn finish(mut self) -> Result<(), PortError> {
        match self.tool.wait() {
            Ok(_) => Ok(()),
            Err(ToolError::Failed { stderr_tail, .. }) => Err(PortError::input(format!(
                "ffmpeg could not decode {}: {}",
                self.path.display(),
                crate::tool::last_line(&stderr_tail)
            ))),
            Err(e) => Err(e.into_port_error(&format!(
                "the audio of {} for transcription",
                self.path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn tone(dir: &Path, seconds: f64) -> PathBuf {
        let wav = dir.join("tone.wav");
        let made = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration={seconds}"))
            .args(["-ar", "44100"])
            .arg(&wav)
            .status()
            .expect("ffmpeg runs (scripts/setup.sh installs it)");
        assert!(made.success());
        wav
    }

    #[test]
    fn a_file_decodes_to_16_khz_samples_read_in_stretches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut stream = AudioStream::open(&tone(dir.path(), 1.5)).expect("ffmpeg starts");
        let mut samples = Vec::new();
        assert_eq!(
            stream.read_into(&mut samples, 16_000).expect("read"),
            16_000
        );
        let rest = stream.read_into(&mut samples, 16_000).expect("read");
        assert!(
            (7_900..=8_100).contains(&rest),
            "{rest} samples after the first second"
        );
        assert_eq!(stream.read_into(&mut samples, 16_000).expect("read"), 0);
        stream.finish().expect("a clean end");
        let peak = samples.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak > 0.05 && peak <= 1.0, "peak {peak}");
    }

    #[test]
    fn a_file_that_is_not_audio_is_the_inputs_fault_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("episode.mp3");
        std::fs::write(&path, b"not audio at all").expect("write");
        let mut stream = AudioStream::open(&path).expect("ffmpeg starts");
        let mut samples = Vec::new();
        assert_eq!(stream.read_into(&mut samples, 16_000).expect("read"), 0);
        match stream.finish() {
            Err(e) if e.kind() == podflow_core::ErrorKind::Input => {
                let message = e.to_string();
                assert!(message.contains("episode.mp3"), "{message}");
            }
            other => panic!("expected an unreadable input, got {other:?}"),
        }
    }
}
