//! podflow's event contracts.
//!
//! Every event travels in EventBridge's envelope ([`EventEnvelope`]) with a typed `detail`.
//! The Rust types in [`events`] are the source of truth: the JSON Schemas under
//! `events-schema/schemas/` are generated from them (`cargo run -p podflow-events --example
//! write-schemas`) and a test fails when the committed files drift from the types.
//!
//! # Layout
//! - [`envelope`]: the EventBridge envelope and typed decoding with version checks.
//! - [`events`]: one struct per event type (v1), plus the shared [`events::BlobRef`] pointer.
//! - [`names`]: the shape of ids and keys (the schemas' patterns, and the same checks in Rust).
//! - [`routing`]: which service consumes which event, declared once for the local router
//!   and for `infra/`.
//! - [`schema`]: schema generation and the list of all event types.
//! - [`registry`]: an event's EventBridge Schema Registry document (OpenAPI 3.0).

pub mod envelope;
pub mod events;
pub mod names;
pub mod registry;
pub mod routing;
pub mod schema;

pub use envelope::{EnvelopeError, EventEnvelope};
pub use events::*;

/// The schema version every v1 producer writes. Consumers accept any `1.x`.
pub const SCHEMA_VERSION: &str = "1.1";
/// The major version this code understands.
pub const SUPPORTED_MAJOR: u32 = 1;
