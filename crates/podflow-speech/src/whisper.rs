//! Local speech-to-text with whisper.cpp (through `whisper-rs`): the engine of builds
//! without CTranslate2, and the stand-in when CTranslate2 cannot load. It builds in about
//! 1.5 minutes on 2 cores and its own long-form loop seeks on timestamps, conditions on the
//! previous window and falls back on temperature; podflow hands it five-minute windows of
//! the stream. About half as fast as the CTranslate2 engine (`docs/transcription.md`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use async_trait::async_trait;
use podflow_core::{
    PortError, SpeechToText,
    language::Language,
    transcript::{TimedWord, Transcript, TranscriptSegment},
};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::{
    audio::{
        AudioStream, LoadFailure, SAMPLE_RATE, SILENCE_PEAK, Transcribed, beams_from_env,
        fit_to_speech, is_non_speech, log_progress, transcribe_blocking,
    },
    language::{self, Decision},
    model::{self, ResolvedModel},
    speakers::{SegmentVoice, VoicePrinter, assign_speakers},
};

/// Whisper through whisper.cpp. The model is found, converted and loaded on first use, so
/// commands that never transcribe (`podflow status`) do not pay for it.
pub struct WhisperEngine {
    source: Option<PathBuf>,
    cache_dir: PathBuf,
    language: Language,
    decoding: Decoding,
    loaded: OnceLock<Result<Loaded, LoadFailure>>,
}

/// A loaded model and what was settled with it.
struct Loaded {
    resolved: ResolvedModel,
    ctx: Arc<WhisperContext>,
    language: Decision,
    /// The converted weights' fingerprint, plus the language setting for a multilingual
    /// model ([`language::fingerprint_suffix`]).
    fingerprint: String,
}

impl WhisperEngine {
    /// `source`: a model directory or ggml file (default: [`locate::model`]);
    /// `cache_dir`: where converted models are kept. The language is identified from the
    /// audio unless [`WhisperEngine::with_language`] says otherwise.
    pub fn new(source: Option<PathBuf>, cache_dir: PathBuf) -> Self {
        Self {
            source,
            cache_dir,
            language: Language::Auto,
            decoding: Decoding::from_env(),
            loaded: OnceLock::new(),
        }
    }

    /// Transcribes in `language` (checked against the model when it loads).
    pub fn with_language(mut self, language: Language) -> Self {
        self.language = language;
        self.loaded = OnceLock::new();
        self
    }

    fn load(&self) -> Result<&Loaded, PortError> {
        self.loaded
            .get_or_init(|| {
                let source = match &self.source {
                    Some(p) => p.clone(),
                    None => crate::locate::model().map_err(|e| e.to_string())?,
                };
                let weights = model::WeightType::from_env().map_err(|e| e.to_string())?;
                let resolved = model::prepare(&source, &self.cache_dir, weights)
                    .map_err(|e| e.to_string())?;
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
                let multilingual = ctx.is_multilingual();
                // The code was checked to be two ASCII letters: no NUL for whisper.cpp's C string.
                let decision = language::decide(&self.language, &resolved.name, multilingual, |code| {
                    whisper_rs::get_lang_id(code).is_some()
                })
                .map_err(LoadFailure::input)?;
                let fingerprint = format!(
                    "{}{}",
                    resolved.fingerprint,
                    language::fingerprint_suffix(&self.language, multilingual)
                );
                Ok(Loaded {
                    resolved,
                    ctx: Arc::new(ctx),
                    language: decision,
                    fingerprint,
                })
            })
            .as_ref()
            .map_err(LoadFailure::port)
    }
}

/// How much audio whisper.cpp is given at a time, and how close to a window's end a
/// segment may finish and still be kept (later ones are decoded again with what follows,
/// so no sentence is cut at a window edge).
#[derive(Debug, Clone, Copy)]
pub struct Windowing {
    pub window_seconds: f64,
    pub guard_seconds: f64,
}

impl Default for Windowing {
    fn default() -> Self {
        // Five minutes: 19 MB of samples, and a re-decoded tail of a few seconds per window.
        Self {
            window_seconds: 300.0,
            guard_seconds: 8.0,
        }
    }
}

