//! Audio in for both engines: the decoded stream (`podflow_media::decode`) cut into pieces,
//! what counts as no speech, and fitting segment times to the speech they hold.
//!
//! A third of the file is tests on generated audio (pieces, cuts, speech edges).

use std::path::Path;

use podflow_core::{
    ErrorKind, PortError,
    transcript::{TimedWord, Transcript, TranscriptSegment},
};

pub use podflow_media::decode::{AudioStream, SAMPLE_RATE};

/// Digital silence: whisper would only hallucinate on it.
pub const SILENCE_PEAK: f32 = 1e-4;

/// Beams of the local decoders: 5 (what the WER figures were measured with) unless
/// `PODFLOW_WHISPER_BEAM` says otherwise; 1 is greedy.
pub fn beams_from_env() -> usize {
    std::env::var("PODFLOW_WHISPER_BEAM")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(5)
}

/// Cores one transcription uses: all unless `PODFLOW_WHISPER_THREADS` says otherwise.
pub fn threads_from_env() -> usize {
    std::env::var("PODFLOW_WHISPER_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// A periodic Hann window of `n` points, for the STFTs of the mel front end and the voice
/// prints.
pub fn hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|k| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * k as f32 / n as f32).cos())
        .collect()
}

/// How long the pieces of an episode of `duration` seconds are when `workers` transcribe
/// one each at a time: equal pieces, a multiple of `workers` of them so that none waits at
/// the end, each at most `max` seconds (and `max` when the duration is unknown). Audio too
/// short for a piece of `min` seconds per worker gets fewer, longer pieces (one below
/// `2 × min`).
pub fn piece_seconds(duration: Option<f64>, workers: usize, min: f64, max: f64) -> f64 {
    let Some(duration) = duration else {
        return max;
    };
    let workers = workers.max(1) as f64;
    let rounds = (duration / (workers * max)).ceil().max(1.0);
    let mut pieces = workers * rounds;
    if duration / pieces < min {
        pieces = (duration / min).floor().max(1.0);
    }
    duration / pieces
}

/// Where to cut between samples `from` and `to`: the middle of the quietest 100-ms stretch,
/// so that a piece ends in a pause rather than in a word.
pub fn quietest_cut(samples: &[f32], from: usize, to: usize) -> usize {
    const FRAME: usize = SAMPLE_RATE / 10;
    let to = to.min(samples.len());
    let from = from.min(to);
    if to - from < FRAME {
        return to;
    }
    let energy = |at: usize| samples[at..at + FRAME].iter().map(|x| x * x).sum::<f32>();
    let quietest = (from..=to - FRAME)
        .step_by(FRAME / 4)
        .min_by(|&a, &b| energy(a).total_cmp(&energy(b)))
        .unwrap_or(from);
    quietest + FRAME / 2
}

/// The audio in pieces of about `target` samples, each cut in a pause found in its last
/// quarter (at most its last 10 s), read from the stream as they are asked for so that only
/// the pieces being transcribed are in memory. Each read looks one search span ahead: audio
/// ending within it joins the last piece rather than making a short one of its own (which
/// would cost a whole window's encoder for a few seconds).
pub struct Pieces {
    stream: AudioStream,
    pending: Vec<f32>,
    /// Sample at which `pending` starts.
    start: usize,
    target: usize,
    ended: bool,
}

impl Pieces {
    pub fn open(path: &Path, piece_seconds: f64) -> Result<Self, PortError> {
        Ok(Self {
            stream: AudioStream::open(path)?,
            pending: Vec::new(),
            start: 0,
            target: ((piece_seconds * SAMPLE_RATE as f64) as usize).max(SAMPLE_RATE),
            ended: false,
        })
    }

