//! Local speaker labels: a voice print per transcript segment (mean and spread of 12 MFCCs
//! over its louder frames), then agglomerative clustering (Ward) of the prints, with the
//! number of speakers chosen by silhouette.
//!
//! Simple on purpose: it tells apart voices whose timbre differs and says nothing when
//! the prints show no clear groups (an audiobook, or two voices too alike), so a label is
//! never a guess. Accuracy as measured is in `docs/transcription.md`.
//!
//! The MFCCs are computed here (about 60 lines over `rustfft`) because the Rust MFCC crates
//! are unmaintained or pull in far more than a mel filterbank and a DCT.

use std::sync::Arc;

use rustfft::{Fft, FftPlanner, num_complex::Complex};

const SAMPLE_RATE: f32 = 16_000.0;
/// 25 ms frames every 10 ms, the usual speech analysis grid.
const FRAME: usize = 400;
const HOP: usize = 160;
const FFT_SIZE: usize = 512;
const MEL_BANDS: usize = 40;
/// c1..c12: c0 (loudness) says nothing about who speaks.
const CEPSTRA: usize = 12;
/// Segments shorter than this give prints too noisy to cluster on; they take the label of
/// the nearest group instead.
const MIN_CLUSTER_SECONDS: f64 = 1.0;
/// Fewest frames a print is made from at all.
const MIN_FRAMES: usize = 20;
/// Most speakers considered.
const MAX_SPEAKERS: usize = 6;
/// Mean silhouette a split must reach to be believed. Measured on few recordings (see
/// `docs/transcription.md`): two espeak-ng voices 0.33, a LibriVox reader and an AN4
/// speaker 0.29; one LibriVox reader offers no split with two real groups at all.
const MIN_SILHOUETTE: f64 = 0.2;

/// Computes voice prints from 16 kHz mono samples.
pub struct VoicePrinter {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// `MEL_BANDS` triangular filters over the FFT bins: (first bin, weights).
    filters: Vec<(usize, Vec<f32>)>,
    /// DCT-II rows for c1..=c12.
    dct: Vec<[f32; MEL_BANDS]>,
}

impl std::fmt::Debug for VoicePrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoicePrinter")
    }
}

impl Default for VoicePrinter {
    fn default() -> Self {
        Self::new()
    }
}

impl VoicePrinter {
    pub fn new() -> Self {
        let fft = FftPlanner::new().plan_fft_forward(FFT_SIZE);
        let window = crate::audio::hann(FRAME);
        let mel = |hz: f32| 2595.0 * (1.0 + hz / 700.0).log10();
        let hz = |mel: f32| 700.0 * (10f32.powf(mel / 2595.0) - 1.0);
        let (lo, hi) = (mel(60.0), mel(7600.0));
        let bin = |m: f32| hz(m) * FFT_SIZE as f32 / SAMPLE_RATE;
        let edges: Vec<f32> = (0..MEL_BANDS + 2)
            .map(|i| bin(lo + (hi - lo) * i as f32 / (MEL_BANDS + 1) as f32))
            .collect();
        let filters = edges
            .windows(3)
            .map(|e| {
                let first = e[0].ceil() as usize;
                let last = (e[2].floor() as usize).min(FFT_SIZE / 2);
                let weights = (first..=last)
                    .map(|k| {
                        let k = k as f32;
                        if k <= e[1] {
                            (k - e[0]) / (e[1] - e[0]).max(1e-6)
                        } else {
                            (e[2] - k) / (e[2] - e[1]).max(1e-6)
                        }
                        .max(0.0)
                    })
                    .collect();
                (first, weights)
            })
            .collect();
        let dct = (1..=CEPSTRA)
            .map(|c| {
                let mut row = [0.0; MEL_BANDS];
                for (m, r) in row.iter_mut().enumerate() {
                    *r = (std::f32::consts::PI / MEL_BANDS as f32 * (m as f32 + 0.5) * c as f32)
                        .cos();
                }
                row
            })
            .collect();
        Self {
            fft,
            window,
            filters,
            dct,
        }
    }

