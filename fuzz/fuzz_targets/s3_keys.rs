//! Any bytes as an S3 notification's key and, when they are JSON, as an upload event.
#![no_main]

#[path = "../../services/ingest/tests/fuzz_checks/keys.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = checks::check_carried(text) {
        panic!("{e}");
    }
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(text)
        && let Err(e) = checks::check_event(&event, None)
    {
        panic!("{e}");
    }
});
