//! Any bytes as an SRT file, a WebVTT file, and a WebVTT file's body.
#![no_main]

#[path = "../../crates/podflow-core/tests/fuzz_checks/subtitles.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = checks::any_text(text)
    {
        panic!("{e}");
    }
});
