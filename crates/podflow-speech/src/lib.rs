//! Local speech-to-text behind podflow's [`SpeechToText`](podflow_core::SpeechToText) port:
//! the engine a user picks (and the other one standing in when it cannot load), Whisper's
//! model files, and what both engines share — audio from ffmpeg as a stream cut into
//! pieces, Whisper's log-mel front end, segment edges fitted to the speech, voice prints.
//!
//! # Layout
//! - [`engine`]: [`engine::LocalEngine`], the port's implementation, over `ct2`
//!   (CTranslate2, the default, with faster-whisper's long-form loop) and [`whisper`]
//!   (whisper.cpp).
//! - [`language`]: the language setting against the model (detect, force, or refuse).
//! - [`compute`]: CTranslate2's compute type, picked by what the CPU supports; [`cpu`]:
//!   what the CPU is.
//! - [`audio`]: ffmpeg's samples, pieces cut at pauses, speech edges; [`mel`]: the log-mel
//!   spectrogram; [`speakers`]: voice prints and their clustering.
//! - [`model`]: the CTranslate2 model file, its conversion for whisper.cpp, the vocabulary;
//!   [`locate`]: where the model and the CTranslate2 library are.

pub mod audio;
pub mod compute;
pub mod cpu;
#[cfg(feature = "ctranslate2")]
pub mod ct2;
pub mod engine;
pub mod language;
pub mod locate;
pub mod mel;
pub mod model;
pub mod speakers;
pub mod whisper;
