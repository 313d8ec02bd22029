//! Fuzzing (property-based, on stable, so CI runs it) of the subtitle parsers: an SRT or
//! WebVTT file is read back from storage and from users (`podflow transcribe` output edited
//! by hand). Inputs are arbitrary text and files assembled from cue pieces with hostile
//! timestamps (20-digit hours, minutes past 59, missing parts), numbers and cue text (`<`,
//! `&`, `-->`, voice spans).
//!
//! Invariants (in `fuzz_checks/subtitles.rs`, which the cargo-fuzz target shares): nothing
//! panics; an error names a line inside the file and says what is wrong; parsed cues hold no
//! more text than the file and have finite, non-negative times.

#[path = "fuzz_checks/subtitles.rs"]
mod checks;

use checks::{any_text, check};
use podflow_core::subtitles::{SubtitleParseError, parse_srt, parse_vtt};
use proptest::prelude::*;

/// A timestamp, well-formed or not.
fn stamp(sep: char) -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100, 0u64..60, 0u64..60, 0u64..1000)
            .prop_map(move |(h, m, s, ms)| format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")),
        "[0-9]{1,20}:[0-9]{1,3}:[0-9]{1,3}[,.][0-9]{1,4}",
        Just(format!("18446744073709551615:00:00{sep}000")),
        Just(format!("99999999999999999:59:59{sep}999")),
        "[0-9:,.\\-+ ]{0,14}",
    ]
}

/// Cue text, including what WebVTT forbids or escapes.
fn cue_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z .,!?]{1,30}",
        Just("<v Speaker 1>Hello</v>".to_owned()),
        Just("<v.loud Ann>Hi".to_owned()),
        Just("<v".to_owned()),
        Just("a --> b".to_owned()),
        Just("Q&A &amp; &lt;3 &nbsp;".to_owned()),
        Just("I <3 it".to_owned()),
        "\\PC{0,20}",
    ]
}

/// A subtitle file from cue pieces; `vtt` adds the header and uses `.` for milliseconds.
fn file(vtt: bool) -> impl Strategy<Value = String> {
    let sep = if vtt { '.' } else { ',' };
    prop::collection::vec(
        (
            prop_oneof![
                Just(None),
                (0usize..5).prop_map(Some),
                Just(Some(usize::MAX))
            ],
            stamp(sep),
            stamp(sep),
            prop_oneof![Just(" --> "), Just("-->"), Just(" --> ")],
            prop::collection::vec(cue_text(), 0..3),
            prop_oneof![Just("\n\n"), Just("\n"), Just("\r\n\r\n")],
        ),
        0..6,
    )
    .prop_map(move |cues| {
        let mut out = if vtt {
            "WEBVTT\n\n".to_owned()
        } else {
            String::new()
        };
        for (number, start, end, arrow, lines, gap) in cues {
            if let Some(n) = number {
                out.push_str(&format!("{n}\n"));
            }
            out.push_str(&format!("{start}{arrow}{end}\n"));
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
            out.push_str(gap);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_or_names_a_line(text in "\\PC{0,300}|.{0,300}") {
        any_text(&text)?;
    }

    #[test]
    fn srt_files_from_hostile_pieces(text in file(false)) {
        check(&text, parse_srt(&text))?;
    }

    #[test]
    fn vtt_files_from_hostile_pieces(text in file(true)) {
        check(&text, parse_vtt(&text))?;
    }
}

/// Found by `srt_files_from_hostile_pieces`: hours past what a u64 of milliseconds holds
/// overflowed (a panic in debug builds, a wrong time in release).
#[test]
fn hours_past_any_episode_are_a_bad_timestamp() {
    for hours in [
        "18446744073709551615",
        "99999999999999999",
        "5124095576030432",
    ] {
        let srt = format!("1\n{hours}:00:00,000 --> 00:00:01,000\nHello\n");
        match parse_srt(&srt) {
            Err(SubtitleParseError::Malformed { line, message }) => {
                assert_eq!(line, 2, "{hours}");
                assert!(message.contains("bad timestamp"), "{message}");
            }
            other => panic!("{hours}: {other:?}"),
        }
    }
}
