//! Audio in for both engines: ffmpeg's 16 kHz mono samples as a stream, and what counts as
//! no speech.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use podflow_core::SpeechError;

pub const SAMPLE_RATE: usize = 16_000;

/// Digital silence: whisper would only hallucinate on it.
pub const SILENCE_PEAK: f32 = 1e-4;

/// Audio decoded by ffmpeg to 16 kHz mono f32, read a window at a time so memory stays
/// flat however long the episode is.
pub struct AudioStream {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    path: PathBuf,
}

impl AudioStream {
    pub fn open(path: &Path) -> Result<Self, SpeechError> {
        let mut child = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(path)
            .args(["-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| SpeechError::Engine(format!("cannot run ffmpeg ({e}); install ffmpeg")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| SpeechError::Engine("ffmpeg gave no output pipe".into()))?;
        Ok(Self {
            child,
            stdout,
            path: path.to_owned(),
        })
    }

    /// Appends up to `n` samples; returns how many came (fewer only at the end).
    pub fn read_into(&mut self, buffer: &mut Vec<f32>, n: usize) -> Result<usize, SpeechError> {
        let mut bytes = vec![0u8; n * 4];
        let mut filled = 0;
        while filled < bytes.len() {
            match self.stdout.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(SpeechError::Engine(format!("reading ffmpeg's output: {e}")));
                }
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
    pub fn finish(mut self) -> Result<(), SpeechError> {
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let status = self
            .child
            .wait()
            .map_err(|e| SpeechError::Engine(format!("waiting for ffmpeg: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(SpeechError::Audio(format!(
                "ffmpeg could not decode {}: {}",
                self.path.display(),
                stderr.lines().last().unwrap_or("unknown error")
            )))
        }
    }
}

/// Non-speech markers whisper emits for silence or music.
pub fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || ((t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')')))
            && !t[1..t.len() - 1].contains(['[', '('])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_speech_markers_are_recognised() {
        for t in ["[BLANK_AUDIO]", " (silence) ", "[MUSIC]", ""] {
            assert!(is_non_speech(t), "{t}");
        }
        for t in ["Hello.", "[Laughs] that was funny", "(a) and (b)"] {
            assert!(!is_non_speech(t), "{t}");
        }
    }
}
