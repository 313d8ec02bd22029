//! Ports (small traits the handlers depend on) and pure domain logic shared by podflow's
//! services. Nothing here does I/O; adapters in other crates implement the ports.
//!
//! # Layout
//! - [`ports`]: blob store, episode state store, and the handler contract.
//! - [`transcript`]: the normalized transcript and its prompt views.
//! - [`subtitles`]: SRT/WebVTT cue building under captioning rules.
//! - [`handling`]: decoding deliveries and mapping failures to outcomes (DLQ or retry).
//! - [`wer`], [`diarization`]: word error rate and speaker accuracy for quality checks.
//! - [`aws_transcribe`]: Amazon Transcribe's output JSON as a [`transcript::Transcript`].
//! - [`content`]: content hashing and keys for work that must never be done twice.

pub mod aws_transcribe;
pub mod cache;
pub mod content;
pub mod diarization;
pub mod handling;
pub mod ports;
pub mod subtitles;
pub mod transcript;
pub mod wer;

pub use ports::*;
