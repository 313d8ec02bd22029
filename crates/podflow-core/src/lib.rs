//! Ports (small traits the handlers depend on) and pure domain logic shared by podflow's
//! services. Nothing here does I/O; adapters in other crates implement the ports.
//!
//! # Layout
//! - [`ports`]: blob store, episode state store, and the handler contract.
//! - [`error`]: [`PortError`], the one error every port returns, classified for retries.
//! - [`transcript`]: the normalized transcript and its prompt views.
//! - [`subtitles`]: SRT/WebVTT cue building under captioning rules.
//! - [`handling`]: decoding deliveries and mapping failures to outcomes (DLQ or retry).
//! - [`content`]: content hashing and keys for work that must never be done twice.
//! - [`crash`]: named crash points for tests that kill the process mid-step.
//! - [`text_engine`]: which engine writes an episode's texts.
//! - [`language`]: the language setting (`auto` or an ISO 639-1 code) and language names.
//! - [`show`]: the show's configuration (`podflow.toml`).
//! - [`approval`]: where proposals and decisions live in the store.
//! - [`secret`]: credentials that never print.

pub mod approval;
pub mod cache;
pub mod content;
pub mod crash;
pub mod error;
pub mod handling;
pub mod language;
pub mod links;
pub mod ports;
pub mod secret;
pub mod show;
pub mod subtitles;
pub mod telemetry;
pub mod text_engine;
pub mod transcript;
pub mod undelivered;

pub use error::{BoxError, ErrorKind, PortError, Report, report};
pub use ports::*;
pub use text_engine::TextEngine;
