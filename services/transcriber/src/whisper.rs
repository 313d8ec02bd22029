//! Local speech-to-text with whisper.cpp (through `whisper-rs`).
//!
//! whisper.cpp was chosen by measurement (see `docs/transcription.md`): it builds in about
//! 1.5 minutes on 2 cores (CTranslate2's C++ build takes about 18), and its long-form loop
//! already seeks on timestamps, conditions on the previous window and falls back on
//! temperature — the parts that decide word error rate on long episodes.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use async_trait::async_trait;
use podflow_core::{
    SpeechError, SpeechToText,
    transcript::{TimedWord, Transcript, TranscriptSegment},
};
use tokio::process::Command;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::model::{self, ResolvedModel};

const SAMPLE_RATE: usize = 16_000;

/// Whisper through whisper.cpp. The model is found, converted and loaded on first use, so
/// commands that never transcribe (`podflow status`) do not pay for it.
pub struct WhisperEngine {
    source: Option<PathBuf>,
    cache_dir: PathBuf,
    threads: usize,
    loaded: OnceLock<Result<(ResolvedModel, Arc<WhisperContext>), String>>,
}

impl WhisperEngine {
    /// `source`: a model directory or ggml file (default: [`model::locate`]);
    /// `cache_dir`: where converted models are kept.
    pub fn new(source: Option<PathBuf>, cache_dir: PathBuf) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            source,
            cache_dir,
            threads,
            loaded: OnceLock::new(),
        }
    }

    fn load(&self) -> Result<&(ResolvedModel, Arc<WhisperContext>), SpeechError> {
        self.loaded
            .get_or_init(|| {
                let source = match &self.source {
                    Some(p) => p.clone(),
                    None => model::locate().map_err(|e| e.to_string())?,
                };
                let resolved = model::prepare(&source, &self.cache_dir).map_err(|e| e.to_string())?;
                whisper_rs::install_logging_hooks();
                let ctx = WhisperContext::new_with_params(
                    &resolved.ggml_path,
                    WhisperContextParameters::default(),
                )
                .map_err(|e| {
                    format!(
                        "whisper.cpp could not load {} ({e}); point PODFLOW_WHISPER_MODEL at a valid model",
                        resolved.ggml_path.display()
                    )
                })?;
                Ok((resolved, Arc::new(ctx)))
            })
            .as_ref()
            .map_err(|e| SpeechError::Engine(e.clone()))
    }
}

/// Decodes any audio ffmpeg reads into 16 kHz mono f32 samples.
pub async fn decode_audio(path: &Path) -> Result<Vec<f32>, SpeechError> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"])
        .output()
        .await
        .map_err(|e| SpeechError::Engine(format!("cannot run ffmpeg ({e}); install ffmpeg")))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(SpeechError::Audio(format!(
            "ffmpeg could not decode {}: {}",
            path.display(),
            why.lines().last().unwrap_or("unknown error")
        )));
    }
    Ok(out
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Joins whisper tokens into words: a token starting with a space starts a new word.
fn words_from_tokens(tokens: &[(String, f64, f64)]) -> Vec<TimedWord> {
    let mut words: Vec<TimedWord> = Vec::new();
    for (text, start, end) in tokens {
        if text.is_empty() {
            continue;
        }
        match words.last_mut() {
            Some(w) if !text.starts_with(' ') => {
                w.text.push_str(text);
                w.end = *end;
            }
            _ => words.push(TimedWord {
                start: *start,
                end: *end,
                text: text.trim_start().to_owned(),
            }),
        }
    }
    words.retain(|w| !w.text.is_empty());
    words
}

fn run_whisper(
    ctx: &WhisperContext,
    samples: &[f32],
    threads: usize,
) -> Result<Vec<TranscriptSegment>, SpeechError> {
    let engine = |e: whisper_rs::WhisperError| SpeechError::Engine(format!("whisper.cpp: {e}"));
    let mut state = ctx.create_state().map_err(engine)?;
    let mut params = FullParams::new(SamplingStrategy::BeamSearch {
        beam_size: 5,
        patience: -1.0,
    });
    params.set_n_threads(threads as i32);
    params.set_language(Some("en"));
    params.set_token_timestamps(true);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    state.full(params, samples).map_err(engine)?;
    let eot = ctx.token_eot();
    let mut segments = Vec::new();
    for seg in state.as_iter() {
        let text = seg.to_str_lossy().map_err(engine)?.trim().to_owned();
        if text.is_empty() {
            continue;
        }
        let mut tokens = Vec::new();
        for i in 0..seg.n_tokens() {
            let Some(tok) = seg.get_token(i) else {
                continue;
            };
            let data = tok.token_data();
            if data.id >= eot {
                continue; // timestamps and other special tokens
            }
            let piece = tok.to_str_lossy().map_err(engine)?.into_owned();
            tokens.push((piece, data.t0 as f64 / 100.0, data.t1 as f64 / 100.0));
        }
        segments.push(TranscriptSegment {
            start: seg.start_timestamp() as f64 / 100.0,
            end: seg.end_timestamp() as f64 / 100.0,
            speaker: None,
            text,
            words: words_from_tokens(&tokens),
        });
    }
    Ok(segments)
}

#[async_trait]
impl SpeechToText for WhisperEngine {
    fn engine(&self) -> &str {
        "whisper.cpp"
    }

    fn model(&self) -> &str {
        self.load().map_or("unavailable", |(m, _)| m.name.as_str())
    }

    fn model_fingerprint(&self) -> &str {
        self.load()
            .map_or("unavailable", |(m, _)| m.fingerprint.as_str())
    }

    fn prepare(&self) -> Result<(), SpeechError> {
        self.load().map(|_| ())
    }

    async fn transcribe(&self, audio: &Path) -> Result<Transcript, SpeechError> {
        let (resolved, ctx) = self.load()?;
        let samples = decode_audio(audio).await?;
        let duration = samples.len() as f64 / SAMPLE_RATE as f64;
        if duration < 0.1 {
            return Err(SpeechError::Audio(format!(
                "{} holds no audio to transcribe",
                audio.display()
            )));
        }
        let ctx = ctx.clone();
        let threads = self.threads;
        let segments = tokio::task::spawn_blocking(move || run_whisper(&ctx, &samples, threads))
            .await
            .map_err(|e| SpeechError::Engine(format!("transcription task failed: {e}")))??;
        Ok(Transcript {
            language: "en".into(),
            duration_seconds: duration,
            engine: self.engine().into(),
            model: resolved.name.clone(),
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_join_into_words_on_leading_spaces() {
        let t = |s: &str, a: f64, b: f64| (s.to_owned(), a, b);
        let words = words_from_tokens(&[
            t(" Hel", 0.0, 0.2),
            t("lo", 0.2, 0.4),
            t(" world", 0.5, 0.9),
            t(".", 0.9, 1.0),
        ]);
        let texts: Vec<_> = words
            .iter()
            .map(|w| (w.text.as_str(), w.start, w.end))
            .collect();
        assert_eq!(texts, [("Hello", 0.0, 0.4), ("world.", 0.5, 1.0)]);
    }
}
