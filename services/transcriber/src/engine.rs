//! The local engine a user picks (`PODFLOW_WHISPER_ENGINE`): whisper.cpp, or CTranslate2
//! when podflow was built with the `ctranslate2` feature. Both take the same model
//! directory and produce the same transcript.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use podflow_core::{SpeechError, SpeechToText, transcript::Transcript};

#[cfg(feature = "ctranslate2")]
use crate::ct2::Ct2Engine;
use crate::whisper::{WhisperEngine, Windowing};

/// The engines podflow can transcribe with locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// whisper.cpp, f16 weights converted from the model directory.
    #[value(name = "whisper.cpp")]
    WhisperCpp,
    /// CTranslate2 int8, the engine faster-whisper uses (needs the `ctranslate2` build).
    #[value(name = "ctranslate2")]
    Ctranslate2,
}

impl EngineKind {
    /// The engine used when none is chosen: CTranslate2 where it is built in.
    pub fn default_kind() -> Self {
        if cfg!(feature = "ctranslate2") {
            Self::Ctranslate2
        } else {
            Self::WhisperCpp
        }
    }
}

/// One of the built-in engines, behind the one `SpeechToText` port the handlers use.
pub enum LocalEngine {
    WhisperCpp(WhisperEngine),
    #[cfg(feature = "ctranslate2")]
    Ctranslate2(Ct2Engine),
}

impl LocalEngine {
    /// `model`: a model directory or ggml file (default: the bundled one); `cache_dir`:
    /// where whisper.cpp's converted weights are kept.
    pub fn new(
        kind: EngineKind,
        model: Option<PathBuf>,
        cache_dir: PathBuf,
    ) -> Result<Self, SpeechError> {
        match kind {
            EngineKind::WhisperCpp => Ok(Self::WhisperCpp(WhisperEngine::new(model, cache_dir))),
            #[cfg(feature = "ctranslate2")]
            EngineKind::Ctranslate2 => Ok(Self::Ctranslate2(Ct2Engine::new(model))),
            #[cfg(not(feature = "ctranslate2"))]
            EngineKind::Ctranslate2 => Err(SpeechError::Engine(
                "this podflow was built without CTranslate2: set PODFLOW_WHISPER_ENGINE=whisper.cpp, or build with `--features ctranslate2`".into(),
            )),
        }
    }

    fn inner(&self) -> &dyn SpeechToText {
        match self {
            Self::WhisperCpp(e) => e,
            #[cfg(feature = "ctranslate2")]
            Self::Ctranslate2(e) => e,
        }
    }

    /// Transcribes with `progress` hearing the seconds of audio done so far.
    /// `window_seconds` is how much audio whisper.cpp is handed at a time (CTranslate2
    /// always works in Whisper's own 30-second windows).
    pub async fn transcribe_with_progress(
        &self,
        audio: &Path,
        window_seconds: f64,
        progress: impl Fn(f64) + Send + Sync + 'static,
    ) -> Result<Transcript, SpeechError> {
        match self {
            Self::WhisperCpp(e) => {
                let windowing = Windowing {
                    window_seconds: window_seconds.max(30.0),
                    ..Windowing::default()
                };
                e.transcribe_with_progress(audio, windowing, progress).await
            }
            #[cfg(feature = "ctranslate2")]
            Self::Ctranslate2(e) => e.transcribe_with_progress(audio, progress).await,
        }
    }
}

#[async_trait]
impl SpeechToText for LocalEngine {
    fn engine(&self) -> &str {
        self.inner().engine()
    }

    fn model(&self) -> &str {
        self.inner().model()
    }

    fn model_fingerprint(&self) -> &str {
        self.inner().model_fingerprint()
    }

    fn prepare(&self) -> Result<(), SpeechError> {
        self.inner().prepare()
    }

    async fn transcribe(&self, audio: &Path) -> Result<Transcript, SpeechError> {
        self.inner().transcribe(audio).await
    }
}
