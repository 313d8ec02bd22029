//! podflow's cache outside any data directory, and the Python environment in it that
//! `scripts/setup.sh` makes (the model package, the CTranslate2 wheel, test tools). One
//! definition for the engine, `podflow doctor` and the test fakes; crates/podflow-speech's
//! build script repeats it, as build scripts cannot use this crate without building it twice.

use std::path::PathBuf;

/// `PODFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/podflow`, else `~/.cache/podflow`.
pub fn cache_dir() -> PathBuf {
    // Empty counts as unset, as in the shell scripts' `${VAR:-…}`.
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("PODFLOW_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("podflow")
}

/// The venv `scripts/setup.sh` installs podflow's Python packages into (a venv, so setup
/// works where the system Python refuses `pip install`).
pub fn python_env() -> PathBuf {
    cache_dir().join("venv")
}

/// A program installed into that venv (`moto_server`, `python`), if it is there.
pub fn python_env_program(name: &str) -> Option<PathBuf> {
    let path = python_env().join("bin").join(name);
    path.is_file().then_some(path)
}
