//! The local engine a user picks (`PODFLOW_WHISPER_ENGINE`): whisper.cpp, or CTranslate2
//! when podflow was built with the `ctranslate2` feature. Both take the same model
//! directory and produce the same transcript, so either stands in when the other cannot load.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use async_trait::async_trait;
use podflow_core::{
    ErrorKind, PortError, SpeechToText, language::Language, transcript::Transcript,
};

#[cfg(feature = "ctranslate2")]
use crate::ct2::Ct2Engine;
use crate::whisper::{WhisperEngine, Windowing};

/// The engines podflow can transcribe with locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// whisper.cpp, f16 weights converted from the model directory.
    #[value(name = "whisper.cpp")]
    WhisperCpp,
    /// CTranslate2, the engine faster-whisper uses, in the fastest compute type the CPU
    /// supports (needs the `ctranslate2` build).
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

/// One built-in engine.
enum Candidate {
    WhisperCpp(WhisperEngine),
    #[cfg(feature = "ctranslate2")]
    Ctranslate2(Ct2Engine),
}

impl Candidate {
    /// Whether the engine can run here: a model loads (CTranslate2 skips the hash the
    /// pipeline's cache key needs; `podflow transcribe` never asks for it).
    fn load(&self) -> Result<(), PortError> {
        match self {
            Self::WhisperCpp(e) => e.prepare(),
            #[cfg(feature = "ctranslate2")]
            Self::Ctranslate2(e) => e.load_first_model(),
        }
    }

    fn port(&self) -> &dyn SpeechToText {
        match self {
            Self::WhisperCpp(e) => e,
            #[cfg(feature = "ctranslate2")]
            Self::Ctranslate2(e) => e,
        }
    }

    fn with_language(self, language: Language) -> Self {
        match self {
            Self::WhisperCpp(e) => Self::WhisperCpp(e.with_language(language)),
            #[cfg(feature = "ctranslate2")]
            Self::Ctranslate2(e) => Self::Ctranslate2(e.with_language(language)),
        }
    }
}

/// CTranslate2, where it is built in.
fn ctranslate2_candidate(model: Option<PathBuf>) -> Option<Candidate> {
    #[cfg(feature = "ctranslate2")]
    return Some(Candidate::Ctranslate2(Ct2Engine::new(model)));
    #[cfg(not(feature = "ctranslate2"))]
    {
        let _ = model;
        None
    }
}

/// The engine that loaded, and what the user should hear about the ones that did not.
struct Active {
    index: usize,
    notice: Option<String>,
}

/// The chosen engine behind the one `SpeechToText` port the handlers use, with the other
/// built-in engine behind it: if the chosen one cannot load on this machine, the other
/// transcribes instead and the step's note says why, rather than the episode failing.
pub struct LocalEngine {
    candidates: Vec<Candidate>,
    active: OnceLock<Result<Active, (ErrorKind, String)>>,
}

impl LocalEngine {
    /// `model`: a model directory or ggml file (default: the bundled one); `cache_dir`:
    /// where whisper.cpp's converted weights are kept. `kind` is tried first, then the other
    /// engine built in.
    pub fn new(
        kind: EngineKind,
        model: Option<PathBuf>,
        cache_dir: PathBuf,
    ) -> Result<Self, PortError> {
        // A mistyped compute type is the user's to fix, not a reason to run the slower engine.
        crate::compute::ComputeChoice::from_env().map_err(PortError::setup)?;
        let whisper_cpp = Candidate::WhisperCpp(WhisperEngine::new(model.clone(), cache_dir));
        let ctranslate2 = ctranslate2_candidate(model);
        let candidates: Vec<Candidate> = match kind {
            EngineKind::WhisperCpp => [Some(whisper_cpp), ctranslate2]
                .into_iter()
                .flatten()
                .collect(),
            EngineKind::Ctranslate2 => match ctranslate2 {
                Some(ct2) => vec![ct2, whisper_cpp],
                None => {
                    return Err(PortError::setup(
                        "this podflow was built without CTranslate2: set PODFLOW_WHISPER_ENGINE=whisper.cpp, or build with `--features ctranslate2`",
                    ));
                }
            },
        };
        Ok(Self {
            candidates,
            active: OnceLock::new(),
        })
    }

