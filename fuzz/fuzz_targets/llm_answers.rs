//! Any bytes as an LLM's answer to the chapters, clips and titles prompts: the first
//! eight are the episode's duration (any f64, NaN and infinities included), the rest the
//! answer.
#![no_main]

#[path = "../../services/publisher/tests/fuzz_checks/parsers.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((duration, answer)) = data.split_first_chunk::<8>() else {
        return;
    };
    if let Ok(answer) = std::str::from_utf8(answer)
        && let Err(e) = checks::any_answer(answer, f64::from_le_bytes(*duration))
    {
        panic!("{e}");
    }
});
