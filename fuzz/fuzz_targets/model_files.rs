//! Any bytes as a CTranslate2 `model.bin`, read and converted for whisper.cpp.
#![no_main]

use podflow_speech::model::fuzz_check::check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = check(data, "Ġa\nb\n<|endoftext|>\n") {
        panic!("{e}");
    }
});
