//! The `podflow` binary finds CTranslate2's shared library where the transcriber's build
//! script found it (see crates/podflow-speech/build.rs): an rpath, so no LD_LIBRARY_PATH.

fn main() {
    if let Some(dir) = std::env::var_os("DEP_PODFLOW_CTRANSLATE2_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.to_string_lossy());
    }
}
