//! One place that sets up logging for every binary: human-readable lines on a terminal,
//! JSON lines otherwise (Lambda, CI, log shippers). `RUST_LOG` filters as usual.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, embedding) is harmless: the first subscriber stays.
    if std::io::stderr().is_terminal() {
        let _ = builder.compact().try_init();
    } else {
        let _ = builder.json().try_init();
    }
}