    /// The next piece and the sample it starts at; `None` after the last.
    pub fn next_piece(&mut self) -> Result<Option<(usize, Vec<f32>)>, PortError> {
        let search = (self.target / 4).min(10 * SAMPLE_RATE);
        if !self.ended {
            let wanted = (self.target + search).saturating_sub(self.pending.len());
            self.ended = self.stream.read_into(&mut self.pending, wanted)? < wanted;
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let cut = if self.ended {
            self.pending.len()
        } else {
            quietest_cut(&self.pending, self.target - search, self.target)
        };
        let rest = self.pending.split_off(cut);
        let piece = std::mem::replace(&mut self.pending, rest);
        let start = self.start;
        self.start += piece.len();
        Ok(Some((start, piece)))
    }

    /// Samples read so far; after the last piece, the audio's length.
    pub fn samples_read(&self) -> usize {
        self.start + self.pending.len()
    }

    /// Waits for ffmpeg (see [`AudioStream::finish`]).
    pub fn finish(self) -> Result<(), PortError> {
        self.stream.finish()
    }
}

/// What an engine's loop made of a file.
#[derive(Debug)]
pub struct Transcribed {
    pub segments: Vec<TranscriptSegment>,
    /// Seconds of audio read.
    pub duration_seconds: f64,
    /// The ISO code of the language decoded in: the one asked for, or the one identified.
    pub language: String,
}

/// Runs an engine's blocking loop over `audio` off the async runtime, and makes what it
/// found a transcript; audio that held nothing is an error that names the file.
pub async fn transcribe_blocking(
    audio: &Path,
    engine: &str,
    model: String,
    work: impl FnOnce() -> Result<Transcribed, PortError> + Send + 'static,
) -> Result<Transcript, PortError> {
    let done = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PortError::setup(format!("transcription task failed: {e}")))??;
    if done.duration_seconds < 0.1 {
        return Err(PortError::input(format!(
            "{} holds no audio to transcribe",
            audio.display()
        )));
    }
    Ok(Transcript {
        language: done.language,
        duration_seconds: done.duration_seconds,
        engine: engine.into(),
        model,
        segments: done.segments,
    })
}

/// Why an engine could not load, kept to be told again on every later call (the engines
/// load once): a language the model cannot transcribe is the request's fault (`Input`),
/// anything else the machine's (`Setup`).
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub kind: ErrorKind,
    pub message: String,
}

impl LoadFailure {
    pub fn input(message: impl std::fmt::Display) -> Self {
        Self {
            kind: ErrorKind::Input,
            message: message.to_string(),
        }
    }

    pub fn port(&self) -> PortError {
        PortError::new(self.kind, self.message.clone())
    }
}

impl From<String> for LoadFailure {
    fn from(message: String) -> Self {
        Self {
            kind: ErrorKind::Setup,
            message,
        }
    }
}

/// Progress as log lines, for runs without a terminal to draw on.
pub fn log_progress(audio: &Path) -> impl Fn(f64) + Send + Sync + 'static {
    let name = audio.display().to_string();
    move |done| tracing::info!(audio = %name, seconds_done = done, "transcribing")
}

/// Non-speech markers whisper emits for silence or music.
pub fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || ((t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')')))
            && !t[1..t.len() - 1].contains(['[', '('])
}

/// 20 ms loudness frames for [`fit_to_speech`].
const LOUDNESS_FRAME: usize = SAMPLE_RATE / 50;
/// A frame 30 dB below the segment's loudest is quiet.
const QUIET_RATIO: f32 = 0.03;
/// Quiet shorter than this is a gap between words, not a pause (frames).
const PAUSE_FRAMES: usize = 15;
/// Margin kept around the speech, in seconds: captions should not clip a word's edge.
const SPEECH_PAD: f64 = 0.1;

