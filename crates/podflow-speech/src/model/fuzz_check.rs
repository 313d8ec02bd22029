//! The model file readers' invariants, shared by the proptest targets (`cargo test`) and the
//! cargo-fuzz target (`fuzz/`, through the `fuzzing` feature): reading and converting give
//! a model or an error with a reason, never a panic, and nothing is allocated far beyond
//! the input's size.

use std::{io::Cursor, path::Path};

use proptest::prelude::*;

use super::{
    ct2_file::{Ct2Model, MAX_MELS, Tensors},
    ggml::{WeightType, write_ggml},
};

/// Reads `bytes` both ways, then converts what was read; checks every invariant.
pub fn check(bytes: &[u8], vocabulary: &str) -> Result<(), TestCaseError> {
    let path = Path::new("fuzz/model.bin");
    let len = bytes.len() as u64;
    // Header only: the shape as `ct2_shape` reads it.
    if let Ok(model) = Ct2Model::from_reader(Cursor::new(bytes), len, Tensors::Skip, path) {
        let _ = model.model_name();
        if let Ok(n) = model.n_mels() {
            prop_assert!((1..=MAX_MELS).contains(&n));
        }
    }
    match Ct2Model::from_reader(Cursor::new(bytes), len, Tensors::Keep, path) {
        Ok(model) => {
            for weights in [WeightType::F16, WeightType::Q8_0] {
                let mut out = Vec::new();
                match write_ggml(&model, vocabulary, weights, &mut out) {
                    Ok(()) => {
                        // Tensors at most doubled (f16 → f32), the mel filterbank, the
                        // vocabulary's bytes, headers.
                        let bound =
                            8 * (bytes.len() + vocabulary.len()) + MAX_MELS * 201 * 4 + 4096;
                        prop_assert!(
                            out.len() <= bound,
                            "{} bytes out of {}",
                            out.len(),
                            bytes.len()
                        );
                    }
                    Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
                }
            }
        }
        Err(e) => {
            let reason = e.to_string();
            prop_assert!(reason.contains("fuzz/model.bin"), "{reason}");
            prop_assert!(!reason.trim_end().ends_with(':'), "{reason}");
        }
    }
    Ok(())
}
