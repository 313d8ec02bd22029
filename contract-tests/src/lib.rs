//! Contract tests (see `tests/`): schemas, examples, consumers and routing agree, and the
//! AWS template routes exactly what `podflow_events::routing` declares.

pub mod event_pattern;
pub mod template;
