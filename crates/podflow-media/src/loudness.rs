//! Loudness as ffmpeg reports it: the `ebur128` summary ([`measure`], how a finished MP3 is
//! checked against the podcast targets) and the JSON loudnorm prints after a measuring pass
//! ([`parse_loudnorm`], what the second pass of the MP3 encode is given).
//!
//! Both arrive on ffmpeg's stderr at info level; the parsers read text, so they are tested
//! on captured output and the callers decide what a missing figure means.

use std::{ffi::OsString, path::Path, time::Duration};

use podflow_core::PortError;
use serde::Deserialize;

use crate::{ffmpeg::file_arg, tool};

/// Integrated loudness and true peak of a whole file (EBU R128 / ITU BS.1770).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    /// -70 (ebur128's absolute gate) for silence or audio shorter than one 400 ms block.
    pub integrated_lufs: f64,
    /// The highest true (inter-sample) peak over all channels; `-inf` for silence.
    pub true_peak_dbtp: f64,
}

/// Why ffmpeg's report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoudnessReportError {
    #[error("no {0} in ffmpeg's output")]
    Missing(&'static str),
    #[error("loudnorm's figures are not JSON ({0})")]
    Json(#[from] serde_json::Error),
    #[error("loudnorm's {field} is not a number ({value:?})")]
    NotANumber { field: &'static str, value: String },
}

/// Measures `path` with ffmpeg's `ebur128` filter (first audio stream), within `deadline`.
pub async fn measure(path: &Path, deadline: Duration) -> Result<Loudness, PortError> {
    let mut args: Vec<OsString> = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
        .map(Into::into)
        .to_vec();
    args.push("-i".into());
    args.push(file_arg(path));
    // framelog=verbose keeps the ten lines a second out of an info-level log, so the
    // summary is all that is printed after the run (and fits the kept stderr tail).
    args.extend(
        [
            "-vn",
            "-map",
            "0:a:0",
            "-af",
            "ebur128=peak=true:framelog=verbose",
            "-f",
            "null",
            "-",
        ]
        .map(OsString::from),
    );
    let what = format!("the loudness measurement of {}", path.display());
    let out = tool::run("ffmpeg", args, deadline)
        .await
        .map_err(|e| e.into_port_error(&what))?;
    parse_ebur128_summary(&out.stderr_tail)
        .map_err(|e| PortError::setup(format!("measuring the loudness of {}: {e}", path.display())))
}

/// Reads the last `Summary:` block `ebur128=peak=true` prints: its `I:` line and the
/// `Peak:` line under `True peak:`. The last, because ffmpeg 5 configures a
/// `-filter_complex` graph twice and the first, empty instance prints a summary too.
pub fn parse_ebur128_summary(stderr: &str) -> Result<Loudness, LoudnessReportError> {
    let summary = stderr
        .rfind("Summary:")
        .map(|at| &stderr[at..])
        .ok_or(LoudnessReportError::Missing("ebur128 summary"))?;
    let mut integrated = None;
    let mut true_peak = None;
    let mut in_true_peak = false;
    for line in summary.lines().map(str::trim) {
        if line.starts_with("True peak:") {
            in_true_peak = true;
        } else if let Some(rest) = line.strip_prefix("I:") {
            integrated = first_number(rest);
        } else if let Some(rest) = line.strip_prefix("Peak:")
            && in_true_peak
        {
            true_peak = first_number(rest);
        }
    }
    Ok(Loudness {
        integrated_lufs: integrated.ok_or(LoudnessReportError::Missing("integrated loudness"))?,
        true_peak_dbtp: true_peak.ok_or(LoudnessReportError::Missing("true peak"))?,
    })
}

/// `-16.2 LUFS` → -16.2; `-inf dBFS` → -inf (Rust reads `inf` and `-inf`).
fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// What loudnorm measured in a first pass (`print_format=json`), as numbers. Non-finite
/// figures (`-inf` for silence) are kept: the caller decides whether a second pass can
/// use them ([`LoudnormMeasurement::usable`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnormMeasurement {
    pub input_i: f64,
    pub input_tp: f64,
    pub input_lra: f64,
    pub input_thresh: f64,
    pub target_offset: f64,
}

/// The JSON as printed: every value is a string (`"-23.54"`, `"-inf"`).
#[derive(Deserialize)]
struct LoudnormJson {
    input_i: String,
    input_tp: String,
    input_lra: String,
    input_thresh: String,
    target_offset: String,
}

impl LoudnormMeasurement {
    /// Whether loudnorm accepts these as `measured_*`/`offset` options: all finite and in
    /// the ranges its options allow (ffmpeg rejects the whole filter otherwise, e.g. a
    /// gate below -99 LUFS on near-silent audio).
    pub fn usable(&self) -> bool {
        let within = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
        within(self.input_i, -99.0, 0.0)
            && within(self.input_tp, -99.0, 99.0)
            && within(self.input_lra, 0.0, 99.0)
            && within(self.input_thresh, -99.0, 0.0)
            && within(self.target_offset, -99.0, 99.0)
    }
}

/// Reads the JSON block loudnorm prints last on stderr (`print_format=json`).
pub fn parse_loudnorm(stderr: &str) -> Result<LoudnormMeasurement, LoudnessReportError> {
    let start = stderr
        .rfind('{')
        .ok_or(LoudnessReportError::Missing("loudnorm JSON"))?;
    let end = stderr[start..]
        .find('}')
        .map(|len| start + len + 1)
        .ok_or(LoudnessReportError::Missing("end of the loudnorm JSON"))?;
    let json: LoudnormJson = serde_json::from_str(&stderr[start..end])?;
    let number = |field: &'static str, value: &str| {
        value
            .trim()
            .parse::<f64>()
            .map_err(|_| LoudnessReportError::NotANumber {
                field,
                value: value.to_owned(),
            })
    };
    Ok(LoudnormMeasurement {
        input_i: number("input_i", &json.input_i)?,
        input_tp: number("input_tp", &json.input_tp)?,
        input_lra: number("input_lra", &json.input_lra)?,
        input_thresh: number("input_thresh", &json.input_thresh)?,
        target_offset: number("target_offset", &json.target_offset)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ffmpeg -filter_complex ebur128=peak=true` (5.1) on 44 s of stereo speech: the empty
    /// first instance's summary, then the real one.
    const EBUR128: &str = "\
Guessed Channel Layout for Input Stream #0.0 : stereo
Input #0, wav, from 'hot.wav':
  Stream #0:0: Audio: pcm_s16le ([1][0][0][0] / 0x0001), 48000 Hz, stereo, s16, 1536 kb/s
[Parsed_ebur128_0 @ 0x55e3513d13c0] Summary:

  Integrated loudness:
    I:         -70.0 LUFS
    Threshold:   0.0 LUFS

  Loudness range:
    LRA:         0.0 LU
    Threshold:   0.0 LUFS
    LRA low:     0.0 LUFS
    LRA high:    0.0 LUFS

  True peak:
    Peak:       -inf dBFS
Stream mapping:
  Stream #0:0 (pcm_s16le) -> ebur128:default
size=N/A time=00:00:44.01 bitrate=N/A speed= 200x    
video:0kB audio:8253kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
[Parsed_ebur128_0 @ 0x55e3513dbf00] Summary:

  Integrated loudness:
    I:          -8.6 LUFS
    Threshold: -18.7 LUFS

  Loudness range:
    LRA:         1.2 LU
    Threshold: -28.6 LUFS
    LRA low:    -9.2 LUFS
    LRA high:   -8.0 LUFS

  True peak:
    Peak:       -0.3 dBFS
";

    /// `loudnorm=I=-19:TP=-2:LRA=11:print_format=json` on 57 s of quiet mono speech.
    const LOUDNORM: &str = "\
size=N/A time=00:00:56.92 bitrate=N/A speed=  40x    
video:0kB audio:21345kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
[Parsed_loudnorm_0 @ 0x556c545ffa00] 
{
\t\"input_i\" : \"-34.88\",
\t\"input_tp\" : \"-15.80\",
\t\"input_lra\" : \"1.80\",
\t\"input_thresh\" : \"-45.04\",
\t\"output_i\" : \"-19.30\",
\t\"output_tp\" : \"-2.00\",
\t\"output_lra\" : \"1.80\",
\t\"output_thresh\" : \"-29.45\",
\t\"normalization_type\" : \"dynamic\",
\t\"target_offset\" : \"0.30\"
}
";

    #[test]
    fn the_last_ebur128_summary_gives_integrated_loudness_and_true_peak() {
        let loudness = parse_ebur128_summary(EBUR128).expect("a summary");
        assert_eq!(
            loudness,
            Loudness {
                integrated_lufs: -8.6,
                true_peak_dbtp: -0.3
            }
        );
    }

    #[test]
    fn silence_has_no_true_peak_and_a_log_without_a_summary_is_an_error() {
        let silent = EBUR128.split("Stream mapping:").next().expect("first part");
        let loudness = parse_ebur128_summary(silent).expect("a summary");
        assert_eq!(loudness.true_peak_dbtp, f64::NEG_INFINITY);
        let err = parse_ebur128_summary("Invalid data found when processing input")
            .expect_err("no summary");
        assert!(err.to_string().contains("ebur128 summary"), "{err}");
    }

    #[test]
    fn the_loudnorm_json_gives_the_measured_figures() {
        let m = parse_loudnorm(LOUDNORM).expect("parsed");
        assert_eq!(
            m,
            LoudnormMeasurement {
                input_i: -34.88,
                input_tp: -15.80,
                input_lra: 1.80,
                input_thresh: -45.04,
                target_offset: 0.30,
            }
        );
        assert!(m.usable());
    }

    #[test]
    fn silence_measures_minus_inf_and_is_not_usable_for_a_second_pass() {
        let silence = LOUDNORM
            .replace("\"-34.88\"", "\"-inf\"")
            .replace("\"-15.80\"", "\"-inf\"")
            .replace("\"-45.04\"", "\"-70.00\"")
            .replace("\"0.30\"", "\"inf\"");
        let m = parse_loudnorm(&silence).expect("parsed");
        assert_eq!(m.input_i, f64::NEG_INFINITY);
        assert!(!m.usable());
        // Finite but outside what loudnorm's options accept: a gate below -99 LUFS.
        let faint = LoudnormMeasurement {
            input_thresh: -104.0,
            ..parse_loudnorm(LOUDNORM).expect("parsed")
        };
        assert!(!faint.usable());
    }

    #[test]
    fn missing_or_garbled_loudnorm_output_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_loudnorm("Conversion failed!"),
            Err(LoudnessReportError::Missing(_))
        ));
        assert!(matches!(
            parse_loudnorm("{ \"input_i\" : \"-20\" }"),
            Err(LoudnessReportError::Json(_))
        ));
        let garbled = LOUDNORM.replace("\"1.80\",\n\t\"input_thresh", "\"n/a\",\n\t\"input_thresh");
        let err = parse_loudnorm(&garbled).expect_err("not a number");
        assert!(err.to_string().contains("input_lra"), "{err}");
    }
}
