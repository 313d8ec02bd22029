//! Local speech-to-text with CTranslate2 (through `ct2rs`), the engine faster-whisper runs
//! on, with the CTranslate2 model directory loaded as it is (int8 at load time).
//!
//! The long-form loop is ours and follows faster-whisper's: 30-second windows over a
//! stream of samples, each decoded once with beam search and again at rising temperatures
//! when its text looks wrong (compression ratio, mean log-probability); the next window
//! starts at the last timestamp the model closed, so no sentence is cut; the previous
//! windows' tokens condition the next; windows the model calls non-speech are skipped. The
//! language is settled once per file, before any piece starts: the one given, or the one
//! CTranslate2 identifies on the first 30 s with sound.
//!
//! Longer than most files here: the loop, its fallback, the timestamp split and the word
//! alignment read and write one window's state, and splitting them would pass that state
//! through every call.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
};

use async_trait::async_trait;
use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper, WhisperOptions};
use podflow_core::{
    PortError, SpeechToText,
    language::Language,
    transcript::{TimedWord, Transcript, TranscriptSegment},
};

use crate::{
    audio::{
        LoadFailure, Pieces, SAMPLE_RATE, SILENCE_PEAK, Transcribed, beams_from_env, fit_to_speech,
        is_non_speech, log_progress, piece_seconds, threads_from_env, transcribe_blocking,
    },
    compute::{self, ComputeChoice, ComputeKind, PickError},
    language::{self, Decision},
    mel::LogMel,
    model,
    speakers::{SegmentVoice, VoicePrinter, assign_speakers},
};

/// Mel frames per window (30 s) and samples per frame.
const WINDOW_FRAMES: usize = 3000;
const HOP: usize = 160;
/// Seconds per timestamp token, and mel frames per timestamp step.
const TIME_PRECISION: f64 = 0.02;
const FRAMES_PER_TIMESTAMP: usize = 2;
/// faster-whisper's defaults, which its word error rates were measured with.
const TEMPERATURES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
const COMPRESSION_RATIO_LIMIT: f64 = 2.4;
const LOG_PROB_LIMIT: f64 = -1.0;
const NO_SPEECH_LIMIT: f32 = 0.6;
const MAX_LENGTH: usize = 448;
/// At most this many previous tokens condition a window (half the decoder's context).
const PROMPT_TOKENS: usize = MAX_LENGTH / 2 - 1;

/// Token ids and spellings of the model's vocabulary (`vocabulary.txt`).
struct Vocabulary {
    tokens: Vec<String>,
    eot: usize,
    sot: usize,
    timestamp_begin: usize,
    byte_of: std::collections::HashMap<char, u8>,
}

impl Vocabulary {
    fn read(dir: &Path) -> Result<Self, String> {
        let path = dir.join("vocabulary.txt");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let tokens: Vec<String> = text.lines().map(str::to_owned).collect();
        let find = |t: &str| {
            tokens
                .iter()
                .position(|x| x == t)
                .ok_or_else(|| format!("{} lacks the token {t}", path.display()))
        };
        Ok(Self {
            eot: find("<|endoftext|>")?,
            sot: find("<|startoftranscript|>")?,
            timestamp_begin: find("<|0.00|>")?,
            byte_of: model::unicode_to_byte(),
            tokens,
        })
    }

    /// The text of `ids`, special and timestamp tokens left out.
    fn text(&self, ids: &[usize]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|&&id| id < self.eot)
            .filter_map(|&id| self.tokens.get(id))
            .flat_map(|t| t.chars().filter_map(|c| self.byte_of.get(&c).copied()))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Does the token start a new word (its spelling begins with a space, `Ġ`)?
    fn starts_word(&self, id: usize) -> bool {
        self.spelling(id).starts_with('Ġ')
    }

    fn spelling(&self, id: usize) -> &str {
        self.tokens.get(id).map_or("", String::as_str)
    }

    fn id(&self, token: &str) -> Option<usize> {
        self.tokens.iter().position(|t| t == token)
    }
}

struct LoadedModel {
    /// One model per worker, each on one thread: the pieces transcribed at once. Loaded
    /// side by side when a run knows how many pieces it has (audio of one piece never loads
    /// a second), else by a worker when it first gets a piece.
    replicas: Vec<OnceLock<Result<Whisper, String>>>,
    dir: PathBuf,
    vocabulary: Vocabulary,
    /// Whether decoding is told the language and the task (not an `.en` model).
    multilingual: bool,
    /// The language asked for, as settled against this model.
    language: Decision,
    /// What the language setting adds to the fingerprint ([`language::fingerprint_suffix`]).
    fingerprint_suffix: String,
    mel: LogMel,
    name: String,
    /// `<sha256 of model.bin>-ct2-int8`, hashed when `prepare` first asks for it.
    fingerprint: OnceLock<Result<String, String>>,
    /// The compute type asked for, and the one the first model loaded in.
    choice: ComputeChoice,
    compute: OnceLock<Result<ComputeKind, String>>,
}

