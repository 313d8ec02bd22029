//! The recorded AWS payloads the tests feed to handlers and adapters, kept in this crate's
//! `fixtures/aws` (copied from public repositories and AWS documentation; sources, commits
//! and licences in its PROVENANCE.md). Every test reads them through these functions.

use std::path::PathBuf;

/// The fixtures directory.
pub fn aws_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/aws")
}

/// A fixture's text, e.g. `aws_text("sqs/powertools-python_sqsEvent.json")`. Panics with
/// the path and what to do when it is missing: a test without its fixture cannot run.
pub fn aws_text(relative: &str) -> String {
    let path = aws_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): every fixture a test names lives in crates/podflow-fakes/fixtures/aws",
            path.display()
        )
    })
}

/// A strict-JSON fixture, parsed.
pub fn aws_json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&aws_text(relative))
        .unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
}