    /// The mean and spread of the MFCCs of the louder 60% of the frames (the quiet ones
    /// are pauses and breath), or `None` when there is too little sound for a print.
    pub fn print(&self, samples: &[f32]) -> Option<Vec<f64>> {
        if samples.len() < FRAME {
            return None;
        }
        let mut buf = vec![Complex::new(0.0f32, 0.0); FFT_SIZE];
        let mut frames: Vec<(f32, [f32; CEPSTRA])> = Vec::new();
        for start in (0..=samples.len() - FRAME).step_by(HOP) {
            for (i, b) in buf.iter_mut().enumerate() {
                let x = if i < FRAME {
                    samples[start + i] * self.window[i]
                } else {
                    0.0
                };
                *b = Complex::new(x, 0.0);
            }
            self.fft.process(&mut buf);
            let power: Vec<f32> = buf[..=FFT_SIZE / 2].iter().map(|c| c.norm_sqr()).collect();
            let energy: f32 = power.iter().sum();
            if energy < 1e-6 {
                continue; // digital silence
            }
            let mut log_mel = [0.0f32; MEL_BANDS];
            for (m, (first, weights)) in self.filters.iter().enumerate() {
                let e: f32 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                log_mel[m] = (e + 1e-10).ln();
            }
            let mut cepstra = [0.0f32; CEPSTRA];
            for (c, row) in cepstra.iter_mut().zip(&self.dct) {
                *c = row.iter().zip(&log_mel).map(|(a, b)| a * b).sum();
            }
            frames.push((energy, cepstra));
        }
        if frames.len() < MIN_FRAMES {
            return None;
        }
        frames.sort_by(|a, b| b.0.total_cmp(&a.0));
        let loud = &frames[..(frames.len() * 3).div_ceil(5)];
        let mut mean = vec![0.0f64; CEPSTRA];
        for (_, c) in loud {
            for (m, v) in mean.iter_mut().zip(c) {
                *m += f64::from(*v);
            }
        }
        for m in &mut mean {
            *m /= loud.len() as f64;
        }
        let mut spread = vec![0.0f64; CEPSTRA];
        for (_, c) in loud {
            for ((s, v), m) in spread.iter_mut().zip(c).zip(&mean) {
                *s += (f64::from(*v) - m).powi(2);
            }
        }
        for s in &mut spread {
            *s = (*s / loud.len() as f64).sqrt();
        }
        mean.extend(spread);
        Some(mean)
    }
}

/// One segment's print and length, as the clustering sees it.
#[derive(Debug, Clone)]
pub struct SegmentVoice {
    pub print: Option<Vec<f64>>,
    pub seconds: f64,
}