impl LoadedModel {
    fn fingerprint(&self) -> Result<&str, PortError> {
        self.fingerprint
            .get_or_init(|| {
                // The compute type is left out of the key: a transcript made in float32 on one
                // CPU is the same work as int8 on another, and moving machines must not
                // transcribe everything again. (`int8` is part of the key's format only.)
                model::ct2_fingerprint(&self.dir)
                    .map(|f| format!("{f}-ct2-int8{}", self.fingerprint_suffix))
                    .map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(|e| PortError::setup(e.clone()))
    }
}

/// Loads one single-threaded copy of the model in `kind`.
fn load_whisper(dir: &Path, kind: ComputeKind) -> Result<Whisper, String> {
    let config = Config {
        device: Device::CPU,
        compute_type: ct2_compute_type(kind),
        // One thread per model and one model per core. CTranslate2's threads synchronise on
        // every small operation, and decoding (most of the time) does not spread over them:
        // on 2 cores two threads in one model were slower than one. Two models on two
        // pieces of the audio share nothing and do use both cores. (Two replicas in one
        // CTranslate2 pool, `device_indices: [0, 0]`, hung in `generate`.)
        num_threads_per_replica: 1,
        ..Config::default()
    };
    Whisper::new(dir, config).map_err(|e| e.to_string())
}

fn ct2_compute_type(kind: ComputeKind) -> ComputeType {
    match kind {
        ComputeKind::Int8 => ComputeType::INT8,
        ComputeKind::Int8Float32 => ComputeType::INT8_FLOAT32,
        ComputeKind::Int8Float16 => ComputeType::INT8_FLOAT16,
        ComputeKind::Int8Bfloat16 => ComputeType::INT8_BFLOAT16,
        ComputeKind::Int16 => ComputeType::INT16,
        ComputeKind::Float32 => ComputeType::FLOAT32,
        ComputeKind::Float16 => ComputeType::FLOAT16,
        ComputeKind::Bfloat16 => ComputeType::BFLOAT16,
    }
}

impl LoadedModel {
    /// The tokens each window's decoding starts with: `<|startoftranscript|>` alone for an
    /// English-only model; the language's token and `<|transcribe|>` after it for a
    /// multilingual one.
    fn sot_sequence(&self, language: &str) -> Result<Vec<usize>, PortError> {
        let mut sequence = vec![self.vocabulary.sot];
        if self.multilingual {
            for token in [
                format!("<|{}|>", language::whisper_code(language)),
                "<|transcribe|>".to_owned(),
            ] {
                let id = self.vocabulary.id(&token).ok_or_else(|| {
                    PortError::setup(format!(
                        "Whisper model {} has no token {token}",
                        self.dir.display()
                    ))
                })?;
                sequence.push(id);
            }
        }
        Ok(sequence)
    }

    /// Worker `index`'s model, loaded on first use. The first model loaded picks the compute
    /// type (see [`compute::pick`]); the others load in the type it picked.
    fn replica(&self, index: usize) -> Result<&Whisper, PortError> {
        self.replicas
            .get(index)
            .ok_or_else(|| PortError::setup(format!("no model for worker {index}")))?
            .get_or_init(|| {
                let mut first = None;
                let kind = self.compute.get_or_init(|| {
                    let picked = compute::pick(self.choice, |kind| load_whisper(&self.dir, kind))
                        .map_err(|e| match e {
                            PickError::Unsupported(text) => text,
                            PickError::Model(text) => {
                                format!("CTranslate2 could not load {}: {text}", self.dir.display())
                            }
                        })?;
                    for (kind, reason) in &picked.refused {
                        tracing::info!(compute_type = %kind, %reason, "CTranslate2 compute type not supported on this CPU");
                    }
                    tracing::info!(compute_type = %picked.kind, choice = %self.choice, model = %self.name, "CTranslate2 loaded the model");
                    first = Some(picked.model);
                    Ok(picked.kind)
                });
                match (first, kind) {
                    (Some(model), _) => Ok(model),
                    (None, Ok(kind)) => load_whisper(&self.dir, *kind).map_err(|e| {
                        format!("CTranslate2 could not load {} as {kind}: {e}", self.dir.display())
                    }),
                    (None, Err(e)) => Err(e.clone()),
                }
            })
            .as_ref()
            .map_err(|e| PortError::setup(e.clone()))
    }

    /// Starts loading the first `count` models, each on its own thread, so that they load
    /// at once; a worker asking for one still loading waits for it.
    fn warm(self: &Arc<Self>, count: usize) {
        for index in 0..count.min(self.replicas.len()) {
            if self.replicas[index].get().is_none() {
                let model = Arc::clone(self);
                std::thread::spawn(move || {
                    let _ = model.replica(index);
                });
            }
        }
    }
}

/// Whisper through CTranslate2. The model is loaded on first use, as for whisper.cpp.
pub struct Ct2Engine {
    source: Option<PathBuf>,
    language: Language,
    beams: usize,
    /// Pieces transcribed at once, one model each (`PODFLOW_WHISPER_THREADS`).
    workers: usize,
    loaded: OnceLock<Result<Arc<LoadedModel>, LoadFailure>>,
}

impl Ct2Engine {
    /// `source`: a CTranslate2 model directory (default: [`locate::model`]). The language
    /// is identified from the audio unless [`Ct2Engine::with_language`] says otherwise.
    pub fn new(source: Option<PathBuf>) -> Self {
        Self {
            source,
            language: Language::Auto,
            beams: beams_from_env(),
            workers: threads_from_env(),
            loaded: OnceLock::new(),
        }
    }

    /// Transcribes in `language` (checked against the model when it loads).
    pub fn with_language(mut self, language: Language) -> Self {
        self.language = language;
        self.loaded = OnceLock::new();
        self
    }

    fn load(&self) -> Result<&Arc<LoadedModel>, PortError> {
        self.loaded
            .get_or_init(|| {
                let dir = match &self.source {
                    Some(p) => p.clone(),
                    None => crate::locate::model().map_err(|e| e.to_string())?,
                };
                let choice = ComputeChoice::from_env()?;
                let shape = model::ct2_shape(&dir).map_err(|e| e.to_string())?;
                let vocabulary = Vocabulary::read(&dir)?;
                let decision =
                    language::decide(&self.language, &shape.name, shape.multilingual, |code| {
                        vocabulary.id(&format!("<|{code}|>")).is_some()
                    })
                    .map_err(LoadFailure::input)?;
                let replicas = (0..self.workers).map(|_| OnceLock::new()).collect();
                Ok(Arc::new(LoadedModel {
                    replicas,
                    dir,
                    vocabulary,
                    multilingual: shape.multilingual,
                    language: decision,
                    fingerprint_suffix: language::fingerprint_suffix(
                        &self.language,
                        shape.multilingual,
                    ),
                    mel: LogMel::new(shape.n_mels),
                    name: shape.name,
                    fingerprint: OnceLock::new(),
                    choice,
                    compute: OnceLock::new(),
                }))
            })
            .as_ref()
            .map_err(LoadFailure::port)
    }

    /// Loads the first model (picking the compute type) without hashing it: whether this
    /// engine can run here at all.
    pub fn load_first_model(&self) -> Result<(), PortError> {
        self.load()?.replica(0).map(|_| ())
    }

    /// The compute type the models run in, once the first one has loaded.
    pub fn compute_type(&self) -> Option<ComputeKind> {
        let loaded = self.loaded.get()?.as_ref().ok()?;
        loaded.compute.get()?.as_ref().ok().copied()
    }

    /// Transcribes a window at a time; `progress` hears the seconds of audio done so far.
    /// The audio's length (`duration_seconds`, probed when not given) sizes the pieces.
    pub async fn transcribe_with_progress(
        &self,
        audio: &Path,
        duration_seconds: Option<f64>,
        progress: impl Fn(f64) + Send + Sync + 'static,
    ) -> Result<Transcript, PortError> {
        // ffprobe (for the piece length) and ffmpeg's start run while the model loads: on a
        // short clip, start-up is a good part of the time.
        let (path, workers) = (audio.to_owned(), self.workers);
        let opening = tokio::task::spawn_blocking(move || {
            let probe = duration_seconds.or_else(|| podflow_media::duration_seconds(&path));
            let seconds = piece_seconds(probe, workers, MIN_PIECE_SECONDS, MAX_PIECE_SECONDS);
            let count = probe.map_or(workers, |d| (d / seconds).round().max(1.0) as usize);
            Pieces::open(&path, seconds).map(|pieces| (pieces, count))
        });
        let loaded = self.load().cloned();
        let opened = opening
            .await
            .map_err(|e| PortError::setup(format!("opening the audio failed: {e}")))?;
        let loaded = loaded?;
        let (pieces, count) = opened?;
        loaded.warm(count);
        let model = loaded.name.clone();
        let beams = self.beams;
        transcribe_blocking(audio, self.engine(), model, move || {
            transcribe_stream(&loaded, pieces, beams, &progress)
        })
        .await
    }
}

#[async_trait]
impl SpeechToText for Ct2Engine {
    fn engine(&self) -> &str {
        "ctranslate2"
    }

    fn model(&self) -> &str {
        self.load().map_or("unavailable", |m| m.name.as_str())
    }

    fn model_fingerprint(&self) -> &str {
        self.load()
            .ok()
            .and_then(|m| m.fingerprint().ok())
            .unwrap_or("unavailable")
    }

    /// Loads the model and hashes it: the pipeline keys its cache on the fingerprint.
    fn prepare(&self) -> Result<(), PortError> {
        self.load_first_model()?;
        self.load()?.fingerprint().map(|_| ())
    }

    async fn transcribe(
        &self,
        audio: &Path,
        duration_seconds: Option<f64>,
    ) -> Result<Transcript, PortError> {
        self.transcribe_with_progress(audio, duration_seconds, log_progress(audio))
            .await
    }
}

/// One decoding of a window.
struct Decoded {
    tokens: Vec<usize>,
    avg_log_prob: f64,
    compression_ratio: f64,
    no_speech_prob: f32,
    temperature: f32,
}

/// zlib's compression ratio of the text: high for the loops Whisper falls into.
fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(text.as_bytes(), 6);
    text.len() as f64 / compressed.len().max(1) as f64
}

/// Decodes one window's encoder output: beam search, then sampling at rising temperatures
/// while the text looks wrong; the best attempt wins if none passes.
fn decode_with_fallback(
    model: &LoadedModel,
    whisper: &Whisper,
    encoded: &StorageView,
    prompt: &[String],
    beams: usize,
) -> Result<Decoded, PortError> {
    let mut attempts: Vec<Decoded> = Vec::new();
    for temperature in TEMPERATURES {
        let options = if temperature > 0.0 {
            WhisperOptions {
                beam_size: 1,
                num_hypotheses: 5,
                sampling_topk: 0,
                sampling_temperature: temperature,
                ..options()
            }
        } else {
            WhisperOptions {
                beam_size: beams.max(1),
                patience: 1.0,
                num_hypotheses: 1,
                ..options()
            }
        };
        let results = whisper
            .generate(encoded, &[prompt.to_vec()], &options)
            .map_err(|e| PortError::setup(format!("CTranslate2: {e}")))?;
        let Some(result) = results.into_iter().next() else {
            return Err(PortError::setup("CTranslate2 returned no result"));
        };
        let Some(tokens) = result.sequences_ids.into_iter().next() else {
            return Err(PortError::setup("CTranslate2 returned no sequence"));
        };
        let score = result.scores.first().copied().unwrap_or(f32::NEG_INFINITY) as f64;
        // CTranslate2 returns the log-probability divided by length (length penalty 1);
        // faster-whisper averages over length + 1 (the end token).
        let cumulative = score * tokens.len() as f64;
        let attempt = Decoded {
            avg_log_prob: cumulative / (tokens.len() + 1) as f64,
            compression_ratio: compression_ratio(model.vocabulary.text(&tokens).trim()),
            no_speech_prob: result.no_speech_prob,
            temperature,
            tokens,
        };
        let silent =
            attempt.no_speech_prob > NO_SPEECH_LIMIT && attempt.avg_log_prob < LOG_PROB_LIMIT;
        let looks_right = attempt.compression_ratio <= COMPRESSION_RATIO_LIMIT
            && attempt.avg_log_prob >= LOG_PROB_LIMIT;
        if silent || looks_right {
            return Ok(attempt);
        }
        attempts.push(attempt);
    }
    // Prefer attempts that are not loops, then the most probable. It counts as decoded at
    // the last temperature (as in Whisper), so the next window starts without a prompt.
    let last_temperature = TEMPERATURES[TEMPERATURES.len() - 1];
    let best = attempts
        .into_iter()
        .max_by(|a, b| {
            let key = |d: &Decoded| {
                (
                    d.compression_ratio <= COMPRESSION_RATIO_LIMIT,
                    d.avg_log_prob,
                )
            };
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        })
        .ok_or_else(|| PortError::setup("no decoding attempt"))?;
    Ok(Decoded {
        temperature: last_temperature,
        ..best
    })
}

fn options() -> WhisperOptions {
    WhisperOptions {
        length_penalty: 1.0,
        repetition_penalty: 1.0,
        no_repeat_ngram_size: 0,
        max_length: MAX_LENGTH,
        return_scores: true,
        return_no_speech_prob: true,
        max_initial_timestamp_index: 50,
        suppress_blank: true,
        suppress_tokens: vec![-1],
        ..WhisperOptions::default()
    }
}

/// A piece of a window's tokens between two timestamps, times in seconds from the window's
/// start.
#[derive(Debug, PartialEq)]
pub struct TokenSpan {
    pub start: f64,
    pub end: f64,
    pub tokens: Vec<usize>,
}

/// Splits a window's tokens on its timestamp pairs and says how many mel frames the next
/// window starts after: the last closed timestamp, or the whole window when the text ended
/// cleanly (a single timestamp) or carried none.
pub fn split_on_timestamps(
    tokens: &[usize],
    timestamp_begin: usize,
    window_frames: usize,
) -> (Vec<TokenSpan>, usize) {
    let is_ts = |t: usize| t >= timestamp_begin;
    let time = |t: usize| (t - timestamp_begin) as f64 * TIME_PRECISION;
    let single_ending =
        tokens.len() >= 2 && !is_ts(tokens[tokens.len() - 2]) && is_ts(tokens[tokens.len() - 1]);
    let pairs: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
        .collect();
    if pairs.is_empty() {
        let window_seconds = window_frames as f64 * HOP as f64 / SAMPLE_RATE as f64;
        let end = match tokens.iter().rev().find(|&&t| is_ts(t)) {
            Some(&t) if t != timestamp_begin => time(t),
            _ => window_seconds,
        };
        return (
            vec![TokenSpan {
                start: 0.0,
                end,
                tokens: tokens.to_vec(),
            }],
            window_frames,
        );
    }
    let mut cuts = pairs;
    if single_ending {
        cuts.push(tokens.len());
    }
    let mut spans = Vec::new();
    let mut from = 0;
    for &to in &cuts {
        let piece = &tokens[from..to];
        if let (Some(&first), Some(&last)) = (piece.first(), piece.last())
            && is_ts(first)
            && is_ts(last)
        {
            spans.push(TokenSpan {
                start: time(first),
                end: time(last),
                tokens: piece.to_vec(),
            });
        }
        from = to;
    }
    let advance = if single_ending {
        window_frames
    } else {
        (tokens[from - 1] - timestamp_begin) * FRAMES_PER_TIMESTAMP
    };
    (spans, advance.clamp(1, window_frames))
}

/// Encoder frames per second (the cross-attention's time axis).
const ALIGNMENT_FRAMES_PER_SECOND: f64 = 50.0;

/// Word times for each span, from CTranslate2's alignment of the text tokens to the audio
/// (dynamic time warping over the cross-attention heads the model lists): a word starts
/// where its first token starts and ends where the next word starts.
fn word_times(
    model: &LoadedModel,
    whisper: &Whisper,
    encoded: &StorageView,
    spans: &[TokenSpan],
    frames: usize,
    sot_sequence: &[usize],
) -> Result<Vec<Vec<TimedWord>>, PortError> {
    let vocabulary = &model.vocabulary;
    let per_span: Vec<Vec<usize>> = spans
        .iter()
        .map(|s| {
            s.tokens
                .iter()
                .copied()
                .filter(|&t| t < vocabulary.eot)
                .collect()
        })
        .collect();
    let text: Vec<usize> = per_span.iter().flatten().copied().collect();
    if text.is_empty() {
        return Ok(vec![Vec::new(); spans.len()]);
    }
    let aligned = whisper
        .align(
            encoded,
            sot_sequence,
            std::slice::from_ref(&text),
            &[frames],
            7,
        )
        .map_err(|e| PortError::setup(format!("CTranslate2 alignment: {e}")))?;
    // The time each token starts: the first frame the path reaches it.
    let mut token_start: Vec<f64> = Vec::with_capacity(text.len() + 1);
    let mut last = None;
    for step in aligned
        .first()
        .map(|a| a.alignments.as_slice())
        .unwrap_or(&[])
    {
        if last != Some(step.token_x) {
            token_start.push(step.frame_x as f64 / ALIGNMENT_FRAMES_PER_SECOND);
            last = Some(step.token_x);
        }
    }
    let time = |i: usize| token_start.get(i).or(token_start.last()).copied();
    let mut out = Vec::with_capacity(spans.len());
    let mut at = 0; // index of the span's first token in `text`
    for tokens in &per_span {
        let mut words: Vec<(usize, usize)> = Vec::new(); // token ranges
        for (i, &t) in tokens.iter().enumerate() {
            match words.last_mut() {
                Some(w) if !vocabulary.starts_word(t) => w.1 = i + 1,
                _ => words.push((i, i + 1)),
            }
        }
        let timed = words
            .into_iter()
            .filter_map(|(from, to)| {
                let text = vocabulary.text(&tokens[from..to]).trim().to_owned();
                let (start, end) = (time(at + from)?, time(at + to)?);
                (!text.is_empty()).then_some(TimedWord {
                    start,
                    end: end.max(start),
                    text,
                })
            })
            .collect();
        out.push(timed);
        at += tokens.len();
    }
    Ok(out)
}

/// Longest piece of an episode one worker transcribes on its own. A piece starts without
/// the text before it as a prompt (as after a high-temperature window), so pieces are
/// long: minutes, cut in pauses. Shorter episodes get one piece per worker, down to 10 s:
/// a shorter piece still pays a whole window's encoder, but a core left idle costs more
/// (25 s of LibriVox on 2 cores: 2.5–3.0 s in two pieces against 3.3–3.7 s in one).
const MAX_PIECE_SECONDS: f64 = 300.0;
const MIN_PIECE_SECONDS: f64 = 10.0;

/// What one piece gave: its segments and their voice prints, in order.
type PieceTranscript = (Vec<TranscriptSegment>, Vec<SegmentVoice>);

/// Transcribes the file in pieces cut at pauses, one per worker at a time, each worker
/// with its own single-threaded model, and joins their segments in order. Memory holds
/// only the pieces being worked on, however long the episode.
fn transcribe_stream(
    model: &LoadedModel,
    mut pieces: Pieces,
    beams: usize,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Transcribed, PortError> {
    // Every piece decodes in one language, so it is settled before any piece starts: from
    // the first piece's audio when it is to be identified.
    let mut first = pieces.next_piece()?;
    let language = match (&model.language, &first) {
        (Decision::Fixed(code), _) => code.clone(),
        (Decision::Detect, Some((_, samples))) => {
            detect_language(model, model.replica(0)?, samples)?.unwrap_or_else(|| "en".into())
        }
        // No audio: nothing is decoded, and the transcript is refused for it.
        (Decision::Detect, None) => "en".into(),
    };
    let sot_sequence = model.sot_sequence(&language)?;
    let sot_sequence = sot_sequence.as_slice();
    let samples_done = AtomicUsize::new(0);
    let report = |samples: usize| {
        let done = samples_done.fetch_add(samples, Ordering::Relaxed) + samples;
        progress(done as f64 / SAMPLE_RATE as f64);
    };
    let failed = AtomicBool::new(false);
    // A rendezvous channel: a piece is read only when a worker is free to take it. (std's
    // receiver is single-consumer, hence the mutex the workers take turns on.)
    let (send, receive) = mpsc::sync_channel::<(usize, usize, Vec<f32>)>(0);
    let receive = Mutex::new(receive);
    let (read, transcribed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..model.replicas.len())
            .map(|worker| {
                let (receive, report, failed) = (&receive, &report, &failed);
                scope.spawn(move || {
                    let mut done: Vec<(usize, PieceTranscript)> = Vec::new();
                    loop {
                        let next = match receive.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => break,
                        };
                        let Ok((index, start, samples)) = next else {
                            break;
                        };
                        let piece = model.replica(worker).and_then(|whisper| {
                            let decoder = PieceDecoder::new(model, whisper, sot_sequence, beams);
                            decoder.transcribe(&samples, start, &report)
                        });
                        match piece {
                            Ok(piece) => done.push((index, piece)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(done)
                })
            })
            .collect();
        let mut read = || -> Result<(), PortError> {
            let mut index = 0;
            while !failed.load(Ordering::Relaxed)
                && let Some((start, samples)) = match first.take() {
                    Some(piece) => Some(piece),
                    None => pieces.next_piece()?,
                }
            {
                if send.send((index, start, samples)).is_err() {
                    break;
                }
                index += 1;
            }
            Ok(())
        };
        let read = read();
        drop(send);
        let transcribed: Vec<_> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(PortError::setup("a transcription worker panicked")))
            })
            .collect();
        (read, transcribed)
    });
    let mut done: Vec<(usize, PieceTranscript)> = Vec::new();
    for worker in transcribed {
        done.extend(worker?);
    }
    read?;
    let duration = pieces.samples_read() as f64 / SAMPLE_RATE as f64;
    pieces.finish()?;
    done.sort_by_key(|(index, _)| *index);
    let (mut segments, mut voices) = (Vec::new(), Vec::new());
    for (_, (s, v)) in done {
        segments.extend(s);
        voices.extend(v);
    }
    if let Some(labels) = assign_speakers(&voices) {
        for (segment, label) in segments.iter_mut().zip(labels) {
            segment.speaker = Some(format!("spk_{label}"));
        }
    }
    Ok(Transcribed {
        segments,
        duration_seconds: duration,
        language,
    })
}

