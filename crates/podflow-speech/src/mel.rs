//! Whisper's log-mel front end, for engines that take features rather than samples
//! (CTranslate2): a centred STFT (400-point periodic Hann window, hop 160, reflected at the
//! edges), power spectrum, the model's mel filterbank, log10, a floor 8 below the peak and
//! Whisper's `(x + 4) / 4` scaling. Hand-written because it is forty lines over `rustfft`
//! and must match what the model was trained on exactly.

use std::sync::Arc;

use rustfft::{Fft, FftPlanner, num_complex::Complex};

use crate::audio::hann;

const N_FFT: usize = 400;
const HOP: usize = 160;
const BINS: usize = N_FFT / 2 + 1;

pub struct LogMel {
    n_mels: usize,
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
}

impl LogMel {
    pub fn new(n_mels: usize) -> Self {
        Self {
            n_mels,
            filters: mel_filters(n_mels),
            window: hann(N_FFT),
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Features of a whole stretch of audio, computed as faster-whisper computes a file's
    /// (and so as the model was trained): one frame per 160 samples over the audio with
    /// 160 zeros appended, reflected at its two ends, the floor 8 below the loudest value
    /// of the whole stretch. Windows cut from it (see [`MelFrames::window`]) see the real
    /// audio at their edges and share one floor; computing each window on its own changed
    /// the int8 transcripts (and their WER) measurably.
    pub fn frames(&self, samples: &[f32]) -> MelFrames {
        let content = samples.len() / HOP;
        // The STFT's last frame (centred on the appended zeros) is dropped, as in Whisper.
        let frames = content + 1;
        let padded = samples.len() + HOP;
        let sample = |i: isize| -> f32 {
            // numpy's `reflect` padding of the zero-extended audio.
            let last = padded as isize - 1;
            let j = if i < 0 {
                -i
            } else if i > last {
                2 * last - i
            } else {
                i
            };
            samples
                .get(j.clamp(0, last) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let mut data = vec![0f32; self.n_mels * frames];
        let mut buf = vec![Complex::new(0f32, 0f32); N_FFT];
        let mut power = [0f32; BINS];
        let mut peak = f32::NEG_INFINITY;
        for f in 0..frames {
            let centre = (f * HOP) as isize;
            for (k, slot) in buf.iter_mut().enumerate() {
                let x = sample(centre - (N_FFT / 2) as isize + k as isize);
                *slot = Complex::new(x * self.window[k], 0.0);
            }
            self.fft.process(&mut buf);
            for (p, c) in power.iter_mut().zip(&buf) {
                *p = c.norm_sqr();
            }
            for m in 0..self.n_mels {
                let row = &self.filters[m * BINS..(m + 1) * BINS];
                let energy: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                let v = energy.max(1e-10).log10();
                peak = peak.max(v);
                data[m * frames + f] = v;
            }
        }
        for v in &mut data {
            *v = (v.max(peak - 8.0) + 4.0) / 4.0;
        }
        MelFrames {
            n_mels: self.n_mels,
            frames,
            content,
            data,
        }
    }
}

/// Log-mel features of a stretch of audio, mel band major.
pub struct MelFrames {
    n_mels: usize,
    /// Frames stored per band: `content` and the one after the audio.
    frames: usize,
    content: usize,
    data: Vec<f32>,
}

impl MelFrames {
    /// Frames that cover the audio (one per 160 samples).
    pub fn content_frames(&self) -> usize {
        self.content
    }

    /// Frames `start..start + count` (clipped to the audio) as `n_mels × width`, zero past
    /// them: the encoder's input for one window, padded as Whisper pads a short one.
    pub fn window(&self, start: usize, count: usize, width: usize) -> Vec<f32> {
        let start = start.min(self.content);
        let count = count.min(width).min(self.content - start);
        let mut out = vec![0f32; self.n_mels * width];
        for m in 0..self.n_mels {
            let from = m * self.frames + start;
            out[m * width..m * width + count].copy_from_slice(&self.data[from..from + count]);
        }
        out
    }
}

/// Whisper's 80-bin mel filterbank (librosa's Slaney scale and normalisation) for 16 kHz
/// audio and a 400-point FFT: `n_mels × 201` weights.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    const SR: f64 = 16000.0;
    const N_FFT: usize = 400;
    let n_freqs = N_FFT / 2 + 1;
    let hz_to_mel = |f: f64| {
        let f_sp = 200.0 / 3.0;
        let min_log_hz = 1000.0;
        let min_log_mel = min_log_hz / f_sp;
        let logstep = 6.4f64.ln() / 27.0;
        if f >= min_log_hz {
            min_log_mel + (f / min_log_hz).ln() / logstep
        } else {
            f / f_sp
        }
    };
    let mel_to_hz = |m: f64| {
        let f_sp = 200.0 / 3.0;
        let min_log_hz = 1000.0;
        let min_log_mel = min_log_hz / f_sp;
        let logstep = 6.4f64.ln() / 27.0;
        if m >= min_log_mel {
            min_log_hz * (logstep * (m - min_log_mel)).exp()
        } else {
            f_sp * m
        }
    };
    let max_mel = hz_to_mel(SR / 2.0);
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
        .collect();
    let fft_f: Vec<f64> = (0..n_freqs)
        .map(|i| SR / 2.0 * i as f64 / (n_freqs - 1) as f64)
        .collect();
    let mut weights = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (k, f) in fft_f.iter().enumerate() {
            let lower = (f - mel_f[m]) / (mel_f[m + 1] - mel_f[m]);
            let upper = (mel_f[m + 2] - f) / (mel_f[m + 2] - mel_f[m + 1]);
            weights[m * n_freqs + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_are_triangles_with_slaney_area_normalisation() {
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().all(|w| *w >= 0.0));
            assert!(row.iter().any(|w| *w > 0.0), "filter {m} is empty");
        }
        // Each filter peaks at a higher frequency bin than the one before.
        let peaks: Vec<usize> = (0..80)
            .map(|m| {
                let row = &f[m * 201..(m + 1) * 201];
                (0..201)
                    .max_by(|a, b| row[*a].total_cmp(&row[*b]))
                    .unwrap_or(0)
            })
            .collect();
        assert!(peaks.windows(2).all(|p| p[0] <= p[1]), "{peaks:?}");
        assert!(peaks[79] > 150);
    }

    #[test]
    fn a_tone_lights_the_band_of_its_frequency_and_padding_stays_zero() {
        let mel = LogMel::new(80);
        // One second of 1 kHz, in a 2-second window.
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let features = mel.frames(&tone).window(0, 200, 200);
        let frame = 50;
        let band = |m: usize| features[m * 200 + frame];
        let loudest = (0..80)
            .max_by(|&a, &b| band(a).total_cmp(&band(b)))
            .unwrap_or(0);
        // Slaney mel: 1 kHz sits at mel 15, band index 15 × 80 / (mel(8 kHz) ≈ 45.2) ≈ 26.
        assert!((24..=28).contains(&loudest), "loudest band {loudest}");
        // The peak maps to (peak + 4) / 4 and everything is within 8 (2 after scaling).
        let max = features[..].iter().cloned().fold(f32::MIN, f32::max);
        assert!(
            features[..80 * 200]
                .iter()
                .all(|&v| v >= max - 2.0 - 1e-4 || v == 0.0)
        );
        assert!((100..200).all(|f| (0..80).all(|m| features[m * 200 + f] == 0.0)));
        // A window later in the audio is the same frames, shifted.
        let all = mel.frames(&tone);
        let later = all.window(40, 30, 50);
        assert_eq!(later[50 * 26 + 5], all.window(0, 100, 100)[100 * 26 + 45]);
        assert!((30..50).all(|f| later[f] == 0.0));
    }
}