/// A speaker index per segment (0 = who speaks first), or `None` when the prints show no
/// clear groups: then no segment should be labelled.
pub fn assign_speakers(voices: &[SegmentVoice]) -> Option<Vec<usize>> {
    let clustered: Vec<usize> = (0..voices.len())
        .filter(|&i| voices[i].print.is_some() && voices[i].seconds >= MIN_CLUSTER_SECONDS)
        .collect();
    let n = clustered.len();
    if n < 4 {
        return None;
    }
    let (mean, scale) =
        standardisation(clustered.iter().filter_map(|&i| voices[i].print.as_deref()));
    let z = |p: &[f64]| -> Vec<f64> {
        p.iter()
            .zip(mean.iter().zip(&scale))
            .map(|(x, (m, s))| (x - m) / s)
            .collect()
    };
    let points: Vec<Vec<f64>> = clustered
        .iter()
        .filter_map(|&i| voices[i].print.as_deref().map(z))
        .collect();
    let mut condensed = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            condensed.push(distance(&points[i], &points[j]));
        }
    }
    let distances = condensed.clone();
    let dendrogram = kodama::linkage(&mut condensed, n, kodama::Method::Ward);
    // A speaker has more than a stray segment or two: a split that leaves a group smaller
    // than that has found an outlier (a cough, a laugh), not a person.
    let smallest = (n / 20).max(2);
    let (labels, score) = (2..=MAX_SPEAKERS.min(n / 2))
        .map(|k| cut(&dendrogram, n, k))
        .filter(|labels| {
            let k = labels.iter().max().map_or(0, |m| m + 1);
            (0..k).all(|c| labels.iter().filter(|l| **l == c).count() >= smallest)
        })
        .map(|labels| {
            let score = silhouette(&distances, n, &labels);
            (labels, score)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    tracing::debug!(
        segments = n,
        speakers = labels.iter().max().map_or(0, |m| m + 1),
        silhouette = score,
        "speaker clustering"
    );
    if score < MIN_SILHOUETTE {
        return None;
    }
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let centroids: Vec<Vec<f64>> = (0..k)
        .map(|c| {
            let members: Vec<&Vec<f64>> = points
                .iter()
                .zip(&labels)
                .filter(|(_, l)| **l == c)
                .map(|(p, _)| p)
                .collect();
            (0..mean.len())
                .map(|d| members.iter().map(|p| p[d]).sum::<f64>() / members.len() as f64)
                .collect()
        })
        .collect();
    // Every segment: its cluster, the nearest centroid to its print, or (no print) the
    // previous segment's speaker, since turns run over several segments.
    let mut out: Vec<Option<usize>> = vec![None; voices.len()];
    for (&i, &l) in clustered.iter().zip(&labels) {
        out[i] = Some(l);
    }
    for (i, v) in voices.iter().enumerate() {
        if out[i].is_none()
            && let Some(p) = &v.print
        {
            let p = z(p);
            out[i] = centroids
                .iter()
                .enumerate()
                .min_by(|a, b| distance(a.1, &p).total_cmp(&distance(b.1, &p)))
                .map(|(c, _)| c);
        }
    }
    let first_known = out.iter().flatten().next().copied().unwrap_or(0);
    let mut previous = first_known;
    let filled: Vec<usize> = out
        .into_iter()
        .map(|l| {
            previous = l.unwrap_or(previous);
            previous
        })
        .collect();
    Some(by_first_appearance(&filled))
}

/// Per-dimension mean and standard deviation (floored, so a constant dimension is inert).
fn standardisation<'a>(prints: impl Iterator<Item = &'a [f64]>) -> (Vec<f64>, Vec<f64>) {
    let prints: Vec<&[f64]> = prints.collect();
    let dims = prints.first().map_or(0, |p| p.len());
    let n = prints.len().max(1) as f64;
    let mean: Vec<f64> = (0..dims)
        .map(|d| prints.iter().map(|p| p[d]).sum::<f64>() / n)
        .collect();
    let scale = (0..dims)
        .map(|d| {
            let var = prints.iter().map(|p| (p[d] - mean[d]).powi(2)).sum::<f64>() / n;
            var.sqrt().max(1e-6)
        })
        .collect();
    (mean, scale)
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The clusters left after all but the last `k - 1` merges, numbered 0..k.
fn cut(dendrogram: &kodama::Dendrogram<f64>, n: usize, k: usize) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    // A dendrogram step names clusters: observations 0..n, then n + step for each merge.
    let mut representative: Vec<usize> = (0..n).collect();
    for step in dendrogram.steps().iter().take(n.saturating_sub(k)) {
        let a = root(&mut parent, representative[step.cluster1]);
        let b = root(&mut parent, representative[step.cluster2]);
        parent[b] = a;
        representative.push(a);
    }
    let roots: Vec<usize> = (0..n).map(|i| root(&mut parent, i)).collect();
    by_first_appearance(&roots)
}

