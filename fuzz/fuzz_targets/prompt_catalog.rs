//! Any bytes as a prompt file; and, split at NUL bytes, as a template, a title and a
//! language to render it with.
#![no_main]

#[path = "../../services/prompt-dispatcher/tests/fuzz_checks/catalog.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = checks::check_parse(text) {
        panic!("{e}");
    }
    let mut parts = text.splitn(3, '\0');
    let (template, title, language) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if let Err(e) = checks::check_render(template, title, language) {
        panic!("{e}");
    }
});
