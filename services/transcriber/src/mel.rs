//! Whisper's log-mel front end, for engines that take features rather than samples
//! (CTranslate2): a centred STFT (400-point periodic Hann window, hop 160, reflected at the
//! edges), power spectrum, the model's mel filterbank, log10, a floor 8 below the peak and
//! Whisper's `(x + 4) / 4` scaling. Hand-written because it is forty lines over `rustfft`
//! and must match what the model was trained on exactly.

use std::sync::Arc;

use rustfft::{Fft, FftPlanner, num_complex::Complex};

use crate::{audio::hann, model::mel_filters};

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

    /// Features of `samples` as `n_mels × frames` (mel band major), one frame per 160
    /// samples; frames past the end of the audio are zero, as Whisper pads a short window.
    pub fn window(&self, samples: &[f32], frames: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n_mels * frames];
        let content = (samples.len() / HOP).min(frames);
        if content == 0 {
            return out;
        }
        // Reflect at the edges, as a centred STFT pads.
        let len = samples.len() as isize;
        let sample = |i: isize| {
            let j = if i < 0 {
                -i
            } else if i >= len {
                2 * (len - 1) - i
            } else {
                i
            };
            samples
                .get(j.clamp(0, len - 1) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let mut buf = vec![Complex::new(0f32, 0f32); N_FFT];
        let mut power = [0f32; BINS];
        let mut peak = f32::NEG_INFINITY;
        for f in 0..content {
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
                out[m * frames + f] = v;
            }
        }
        for m in 0..self.n_mels {
            for v in &mut out[m * frames..m * frames + content] {
                *v = (v.max(peak - 8.0) + 4.0) / 4.0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lights_the_band_of_its_frequency_and_padding_stays_zero() {
        let mel = LogMel::new(80);
        // One second of 1 kHz, in a 2-second window.
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let features = mel.window(&tone, 200);
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
    }
}