/// Mean silhouette (Rousseeuw 1987) over all points; a point alone in its cluster scores 0.
fn silhouette(condensed: &[f64], n: usize, labels: &[usize]) -> f64 {
    let d = |i: usize, j: usize| {
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        condensed[n * i - i * (i + 1) / 2 + (j - i - 1)]
    };
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let sizes: Vec<usize> = (0..k)
        .map(|c| labels.iter().filter(|l| **l == c).count())
        .collect();
    let mut total = 0.0;
    for i in 0..n {
        if sizes[labels[i]] < 2 {
            continue;
        }
        let mut sums = vec![0.0; k];
        for j in 0..n {
            if j != i {
                sums[labels[j]] += d(i, j);
            }
        }
        let a = sums[labels[i]] / (sizes[labels[i]] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != labels[i] && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        total += (b - a) / a.max(b).max(1e-12);
    }
    total / n as f64
}

/// Renumbers labels so 0 is the first to appear, 1 the next...
fn by_first_appearance(labels: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::new();
    labels
        .iter()
        .map(|l| match order.iter().position(|o| o == l) {
            Some(p) => p,
            None => {
                order.push(*l);
                order.len() - 1
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vowel-like sound: harmonics of about `f0` shaped by formants near `formant` Hz,
    /// each segment a little different (as words are) and with a little noise.
    fn voice(f0: f32, formant: f32, seconds: f32, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
        let mut random = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let f0 = f0 * (1.0 + 0.08 * random());
        let formants = [
            formant * (1.0 + 0.15 * random()),
            2.5 * formant * (1.0 + 0.15 * random()),
        ];
        let n = (seconds * SAMPLE_RATE) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE;
                let voiced: f32 = (1..40)
                    .map(|h| {
                        let f = f0 * h as f32;
                        let gain: f32 = formants
                            .iter()
                            .map(|fm| 1.0 / (1.0 + ((f - fm) / 250.0).powi(2)))
                            .sum();
                        gain * (2.0 * std::f32::consts::PI * f * t).sin()
                    })
                    .sum();
                0.05 * voiced + 0.01 * random()
            })
            .collect()
    }

    fn voices_of(samples: &[Vec<f32>]) -> Vec<SegmentVoice> {
        let printer = VoicePrinter::new();
        samples
            .iter()
            .map(|s| SegmentVoice {
                print: printer.print(s),
                seconds: s.len() as f64 / SAMPLE_RATE as f64,
            })
            .collect()
    }

    #[test]
    fn two_different_voices_alternating_get_two_labels() {
        let segments: Vec<Vec<f32>> = (0..8)
            .map(|i| {
                if i % 2 == 0 {
                    voice(110.0, 700.0, 1.5, i)
                } else {
                    voice(210.0, 1800.0, 1.5, i)
                }
            })
            .collect();
        let labels = assign_speakers(&voices_of(&segments)).expect("two voices found");
        assert_eq!(labels, [0, 1, 0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn one_voice_gets_no_labels_rather_than_a_made_up_split() {
        let segments: Vec<Vec<f32>> = (0..8).map(|i| voice(120.0, 900.0, 1.5, i)).collect();
        assert_eq!(assign_speakers(&voices_of(&segments)), None);
    }

    #[test]
    fn short_and_silent_segments_follow_their_neighbours() {
        let mut segments: Vec<Vec<f32>> = (0..6)
            .map(|i| {
                if i < 3 {
                    voice(110.0, 700.0, 1.5, i)
                } else {
                    voice(210.0, 1800.0, 1.5, i)
                }
            })
            .collect();
        segments.insert(3, vec![0.0; 16_000]); // silence: no print
        segments.push(voice(210.0, 1800.0, 0.5, 9)); // short: nearest group
        let voices = voices_of(&segments);
        assert!(voices[3].print.is_none());
        let labels = assign_speakers(&voices).expect("two voices found");
        assert_eq!(labels, [0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn too_few_segments_are_not_clustered() {
        let segments: Vec<Vec<f32>> = (0..3).map(|i| voice(110.0, 700.0, 2.0, i)).collect();
        assert_eq!(assign_speakers(&voices_of(&segments)), None);
        assert_eq!(VoicePrinter::new().print(&[0.1; 100]), None);
    }

    #[test]
    fn cutting_the_dendrogram_gives_k_groups() {
        // Points on a line: {0, 1}, {10, 11}, {30}.
        let xs = [0.0f64, 1.0, 10.0, 11.0, 30.0];
        let n = xs.len();
        let mut condensed = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                condensed.push((xs[i] - xs[j]).abs());
            }
        }
        let d = condensed.clone();
        let dendrogram = kodama::linkage(&mut condensed, n, kodama::Method::Ward);
        assert_eq!(cut(&dendrogram, n, 3), [0, 0, 1, 1, 2]);
        assert_eq!(cut(&dendrogram, n, 5), [0, 1, 2, 3, 4]);
        let good = silhouette(&d, n, &[0, 0, 1, 1, 2]);
        let bad = silhouette(&d, n, &[0, 1, 0, 1, 1]);
        assert!(good > 0.5 && bad < 0.0, "{good} {bad}");
    }
}