    /// Transcribes in `language` (default: identified from the audio; an English-only
    /// model transcribes English, and refuses any other language before transcribing).
    pub fn with_language(self, language: Language) -> Self {
        Self {
            candidates: self
                .candidates
                .into_iter()
                .map(|c| c.with_language(language.clone()))
                .collect(),
            active: OnceLock::new(),
        }
    }

    /// Loads the first engine that can (the chosen one, else the next) without the model
    /// hash the pipeline's cache key needs: what `podflow doctor` and `transcribe` ask.
    pub fn load(&self) -> Result<(), PortError> {
        self.activate().map(|_| ())
    }

    fn activate(&self) -> Result<&Active, PortError> {
        self.active
            .get_or_init(|| {
                let mut failures: Vec<String> = Vec::new();
                for (index, candidate) in self.candidates.iter().enumerate() {
                    let port = candidate.port();
                    match candidate.load() {
                        Ok(()) => {
                            let notice = (!failures.is_empty()).then(|| {
                                format!(
                                    "{}; transcribed with {}",
                                    failures.join("; "),
                                    port.engine()
                                )
                            });
                            if let Some(notice) = &notice {
                                tracing::warn!(%notice, "speech engine fell back");
                            }
                            return Ok(Active { index, notice });
                        }
                        // A language the model cannot transcribe: the other engine would
                        // read the same model and refuse it too, so it is said once, alone.
                        Err(e) if e.kind() == ErrorKind::Input => {
                            return Err((ErrorKind::Input, e.report()));
                        }
                        Err(e) => failures.push(format!("{}: {}", port.engine(), e.report())),
                    }
                }
                Err((ErrorKind::Setup, failures.join("; ")))
            })
            .as_ref()
            .map_err(|(kind, message)| PortError::new(*kind, message.clone()))
    }

    /// The engine that transcribes: the one that loaded, or the chosen one before loading.
    fn current(&self) -> &Candidate {
        let index = match self.active.get() {
            Some(Ok(active)) => active.index,
            _ => 0,
        };
        &self.candidates[index]
    }

    /// CTranslate2's compute type, when CTranslate2 is the engine that loaded.
    pub fn compute_type(&self) -> Option<crate::compute::ComputeKind> {
        match self.current() {
            #[cfg(feature = "ctranslate2")]
            Candidate::Ctranslate2(e) => e.compute_type(),
            _ => None,
        }
    }

    /// Transcribes with `progress` hearing the seconds of audio done so far.
    /// `window_seconds` is how much audio whisper.cpp is handed at a time (CTranslate2
    /// always works in Whisper's own 30-second windows).
    pub async fn transcribe_with_progress(
        &self,
        audio: &Path,
        duration_seconds: Option<f64>,
        window_seconds: f64,
        progress: impl Fn(f64) + Send + Sync + 'static,
    ) -> Result<Transcript, PortError> {
        self.activate()?;
        match self.current() {
            Candidate::WhisperCpp(e) => {
                // Fixed-length windows: whisper.cpp has no use for the length.
                let _ = duration_seconds;
                let windowing = Windowing {
                    window_seconds: window_seconds.max(30.0),
                    ..Windowing::default()
                };
                e.transcribe_with_progress(audio, windowing, progress).await
            }
            #[cfg(feature = "ctranslate2")]
            Candidate::Ctranslate2(e) => {
                e.transcribe_with_progress(audio, duration_seconds, progress)
                    .await
            }
        }
    }
}

#[async_trait]
impl SpeechToText for LocalEngine {
    fn engine(&self) -> &str {
        self.current().port().engine()
    }

    fn model(&self) -> &str {
        self.current().port().model()
    }

    fn model_fingerprint(&self) -> &str {
        self.current().port().model_fingerprint()
    }

    fn prepare(&self) -> Result<(), PortError> {
        self.activate()?;
        self.current().port().prepare()
    }

    fn notice(&self) -> Option<String> {
        match self.active.get() {
            Some(Ok(active)) => active.notice.clone(),
            _ => None,
        }
    }

    async fn transcribe(
        &self,
        audio: &Path,
        duration_seconds: Option<f64>,
    ) -> Result<Transcript, PortError> {
        self.activate()?;
        self.current()
            .port()
            .transcribe(audio, duration_seconds)
            .await
    }
}
