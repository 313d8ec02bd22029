//! Links CTranslate2 from the `ctranslate2` wheel that `scripts/setup.sh` installs, instead
//! of compiling it: the wheel's library carries MKL, oneDNN and a kernel per instruction set,
//! chosen at run time, so one build runs int8 on any x86-64 (Intel or AMD, with or without
//! AVX2/AVX-512) and on arm64 — the same library faster-whisper runs on — and the build skips
//! about 11 minutes of C++.
//!
//! ct2rs's `system` feature builds only its C++ bridge, against the CTranslate2 headers it
//! ships (4.8.4, the version the wheel is pinned to), and asks the linker for
//! `-lctranslate2` (plus libraries that `ctranslate2-link/` stands in for). This script gives
//! the linker a directory holding `libctranslate2.so`, a link to the wheel's file, and
//! records where the library is, so binaries find it at run time (rpath).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PODFLOW_CTRANSLATE2_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PODFLOW_CACHE_DIR");
    println!("cargo:rerun-if-env-changed=XDG_CACHE_HOME");
    if env::var_os("CARGO_FEATURE_CTRANSLATE2").is_none() {
        return;
    }
    let library = match find_library() {
        Ok(library) => library,
        Err(searched) => {
            // A build error, in words: the one thing to do is run the setup script.
            panic!(
                "CTranslate2's shared library was not found (looked in {searched}). \
                 Run scripts/setup.sh, which installs the pinned `ctranslate2` wheel into \
                 podflow's Python environment, or set PODFLOW_CTRANSLATE2_LIB_DIR to a \
                 directory holding libctranslate2*.so*, or build without the engine \
                 (`cargo build -p podflow-cli --no-default-features`, whisper.cpp only)."
            );
        }
    };
    println!("cargo:rerun-if-changed={}", library.display());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let link_dir = out.join("ctranslate2-link");
    fs::create_dir_all(&link_dir).expect("create the link directory in OUT_DIR");
    let link = link_dir.join("libctranslate2.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&library, &link).expect("link libctranslate2.so in OUT_DIR");
    let lib_dir = library.parent().expect("a file has a parent directory");
    println!("cargo:rustc-link-search=native={}", link_dir.display());
    // This package's own tests and binaries; dependents read `DEP_PODFLOW_CTRANSLATE2_LIB_DIR`.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    println!("cargo:lib_dir={}", lib_dir.display());
    // For `podflow doctor`: which library this binary runs.
    println!(
        "cargo:rustc-env=PODFLOW_CTRANSLATE2_LIBRARY={}",
        library.display()
    );
}

/// The wheel's `libctranslate2-<hash>.so.<version>`: in `PODFLOW_CTRANSLATE2_LIB_DIR`, else in
/// podflow's Python environment (`<cache>/venv`, as `scripts/setup.sh` makes it).
fn find_library() -> Result<PathBuf, String> {
    let dirs: Vec<PathBuf> = match env::var_os("PODFLOW_CTRANSLATE2_LIB_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => venv_library_dirs(),
    };
    for dir in &dirs {
        if let Some(library) = library_in(dir) {
            return Ok(library);
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(if searched.is_empty() {
        format!(
            "{}/venv/lib/python3.*/site-packages/ctranslate2.libs",
            cache_dir().display()
        )
    } else {
        searched.join(", ")
    })
}

/// `podflow_core::cache::cache_dir`, again: a build script cannot use the crate it builds
/// beside, and making podflow-core a build-dependency would compile it (and tokio) twice.
fn cache_dir() -> PathBuf {
    // Empty counts as unset, as in the shell scripts' `${VAR:-…}`.
    let set = |name: &str| env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("PODFLOW_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("podflow")
}

fn venv_library_dirs() -> Vec<PathBuf> {
    let lib = cache_dir().join("venv").join("lib");
    let Ok(entries) = fs::read_dir(&lib) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages").join("ctranslate2.libs"))
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libctranslate2") && n.contains(".so"))
        })
        .collect();
    found.sort();
    found.pop()
}
