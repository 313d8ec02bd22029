//! The recorded AWS payloads in `../shared/fixtures/aws` beside the repository (see its
//! PROVENANCE.md), for tests. `PODFLOW_AWS_FIXTURES` points elsewhere when needed.

use std::path::PathBuf;

/// The fixtures directory.
pub fn aws_dir() -> PathBuf {
    std::env::var_os("PODFLOW_AWS_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aws"),
        PathBuf::from,
    )
}

/// A fixture's text, e.g. `aws_text("sqs/powertools-python_sqsEvent.json")`. Panics with
/// the path and what to do when it is missing: a test without its fixture cannot run.
pub fn aws_text(relative: &str) -> String {
    let path = aws_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): the shared AWS fixtures sit beside the repository, or set PODFLOW_AWS_FIXTURES",
            path.display()
        )
    })
}

/// A strict-JSON fixture, parsed.
pub fn aws_json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&aws_text(relative))
        .unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
}
