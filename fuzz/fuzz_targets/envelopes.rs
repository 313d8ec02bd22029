//! Any bytes as a message body, parsed as an EventBridge envelope and decoded as every
//! event type.
#![no_main]

#[path = "../../events-schema/tests/fuzz_checks/envelopes.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = checks::check_text(text)
    {
        panic!("{e}");
    }
});
