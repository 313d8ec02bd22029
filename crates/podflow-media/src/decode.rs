//! Audio decoded by ffmpeg to 16 kHz mono `f32` samples, read as a stream: what the local
//! speech engines take in.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use podflow_core::PortError;

/// Samples per second of the decoded audio (Whisper's rate).
pub const SAMPLE_RATE: usize = 16_000;

/// The most of ffmpeg's stderr kept for an error message: its last lines say what failed.
const STDERR_TAIL: usize = 4096;

/// Audio decoded by ffmpeg, read a stretch at a time so memory stays flat however long the
/// episode is. ffmpeg's stderr is drained as it runs (a damaged file can make it log more
/// than a pipe holds, which would stall both processes); its tail goes into the error.
pub struct AudioStream {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<()>>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    path: PathBuf,
}

impl AudioStream {
    /// Starts ffmpeg on `path`; an error means ffmpeg could not be run (setup).
    pub fn open(path: &Path) -> Result<Self, PortError> {
        let mut child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(path)
            .args(["-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PortError::setup(format!("cannot run ffmpeg ({e}); install ffmpeg")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| PortError::setup("ffmpeg gave no output pipe"))?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().map(|mut pipe| {
            let tail = Arc::clone(&stderr_tail);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 1024];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut kept) = tail.lock() {
                        kept.extend_from_slice(&chunk[..n]);
                        let excess = kept.len().saturating_sub(STDERR_TAIL);
                        kept.drain(..excess);
                    }
                }
            })
        });
        Ok(Self {
            child,
            stdout,
            stderr,
            stderr_tail,
            path: path.to_owned(),
        })
    }

    /// Appends up to `n` samples to `buffer`; returns how many came (fewer only at the end).
    pub fn read_into(&mut self, buffer: &mut Vec<f32>, n: usize) -> Result<usize, PortError> {
        let mut bytes = vec![0u8; n * 4];
        let mut filled = 0;
        while filled < bytes.len() {
            match self.stdout.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PortError::setup(format!("reading ffmpeg's output: {e}"))),
            }
        }
        buffer.extend(
            bytes[..filled - filled % 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Ok(filled / 4)
    }

    /// Waits for ffmpeg; an input it could not decode is the audio's fault.
    pub fn finish(mut self) -> Result<(), PortError> {
        let status = self
            .child
            .wait()
            .map_err(|e| PortError::setup(format!("waiting for ffmpeg: {e}")))?;
        if let Some(reader) = self.stderr.take() {
            let _ = reader.join();
        }
        if status.success() {
            return Ok(());
        }
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default();
        Err(PortError::input(format!(
            "ffmpeg could not decode {}: {}",
            self.path.display(),
            tail.lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("unknown error")
        )))
    }
}

impl Drop for AudioStream {
    /// A stream dropped before its end (an error, a cancelled step) stops its ffmpeg.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