/// Identifies the language as Whisper does: the decoder's probabilities of the language
/// tokens right after `<|startoftranscript|>`, on the first 30 s of `samples` that are not
/// digital silence (`None` when all of it is). CTranslate2 computes them
/// (`detect_language`); a language token becomes its ISO code.
fn detect_language(
    model: &LoadedModel,
    whisper: &Whisper,
    samples: &[f32],
) -> Result<Option<String>, PortError> {
    let Some(window) = samples
        .chunks(WINDOW_FRAMES * HOP)
        .find(|w| w.iter().any(|x| x.abs() >= SILENCE_PEAK))
    else {
        return Ok(None);
    };
    let features = model.mel.frames(window);
    let frames = features.content_frames().min(WINDOW_FRAMES);
    let mut mel = features.window(0, frames, WINDOW_FRAMES);
    let shape = [1, model.mel.n_mels(), WINDOW_FRAMES];
    let view = StorageView::new(&shape, &mut mel, Device::CPU)
        .map_err(|e| PortError::setup(format!("CTranslate2: {e}")))?;
    let detected = whisper.detect_language(&view).map_err(|e| {
        PortError::setup(format!(
            "CTranslate2 could not identify the language ({e}); give it with --language"
        ))
    })?;
    let best = detected
        .first()
        .and_then(|languages| languages.first())
        .ok_or_else(|| PortError::setup("CTranslate2 identified no language"))?;
    let (token, probability) = read_detection(&format!("{best:?}")).ok_or_else(|| {
        PortError::setup(format!("CTranslate2's language detection said {best:?}"))
    })?;
    let code = language::iso_code(token.trim_start_matches("<|").trim_end_matches("|>"));
    tracing::info!(language = %code, probability, model = %model.name, "identified the language");
    Ok(Some(code))
}