/// Moves a segment's edges in to where its speech is. Whisper's timestamps often run on
/// through the pause after a sentence into the next one's first syllable (2 s after a
/// LibriVox clip, both engines), or start in the pause before; a caption or clip cut on
/// them hangs over silence. The segment's audio is split into stretches of speech at
/// pauses (0.3 s of frames 30 dB below its loudest); the segment then ends with the
/// stretch in which its last word starts and begins with the one in which its first word
/// ends (the first and last stretch when it has no aligned words), keeping `SPEECH_PAD`;
/// its words are kept inside, or shared out when their alignment failed. `samples` start
/// at `samples_start` seconds; a segment without sound is left as it is.
pub fn fit_to_speech(segment: &mut TranscriptSegment, samples: &[f32], samples_start: f64) {
    let at =
        |t: f64| (((t - samples_start).max(0.0) * SAMPLE_RATE as f64) as usize).min(samples.len());
    let (from, to) = (at(segment.start), at(segment.end));
    if from >= to {
        return;
    }
    let loudness: Vec<f32> = samples[from..to]
        .chunks(LOUDNESS_FRAME)
        .map(|f| (f.iter().map(|x| x * x).sum::<f32>() / f.len() as f32).sqrt())
        .collect();
    let loudest = loudness.iter().copied().fold(0.0, f32::max);
    if loudest < SILENCE_PEAK {
        return;
    }
    // Stretches of speech as frame ranges, bridging gaps shorter than a pause.
    let mut stretches: Vec<(usize, usize)> = Vec::new();
    for (i, r) in loudness.iter().enumerate() {
        if *r < loudest * QUIET_RATIO {
            continue;
        }
        match stretches.last_mut() {
            Some(last) if i - last.1 < PAUSE_FRAMES => last.1 = i + 1,
            _ => stretches.push((i, i + 1)),
        }
    }
    let frame_time = |frame: usize| {
        samples_start + (from + (frame * LOUDNESS_FRAME).min(to - from)) as f64 / SAMPLE_RATE as f64
    };
    let aligned = words_are_aligned(segment);
    let first_word_end = segment.words.first().filter(|_| aligned).map(|w| w.end);
    let last_word_start = segment.words.last().filter(|_| aligned).map(|w| w.start);
    let (Some(&head), Some(&tail)) = (stretches.first(), stretches.last()) else {
        return;
    };
    // A word's time may be a frame or two off its audio: 0.1 s of slack.
    let opening = first_word_end
        .and_then(|t| stretches.iter().find(|s| frame_time(s.1) >= t - 0.1))
        .unwrap_or(&head);
    let closing = last_word_start
        .and_then(|t| stretches.iter().rev().find(|s| frame_time(s.0) <= t + 0.1))
        .unwrap_or(&tail);
    let start = frame_time(opening.0) - SPEECH_PAD;
    let end = frame_time(closing.1.max(opening.1)) + SPEECH_PAD;
    segment.start = segment.start.max(start);
    segment.end = segment.end.min(end).max(segment.start);
    if aligned {
        for word in &mut segment.words {
            word.start = word.start.clamp(segment.start, segment.end);
            word.end = word.end.clamp(word.start, segment.end);
        }
    } else {
        spread_words(segment);
    }
}

/// Whether a segment's word times came from a working alignment. When the alignment of
/// text to audio fails (seen around 70 minutes into a 2-hour episode, where the decoded
/// text had also lost sentences), most words pile up at one instant. A word or two held
/// at the segment's end is normal: whisper's closing timestamp is often early.
fn words_are_aligned(segment: &TranscriptSegment) -> bool {
    let instants = segment.words.iter().filter(|w| w.end <= w.start).count();
    !segment.words.is_empty() && instants * 2 <= segment.words.len()
}

