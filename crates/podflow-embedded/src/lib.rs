//! Local (embedded) adapters for podflow's ports, and the worker loop that drives handlers.
//!
//! Everything durable lives in one SQLite database in WAL mode under the data directory:
//! a committed event or message survives `kill -9` of the process. The queue semantics are
//! SQS's, so that handlers behave the same here and on AWS.
//!
//! # Layout
//! - [`db`]: opening the database, schema, the single-runner lock.
//! - [`queue`]: queues with SQS semantics (FIFO groups, dedup ids, visibility timeout,
//!   receive counts, `maxReceiveCount` → DLQ, redrive) and the event bus over them.
//! - [`store`]: the episode state store.
//! - [`blobs`]: files under the data directory as the blob store.
//! - [`worker`]: receive → handle → apply outcome, with visibility heartbeats.

pub mod blobs;
pub mod db;
pub mod queue;
pub mod store;
pub mod worker;

pub use blobs::FileBlobStore;
pub use db::{Db, DbError, Durability, RunnerLock};
pub use queue::{QueueSpec, Received};
pub use worker::Worker;

pub use podflow_core::now_ms;