/// The language token and probability of one of CTranslate2's detection results, read from
/// its `Debug` text (`DetectionResult { language: "<|de|>", probability: 0.98 }`): ct2rs
/// 0.10.3 (pinned) keeps the struct's fields private and has no getter, and its derived
/// `Debug` is the one way to them without unsafe code.
fn read_detection(debug: &str) -> Option<(String, f32)> {
    let after = debug.split_once("language: \"")?.1;
    let (token, rest) = after.split_once('"')?;
    let probability = rest
        .split_once("probability: ")?
        .1
        .trim_end_matches(['}', ' '])
        .parse()
        .ok()?;
    (token.starts_with("<|") && token.ends_with("|>")).then(|| (token.to_owned(), probability))
}

/// One piece's decoding so far.
struct PieceDecoder<'a> {
    model: &'a LoadedModel,
    /// This worker's own model.
    whisper: &'a Whisper,
    /// The tokens each window's decoding starts with (the language settled for the file).
    sot_sequence: &'a [usize],
    beams: usize,
    printer: VoicePrinter,
    /// Tokens that may condition the next window.
    context: Vec<usize>,
    segments: Vec<TranscriptSegment>,
    voices: Vec<SegmentVoice>,
}

impl<'a> PieceDecoder<'a> {
    fn new(
        model: &'a LoadedModel,
        whisper: &'a Whisper,
        sot_sequence: &'a [usize],
        beams: usize,
    ) -> Self {
        Self {
            model,
            whisper,
            sot_sequence,
            beams,
            printer: VoicePrinter::new(),
            context: Vec::new(),
            segments: Vec::new(),
            voices: Vec::new(),
        }
    }