/// Stand-in word times for a failed alignment: the segment's time shared out by the
/// words' lengths, so captions and clips still follow the text roughly.
fn spread_words(segment: &mut TranscriptSegment) {
    let weight = |w: &TimedWord| w.text.chars().count() as f64 + 1.0;
    let total: f64 = segment.words.iter().map(weight).sum();
    let per = (segment.end - segment.start) / total.max(1.0);
    let mut at = segment.start;
    for word in &mut segment.words {
        word.start = at;
        at += weight(word) * per;
        word.end = at.min(segment.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize) -> impl Iterator<Item = f32> {
        (0..n).map(|i| if i % 2 == 0 { 0.001 } else { -0.001 })
    }

    fn tone(n: usize) -> impl Iterator<Item = f32> {
        (0..n).map(|i| (i as f32 * 0.2).sin() * 0.5)
    }

    #[test]
    fn pieces_keep_every_worker_busy_and_stay_within_bounds() {
        // 30 min on 2 workers, at most 5 min: 6 pieces of 5 min (3 rounds).
        assert_eq!(piece_seconds(Some(1800.0), 2, 10.0, 300.0), 300.0);
        // 31 min: 8 pieces, not 7 (7 would leave one worker idle for the last round).
        assert!((piece_seconds(Some(1860.0), 2, 10.0, 300.0) - 232.5).abs() < 1e-9);
        // 3 min: one piece per worker.
        assert_eq!(piece_seconds(Some(180.0), 2, 10.0, 300.0), 90.0);
        // 25 s: two pieces; 12 s is too short for two pieces of 10 s, so it is one; on 4
        // workers, 35 s makes 3 pieces rather than 4 below the minimum.
        assert_eq!(piece_seconds(Some(25.0), 2, 10.0, 300.0), 12.5);
        assert_eq!(piece_seconds(Some(12.0), 2, 10.0, 300.0), 12.0);
        assert!((piece_seconds(Some(35.0), 4, 10.0, 300.0) - 35.0 / 3.0).abs() < 1e-9);
        // An unknown length takes the maximum.
        assert_eq!(piece_seconds(None, 2, 10.0, 300.0), 300.0);
        assert_eq!(piece_seconds(Some(180.0), 1, 10.0, 300.0), 180.0);
    }

    #[test]
    fn the_end_of_the_audio_joins_the_last_piece() {
        // 25 s of a steady tone (no pause: cuts land anywhere in the search span) in pieces
        // of 12.5 s: two pieces covering every sample, not a third of a second or so.
        let dir = tempfile::tempdir().expect("tempdir");
        let wav = dir.path().join("tone.wav");
        let made = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=300:duration=25",
            ])
            .args(["-ar", "16000", "-ac", "1"])
            .arg(&wav)
            .status()
            .expect("ffmpeg runs");
        assert!(made.success());
        let mut pieces = Pieces::open(&wav, 12.5).expect("open");
        let mut lengths = Vec::new();
        while let Some((start, piece)) = pieces.next_piece().expect("a piece") {
            assert_eq!(start, lengths.iter().sum::<usize>());
            lengths.push(piece.len());
        }
        assert_eq!(lengths.len(), 2, "{lengths:?}");
        assert_eq!(pieces.samples_read(), 25 * SAMPLE_RATE);
        assert!(
            lengths[0] <= 12 * SAMPLE_RATE + SAMPLE_RATE / 2,
            "{lengths:?}"
        );
        pieces.finish().expect("ffmpeg ends well");
    }

    #[test]
    fn a_cut_falls_in_the_pause() {
        // Sound, a 0.4-s pause from 1.3 s, sound again; the search starts before the pause.
        let rate = SAMPLE_RATE;
        let mut samples: Vec<f32> = tone(rate * 13 / 10).collect();
        samples.extend(noise(rate * 4 / 10));
        samples.extend(tone(rate));
        let cut = quietest_cut(&samples, rate, samples.len());
        let seconds = cut as f64 / rate as f64;
        assert!((1.3..=1.7).contains(&seconds), "cut at {seconds} s");
        // Too little room to search: cut at the end of the range.
        assert_eq!(quietest_cut(&samples, 100, 200), 200);
    }

    fn word(start: f64, end: f64) -> TimedWord {
        TimedWord {
            start,
            end,
            text: "word".into(),
        }
    }

    fn segment(start: f64, end: f64, words: Vec<TimedWord>) -> TranscriptSegment {
        TranscriptSegment {
            start,
            end,
            speaker: None,
            text: "some words".into(),
            words,
        }
    }

    #[test]
    fn segment_edges_move_in_to_the_speech_and_words_follow() {
        // From 10 s: 0.5 s of faint noise, 1 s of speech (a tone), 2 s of faint noise.
        let samples: Vec<f32> = noise(SAMPLE_RATE / 2)
            .chain(tone(SAMPLE_RATE))
            .chain(noise(2 * SAMPLE_RATE))
            .collect();
        let mut fitted = segment(10.0, 13.5, vec![word(10.0, 10.9), word(10.9, 13.4)]);
        fit_to_speech(&mut fitted, &samples, 10.0);
        assert!((fitted.start - 10.4).abs() < 0.03, "{fitted:?}");
        assert!((fitted.end - 11.6).abs() < 0.03, "{fitted:?}");
        assert!((fitted.words[0].start - fitted.start).abs() < 1e-9);
        assert!((fitted.words[1].end - fitted.end).abs() < 1e-9);
        // Speech to the edges, or no sound at all: nothing moves.
        let mut whole = fitted.clone();
        let (start, end) = (whole.start, whole.end);
        fit_to_speech(&mut whole, &vec![0.5; 4 * SAMPLE_RATE], 10.0);
        assert_eq!((whole.start, whole.end), (start, end));
        fit_to_speech(&mut whole, &vec![0.0; 4 * SAMPLE_RATE], 10.0);
        assert_eq!((whole.start, whole.end), (start, end));
    }

    #[test]
    fn a_segment_running_into_the_next_sentence_ends_with_its_last_word() {
        // 1 s of speech, a 1.5 s pause, then the next sentence's first 0.3 s; the last word
        // starts in the first stretch, its time stretched over the pause.
        let samples: Vec<f32> = tone(SAMPLE_RATE)
            .chain(noise(SAMPLE_RATE * 3 / 2))
            .chain(tone(SAMPLE_RATE * 3 / 10))
            .collect();
        let mut fitted = segment(0.0, 2.8, vec![word(0.0, 0.6), word(0.6, 2.75)]);
        fit_to_speech(&mut fitted, &samples, 0.0);
        assert!((fitted.end - 1.1).abs() < 0.03, "{fitted:?}");
        assert_eq!(fitted.start, 0.0);
        // Without words, the segment keeps every stretch it holds.
        let mut unworded = segment(0.0, 2.8, Vec::new());
        fit_to_speech(&mut unworded, &samples, 0.0);
        assert!((unworded.end - 2.8).abs() < 0.03, "{unworded:?}");
    }

    #[test]
    fn words_piled_at_the_end_are_shared_out_over_the_fitted_segment() {
        // 1 s of quiet, 2 s of speech, 1 s of quiet; the alignment put every word at 4 s.
        let samples: Vec<f32> = noise(SAMPLE_RATE)
            .chain(tone(2 * SAMPLE_RATE))
            .chain(noise(SAMPLE_RATE))
            .collect();
        let words = ["one", "two", "three"].map(|t| TimedWord {
            start: 4.0,
            end: 4.0,
            text: t.into(),
        });
        let mut fitted = segment(0.0, 4.0, words.to_vec());
        fit_to_speech(&mut fitted, &samples, 0.0);
        assert!((fitted.start - 0.9).abs() < 0.03, "{fitted:?}");
        assert!((fitted.end - 3.1).abs() < 0.03, "{fitted:?}");
        let w = &fitted.words;
        assert!((w[0].start - fitted.start).abs() < 1e-9 && (w[2].end - fitted.end).abs() < 1e-9);
        assert!(
            w.windows(2)
                .all(|p| p[0].end <= p[1].start + 1e-9 && p[0].start < p[1].start)
        );
        // "three" is the longest word: the longest share.
        assert!(w[2].end - w[2].start > w[0].end - w[0].start, "{w:?}");
    }

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
