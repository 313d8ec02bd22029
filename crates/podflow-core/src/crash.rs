//! Crash points: named places where the process can be made to die
//! (`PODFLOW_CRASH_AT=<name>` aborts it there), so a test can prove that an episode
//! completes after a crash at any of them. Without the variable a point does nothing.
//!
//! They sit where a crash is most likely to lose or repeat something: right after a
//! store write whose announcement is not out yet, after a message is sent and before it is
//! recorded, and in the runner after a handler finished and before its outcome is applied.

use std::sync::OnceLock;

/// Every point, for tests that visit them all. `runner.before_ack.<service>` is checked by
/// the local runner for each service's handler.
pub const POINTS: &[&str] = &[
    "ingest.after_record",
    "transcode.after_cache",
    "transcribe.after_cache",
    "dispatch.after_plan",
    "invoker.after_completed",
    "publisher.after_revision",
    "notify.after_send",
    "runner.before_ack.transcode-watcher",
    "runner.before_ack.transcriber",
    "runner.before_ack.prompt-dispatcher",
    "runner.before_ack.bedrock-invoker",
    "runner.before_ack.publisher",
    "runner.before_ack.publisher-notify",
];

/// Aborts the process if `PODFLOW_CRASH_AT` names this point.
pub fn point(name: &str) {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    debug_assert!(
        POINTS.contains(&name) || name.starts_with("runner.before_ack."),
        "crash point {name} is not listed"
    );
    if CRASH_AT
        .get_or_init(|| std::env::var("PODFLOW_CRASH_AT").ok())
        .as_deref()
        == Some(name)
    {
        eprintln!("crash point {name}: aborting (PODFLOW_CRASH_AT)");
        std::process::abort();
    }
}