    /// Transcribes one piece (`samples`, starting at sample `start` of the file) window by
    /// window; `report` hears how many samples each window moved on.
    fn transcribe(
        mut self,
        samples: &[f32],
        start: usize,
        report: &dyn Fn(usize),
    ) -> Result<PieceTranscript, PortError> {
        let features = self.model.mel.frames(samples);
        let mut seek = 0usize; // in mel frames
        let total_frames = features.content_frames();
        while seek < total_frames {
            let frames = (total_frames - seek).min(WINDOW_FRAMES);
            let window = &samples[seek * HOP..(seek + frames) * HOP];
            let offset = (start + seek * HOP) as f64 / SAMPLE_RATE as f64;
            let advance = if window.iter().all(|x| x.abs() < SILENCE_PEAK) {
                frames
            } else {
                let mut mel = features.window(seek, frames, WINDOW_FRAMES);
                self.window(&mut mel, window, offset)?
            };
            let advance = advance.min(total_frames - seek);
            seek += advance;
            report(advance * HOP);
        }
        // The samples after the last whole frame.
        report(samples.len() - total_frames * HOP);
        Ok((self.segments, self.voices))
    }

    /// Decodes one window (`window`'s samples, `mel` its features, `offset` seconds into
    /// the file) into segments and voice prints; returns how many mel frames the next
    /// window starts after.
    fn window(&mut self, mel: &mut [f32], window: &[f32], offset: f64) -> Result<usize, PortError> {
        let model = self.model;
        let context = &mut self.context;
        let frames = window.len() / HOP;
        let sot_sequence = self.sot_sequence;
        let shape = [1, model.mel.n_mels(), WINDOW_FRAMES];
        let view = StorageView::new(&shape, mel, Device::CPU)
            .map_err(|e| PortError::setup(format!("CTranslate2: {e}")))?;
        let encoded = self
            .whisper
            .encode(&view, false)
            .map_err(|e| PortError::setup(format!("CTranslate2: {e}")))?;
        let mut prompt: Vec<String> = Vec::new();
        if !context.is_empty() {
            prompt.push("<|startofprev|>".into());
            let skip = context.len().saturating_sub(PROMPT_TOKENS);
            prompt.extend(
                context[skip..]
                    .iter()
                    .map(|&t| model.vocabulary.spelling(t).to_owned()),
            );
        }
        prompt.extend(
            sot_sequence
                .iter()
                .map(|&t| model.vocabulary.spelling(t).to_owned()),
        );
        let decoded = decode_with_fallback(model, self.whisper, &encoded, &prompt, self.beams)?;
        if decoded.no_speech_prob > NO_SPEECH_LIMIT && decoded.avg_log_prob < LOG_PROB_LIMIT {
            return Ok(frames);
        }
        let (spans, advance) =
            split_on_timestamps(&decoded.tokens, model.vocabulary.timestamp_begin, frames);
        let window_end = frames as f64 * HOP as f64 / SAMPLE_RATE as f64;
        let words = word_times(model, self.whisper, &encoded, &spans, frames, sot_sequence)?;
        // What conditions the next window: the spans with text and a length, as in Whisper
        // (bracketed sounds included).
        let mut said: Vec<usize> = Vec::new();
        for (span, words) in spans.iter().zip(words) {
            let text = model.vocabulary.text(&span.tokens).trim().to_owned();
            if span.start != span.end && !text.is_empty() {
                said.extend(&span.tokens);
            }
            let end = span.end.min(window_end);
            if span.start >= end || is_non_speech(&text) {
                continue;
            }
            let mut segment = TranscriptSegment {
                start: offset + span.start,
                end: offset + end,
                speaker: None,
                text,
                words: words
                    .into_iter()
                    .map(|w| TimedWord {
                        start: offset + w.start.min(end),
                        end: offset + w.end.min(end),
                        text: w.text,
                    })
                    .collect(),
            };
            fit_to_speech(&mut segment, window, offset);
            let at = |t: f64| (((t - offset) * SAMPLE_RATE as f64) as usize).min(window.len());
            self.voices.push(SegmentVoice {
                print: self
                    .printer
                    .print(&window[at(segment.start)..at(segment.end)]),
                seconds: segment.end - segment.start,
            });
            self.segments.push(segment);
        }
        if decoded.temperature > 0.5 {
            // A window decoded at a high temperature is a poor guide for the next.
            context.clear();
        } else {
            context.extend(said);
        }
        Ok(advance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: usize = 50363; // <|0.00|> in tiny.en

    #[test]
    fn tokens_split_on_timestamp_pairs_and_seek_to_the_last_closed_one() {
        // <|0.00|> a b <|1.00|><|1.20|> c <|2.40|><|2.60|> d   (unfinished last sentence)
        let tokens = [TS, 1, 2, TS + 50, TS + 60, 3, TS + 120, TS + 130, 4];
        let (spans, advance) = split_on_timestamps(&tokens, TS, 3000);
        let times: Vec<_> = spans.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(times, [(0.0, 1.0), (1.2, 2.4)]);
        assert_eq!(spans[1].tokens, [TS + 60, 3, TS + 120]);
        // The unfinished "d" is decoded again from 2.40 s (frame 240).
        assert_eq!(advance, 240);
    }

    #[test]
    fn a_clean_ending_moves_on_a_whole_window() {
        // <|0.00|> a <|1.00|><|1.20|> b <|3.00|>   (single timestamp at the end)
        let tokens = [TS, 1, TS + 50, TS + 60, 2, TS + 150];
        let (spans, advance) = split_on_timestamps(&tokens, TS, 3000);
        let times: Vec<_> = spans.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(times, [(0.0, 1.0), (1.2, 3.0)]);
        assert_eq!(advance, 3000);
    }

    #[test]
    fn text_without_pairs_is_one_span_to_its_last_timestamp() {
        let (spans, advance) = split_on_timestamps(&[TS, 1, 2, TS + 100], TS, 1500);
        assert_eq!(spans.len(), 1);
        assert_eq!((spans[0].start, spans[0].end), (0.0, 2.0));
        assert_eq!(advance, 1500);
        let (spans, _) = split_on_timestamps(&[1, 2], TS, 1500);
        assert_eq!((spans[0].start, spans[0].end), (0.0, 15.0));
    }

    #[test]
    fn a_detection_result_is_read_from_its_debug_text() {
        // The exact text of ct2rs 0.10.3's derived Debug for `DetectionResult`.
        assert_eq!(
            read_detection(r#"DetectionResult { language: "<|de|>", probability: 0.9731 }"#),
            Some(("<|de|>".to_owned(), 0.9731))
        );
        assert_eq!(
            read_detection(r#"DetectionResult { language: "<|haw|>", probability: 1e-5 }"#),
            Some(("<|haw|>".to_owned(), 1e-5))
        );
        // Anything else (a changed layout) is not guessed at.
        assert_eq!(
            read_detection(r#"DetectionResult { language: "de", probability: 0.9 }"#),
            None
        );
        assert_eq!(
            read_detection(r#"DetectionResult { lang: "<|de|>", p: 0.9 }"#),
            None
        );
        assert_eq!(
            read_detection(r#"DetectionResult { language: "<|de|>", probability: high }"#),
            None
        );
    }

    #[test]
    fn repetitive_text_compresses_well() {
        let normal =
            "So today we talk about how podcasts get made, from the first idea to the upload.";
        let looped = "the the the the the the the the the the the the the the the the the the the";
        assert!(compression_ratio(normal) < COMPRESSION_RATIO_LIMIT);
        assert!(compression_ratio(looped) > COMPRESSION_RATIO_LIMIT);
    }
}