/// Which of a window's segments to keep and where the next window starts (seconds from
/// this window's start). The last window keeps everything.
pub fn keep_until(
    segment_ends: &[f64],
    window: f64,
    windowing: Windowing,
    last: bool,
) -> (usize, f64) {
    if last {
        return (segment_ends.len(), window);
    }
    let limit = window - windowing.guard_seconds;
    let kept = segment_ends.iter().take_while(|&&end| end <= limit).count();
    match kept {
        // Nothing finished early enough (music, one very long sentence): move on anyway so
        // the loop always advances.
        0 => (0, limit.max(window / 2.0)),
        n => (n, segment_ends[n - 1]),
    }
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

/// How whisper.cpp decodes, settled once per engine.
#[derive(Debug, Clone, Copy)]
struct Decoding {
    threads: usize,
    /// Beam search width; 1 is greedy decoding (whisper.cpp still falls back to sampling
    /// at higher temperatures when a window's text looks wrong).
    beams: i32,
}

impl Decoding {
    /// All cores, and 5 beams unless `PODFLOW_WHISPER_BEAM` says otherwise.
    fn from_env() -> Self {
        Self {
            threads: crate::audio::threads_from_env(),
            beams: i32::try_from(beams_from_env()).unwrap_or(5),
        }
    }

    fn sampling(self) -> SamplingStrategy {
        if self.beams <= 1 {
            SamplingStrategy::Greedy { best_of: 5 }
        } else {
            SamplingStrategy::BeamSearch {
                beam_size: self.beams,
                patience: -1.0,
            }
        }
    }
}

/// Transcribes one window in `language` (a Whisper code), or identifies it (`None`):
/// the segments, and the language decoded in when it was identified.
fn run_whisper(
    ctx: &WhisperContext,
    samples: &[f32],
    decoding: Decoding,
    prompt: &str,
    language: Option<&str>,
) -> Result<(Vec<TranscriptSegment>, Option<String>), PortError> {
    let engine = |e: whisper_rs::WhisperError| PortError::setup(format!("whisper.cpp: {e}"));
    let mut state = ctx.create_state().map_err(engine)?;
    let mut params = FullParams::new(decoding.sampling());
    params.set_n_threads(decoding.threads as i32);
    // "auto": whisper.cpp identifies the language on the window's first 30 s, then
    // transcribes in it. (`set_detect_language` would identify it and transcribe nothing.)
    params.set_language(Some(language.unwrap_or("auto")));
    params.set_token_timestamps(true);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_suppress_blank(true);
    if !prompt.is_empty() {
        // The previous window's last words, as whisper.cpp does between its own windows.
        params.set_initial_prompt(prompt);
    }
    state.full(params, samples).map_err(engine)?;
    let identified = match language {
        Some(_) => None,
        None => whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(language::iso_code),
    };
    let eot = ctx.token_eot();
    let mut segments = Vec::new();
    for seg in state.as_iter() {
        let text = seg.to_str_lossy().map_err(engine)?.trim().to_owned();
        if is_non_speech(&text) {
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
    Ok((segments, identified))
}

#[async_trait]
impl SpeechToText for WhisperEngine {
    fn engine(&self) -> &str {
        "whisper.cpp"
    }

    fn model(&self) -> &str {
        self.load()
            .map_or("unavailable", |l| l.resolved.name.as_str())
    }

    fn model_fingerprint(&self) -> &str {
        self.load()
            .map_or("unavailable", |l| l.fingerprint.as_str())
    }

    fn prepare(&self) -> Result<(), PortError> {
        self.load().map(|_| ())
    }

    /// whisper.cpp reads the audio in windows of a fixed length: it needs no duration.
    async fn transcribe(
        &self,
        audio: &Path,
        _duration_seconds: Option<f64>,
    ) -> Result<Transcript, PortError> {
        self.transcribe_with_progress(audio, Windowing::default(), log_progress(audio))
            .await
    }
}

impl WhisperEngine {
    /// Transcribes window by window; `progress` hears the seconds of audio done so far.
    pub async fn transcribe_with_progress(
        &self,
        audio: &Path,
        windowing: Windowing,
        progress: impl Fn(f64) + Send + 'static,
    ) -> Result<Transcript, PortError> {
        let loaded = self.load()?;
        let ctx = loaded.ctx.clone();
        let language = loaded.language.clone();
        let decoding = self.decoding;
        let path = audio.to_owned();
        transcribe_blocking(
            audio,
            self.engine(),
            loaded.resolved.name.clone(),
            move || transcribe_stream(&ctx, &path, decoding, windowing, &language, &progress),
        )
        .await
    }
}

/// Characters of the previous window's text given as the next one's prompt.
const PROMPT_CHARS: usize = 200;

fn transcribe_stream(
    ctx: &WhisperContext,
    path: &Path,
    decoding: Decoding,
    windowing: Windowing,
    language: &Decision,
    progress: &dyn Fn(f64),
) -> Result<Transcribed, PortError> {
    // To identify: the first window with sound says, and every later one keeps to it (one
    // language per file, as the CTranslate2 engine does).
    let mut language = match language {
        Decision::Fixed(code) => Some(code.clone()),
        Decision::Detect => None,
    };
    let window = (windowing.window_seconds * SAMPLE_RATE as f64) as usize;
    let mut stream = AudioStream::open(path)?;
    let mut buffer: Vec<f32> = Vec::with_capacity(window);
    let mut offset = 0.0; // seconds of audio before the buffer
    let mut segments: Vec<TranscriptSegment> = Vec::new();
    // One voice print per kept segment, made while its samples are at hand.
    let printer = VoicePrinter::new();
    let mut voices: Vec<SegmentVoice> = Vec::new();
    loop {
        let wanted = window.saturating_sub(buffer.len());
        let got = stream.read_into(&mut buffer, wanted)?;
        let last = got < wanted;
        if buffer.is_empty() {
            break;
        }
        let seconds = buffer.len() as f64 / SAMPLE_RATE as f64;
        let silent = buffer.iter().all(|x| x.abs() < SILENCE_PEAK);
        let recent = &segments[segments.len().saturating_sub(3)..];
        let text = recent
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let skip = text.chars().count().saturating_sub(PROMPT_CHARS);
        let prompt: String = text.chars().skip(skip).collect();
        let mut found = if silent {
            Vec::new()
        } else {
            let asked = language.as_deref().map(language::whisper_code);
            let (found, identified) = run_whisper(ctx, &buffer, decoding, &prompt, asked)?;
            if language.is_none() {
                tracing::info!(language = ?identified, "whisper.cpp identified the language");
                language = identified;
            }
            found
        };
        let ends: Vec<f64> = found.iter().map(|s| s.end).collect();
        let (kept, cut) = keep_until(&ends, seconds, windowing, last);
        for segment in found.iter_mut().take(kept) {
            fit_to_speech(segment, &buffer, 0.0);
        }
        voices.extend(found.iter().take(kept).map(|s| {
            let at = |t: f64| ((t.max(0.0) * SAMPLE_RATE as f64) as usize).min(buffer.len());
            let samples = &buffer[at(s.start)..at(s.end).max(at(s.start))];
            SegmentVoice {
                print: printer.print(samples),
                seconds: s.end - s.start,
            }
        }));
        segments.extend(found.into_iter().take(kept).map(|mut s| {
            s.start += offset;
            s.end += offset;
            for w in &mut s.words {
                w.start += offset;
                w.end += offset;
            }
            s
        }));
        let cut_samples = ((cut * SAMPLE_RATE as f64) as usize).min(buffer.len());
        buffer.drain(..cut_samples);
        offset += cut_samples as f64 / SAMPLE_RATE as f64;
        progress(offset);
        if last {
            offset += buffer.len() as f64 / SAMPLE_RATE as f64;
            break;
        }
    }
    stream.finish()?;
    if let Some(labels) = assign_speakers(&voices) {
        for (segment, label) in segments.iter_mut().zip(labels) {
            segment.speaker = Some(format!("spk_{label}"));
        }
    }
    Ok(Transcribed {
        segments,
        duration_seconds: offset,
        // No window had sound: nothing was decoded (the transcript is refused for it).
        language: language.unwrap_or_else(|| "en".into()),
    })
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

    #[test]
    fn windows_keep_finished_segments_and_restart_after_the_last_one() {
        let w = Windowing {
            window_seconds: 300.0,
            guard_seconds: 8.0,
        };
        assert_eq!(
            keep_until(&[10.0, 150.0, 290.0, 299.0], 300.0, w, false),
            (3, 290.0)
        );
        assert_eq!(keep_until(&[10.0, 299.0], 300.0, w, true), (2, 300.0));
        // Nothing finished in time: still advance.
        assert_eq!(keep_until(&[299.5], 300.0, w, false), (0, 292.0));
        assert_eq!(
            keep_until(
                &[],
                20.0,
                Windowing {
                    window_seconds: 20.0,
                    guard_seconds: 15.0
                },
                false
            ),
            (0, 10.0)
        );
    }
}
