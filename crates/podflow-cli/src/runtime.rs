//! Composes the six service handlers over the embedded adapters in one process. Only
//! wiring lives here; every piece of logic is in a service library.

use podflow_core::{
    TextEngine,
    language::Language,
    secret::Secret,
    show::{self, ShowConfig, ShowLayers},
};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bedrock_invoker::{
    InvokeHandler, RetryPolicy, llm_backend,
    ratelimit::{LimitsConfig, Throttle},
};
use ingest::IngestService;
use podflow_core::MessageHandler;
use podflow_embedded::{
    Db, Durability, FileBlobStore, QueueSpec, RunnerLock, Worker, queue::PROMPT_QUEUE,
};
use podflow_media::Ffmpeg;
use podflow_speech::engine::{EngineKind, LocalEngine};
use prompt_dispatcher::DispatchHandler;
use publisher::{
    PublishHandler,
    cost::PriceTable,
    notify::{NotifyHandler, configured_notifier},
};
use tokio::{sync::watch, task::JoinHandle};
use transcode_watcher::TranscodeHandler;
use transcriber::{SpeakerNames, TranscriberHandler};

/// Settings from flags and environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `openai` (an OpenAI-compatible server at `llm_url`) or `bedrock` (Converse).
    pub llm_provider: String,
    pub llm_url: String,
    /// Whether `llm_url` was given (flag or environment) rather than the default.
    pub llm_url_given: bool,
    /// Which engine writes the texts; `auto` is settled when the pipeline starts.
    pub text_engine: TextEngine,
    pub llm_model: String,
    pub llm_api_key: Option<Secret>,
    pub prompts_dir: Option<PathBuf>,
    pub whisper_model: Option<PathBuf>,
    pub engine: EngineKind,
    /// The language spoken: identified (`auto`) or given.
    pub language: Language,
    pub mp3_bitrate_kbps: u32,
    pub prompt_attempts: u32,
    pub prompt_throttle_budget: Duration,
    /// Per-model rate limits and context sizes (TOML); conservative defaults without it.
    pub model_limits: Option<PathBuf>,
    /// A TOML price table replacing bundled prices by name.
    pub prices: Option<PathBuf>,
    /// Where Slack messages go (a URL, or `file:PATH` / `ssm:NAME` / `secretsmanager:ID`
    /// naming it); none: noted in the run summary.
    pub slack_webhook_url: Option<Secret>,
    /// An SNS topic to notify instead of Slack.
    pub sns_topic_arn: Option<String>,
    pub durability: Durability,
    pub duplicate_deliveries: bool,
    /// The show as flags set it (above `podflow.toml` and the environment).
    pub show_flags: ShowConfig,
    /// The speakers' names for this run's episodes, in the order their voices are first
    /// heard (`--speakers`); none: the show's hosts.
    pub speakers: Vec<String>,
}

/// The show's configuration around the data directory's `podflow.toml` (which the
/// publisher reads at each publish): below it, the data directory served as `file://`
/// and the user's `$XDG_CONFIG_HOME/podflow/podflow.toml`; above it, `PODFLOW_SHOW_*` /
/// `PODFLOW_BASE_URL` and the flags. A file that cannot be read stops the run here, with
/// its name and what is wrong, rather than at the first publish.
pub fn show_layers(settings: &Settings) -> anyhow::Result<ShowLayers> {
    let read = |path: &Path| -> anyhow::Result<Option<ShowConfig>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(ShowConfig::from_toml(
                &text,
                &path.display().to_string(),
            )?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    };
    let data_dir = std::path::absolute(&settings.data_dir)?;
    let mut below = ShowConfig {
        base_url: Some(format!("file://{}", data_dir.display())),
        ..ShowConfig::default()
    };
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")));
    if let Some(user) =
        config_home.and_then(|dir| read(&dir.join("podflow").join(show::FILE_NAME)).transpose())
    {
        below = below.merged(user?);
    }
    read(&settings.data_dir.join(show::FILE_NAME))?;
    let above = ShowConfig::from_env(|name| std::env::var(name).ok())?
        .merged(settings.show_flags.clone().checked("the flags")?);
    Ok(ShowLayers { below, above })
}

/// Where an OpenAI-compatible server is looked for when none is given (Ollama's port).
pub const DEFAULT_LLM_URL: &str = "http://localhost:11434/v1";

/// The LLM's key: the setting's value, or what its `file:`, `ssm:` or `secretsmanager:`
/// reference names.
pub async fn llm_api_key(settings: &Settings) -> anyhow::Result<Option<Secret>> {
    match &settings.llm_api_key {
        Some(setting) => Ok(Some(
            podflow_aws::secrets::read_setting(
                "PODFLOW_LLM_API_KEY",
                setting,
                podflow_aws::sdk_config,
            )
            .await?,
        )),
        None => Ok(None),
    }
}

/// The text engine for this run. `auto` with no LLM given tries the default server once:
/// when nothing answers there, the extractive engine writes every text (said on standard
/// error), so a first run without an LLM still ends with show notes. `api_key` is the key
/// as read ([`llm_api_key`]).
pub async fn settle_text_engine(settings: &Settings, api_key: Option<Secret>) -> TextEngine {
    if settings.text_engine != TextEngine::Auto
        || settings.llm_url_given
        || settings.llm_provider != "openai"
    {
        return settings.text_engine;
    }
    let probe = bedrock_invoker::openai::OpenAiCompatible::new(
        &settings.llm_url,
        api_key,
        Duration::from_secs(2),
    )
    .probe()
    .await;
    match probe {
        Ok(_) => TextEngine::Auto,
        Err(reason) => {
            eprintln!(
                "No LLM given, and none at the default address ({reason}): podflow's extractive \
                 engine writes the summary, chapters, show notes, clips and titles from the \
                 transcript. For LLM-written ones set PODFLOW_LLM_URL and run again \
                 (docs/prompts.md)."
            );
            TextEngine::Extractive
        }
    }
}

/// How long links in notifications stay valid (pre-signed URLs on S3).
const LINK_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long one model call may take.
const LLM_TIMEOUT: Duration = Duration::from_secs(300);

/// The queues a run drains (everything but dead-letter queues).
pub const WORK_QUEUES: &[&str] = &[
    "transcode-watcher",
    "transcriber",
    "prompt-dispatcher",
    "publisher",
    "publisher-notify",
    PROMPT_QUEUE,
];

/// The running pipeline: the database, the ingest service, and the workers.
pub struct Pipeline {
    pub db: Db,
    pub blobs: Arc<FileBlobStore>,
    /// Where messages go (Slack, SNS), if anywhere: for the approval reminders.
    pub notifier: Option<Arc<dyn podflow_core::Notifier>>,
    /// The show's layers around the data directory's `podflow.toml`.
    pub show: ShowLayers,
    pub ingest: IngestService,
    /// Renders prompts (also for replays at a new prompt version).
    pub dispatcher: Arc<DispatchHandler>,
    pub data_dir: PathBuf,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    _lock: RunnerLock,
}

/// Opens the data directory for reading (status, dlq list): no lock, no workers.
pub fn open_db(data_dir: &Path) -> anyhow::Result<Db> {
    Ok(Db::open(data_dir)?)
}

impl Pipeline {
    /// Takes the data directory's runner lock, recovers work a dead run left in flight, and
    /// starts one worker per service.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        crate::space::check(&settings.data_dir)?;
        let lock = RunnerLock::acquire(&settings.data_dir)?;
        // Scratch files of a run that died belong to no one now.
        clear_scratch(&settings.data_dir);
        let db = Db::open(&settings.data_dir)?
            .with_durability(settings.durability)?
            .with_duplicate_deliveries(settings.duplicate_deliveries);
        let blobs = Arc::new(FileBlobStore::new(&settings.data_dir));
        let store = Arc::new(db.clone());
        let inbox = |name: &str| -> anyhow::Result<QueueSpec> {
            let spec = match name {
                // Work over the whole episode: hours for a long one on a slow machine.
                "transcode-watcher" | "transcriber" => {
                    QueueSpec::inbox(name).with_max_handler_time(Duration::from_secs(12 * 3600))
                }
                _ => QueueSpec::inbox(name),
            };
            db.declare_queue(&spec)?;
            Ok(spec)
        };
        let limits = LimitsConfig::load_or_default(settings.model_limits.as_deref())
            .map_err(|e| anyhow::anyhow!("model limits: {e}"))?;
        let throttle = Arc::new(Throttle::new(limits, Duration::from_secs(60)));
        let api_key = llm_api_key(settings).await?;
        let llm = llm_backend(
            &settings.llm_provider,
            &settings.llm_url,
            api_key.clone(),
            LLM_TIMEOUT,
        )
        .await
        .map_err(anyhow::Error::msg)?;
        let prices = PriceTable::load(settings.prices.as_deref())?;
        let notifier = configured_notifier(
            settings.slack_webhook_url.as_ref(),
            settings.sns_topic_arn.as_deref(),
            podflow_aws::sdk_config,
        )
        .await?;
        let text_engine = settle_text_engine(settings, api_key).await;
        let show = show_layers(settings)?;
        let prompts = QueueSpec::prompts();
        db.declare_queue(&prompts)?;
        let recovered = db.release_in_flight()?;
        if recovered > 0 {
            tracing::info!(recovered, "resuming work left in flight by an earlier run");
        }
        let dispatcher = Arc::new(DispatchHandler {
            store: store.clone(),
            blobs: blobs.clone(),
            override_dir: settings.prompts_dir.clone(),
            default_model: settings.llm_model.clone(),
            queue: PROMPT_QUEUE.into(),
            text_engine,
        });
        let handlers: Vec<(QueueSpec, Arc<dyn MessageHandler>, usize)> = vec![
            (
                inbox("transcode-watcher")?,
                Arc::new(TranscodeHandler {
                    store: store.clone(),
                    blobs: blobs.clone(),
                    transcoder: Arc::new(Ffmpeg::default()),
                    bitrate_kbps: settings.mp3_bitrate_kbps,
                }),
                1,
            ),
            (
                inbox("transcriber")?,
                Arc::new(TranscriberHandler {
                    store: store.clone(),
                    blobs: blobs.clone(),
                    engine: Arc::new(
                        LocalEngine::new(
                            settings.engine,
                            settings.whisper_model.clone(),
                            settings.data_dir.join("models"),
                        )?
                        .with_language(settings.language.clone()),
                    ),
                    speakers: SpeakerNames {
                        given: settings.speakers.clone(),
                        show: show.clone(),
                    },
                }),
                1,
            ),
            (inbox("prompt-dispatcher")?, dispatcher.clone(), 1),
            (
                prompts,
                Arc::new(InvokeHandler {
                    store: store.clone(),
                    blobs: blobs.clone(),
                    llm,
                    throttle,
                    retry: RetryPolicy {
                        max_attempts: settings.prompt_attempts,
                        throttle_budget: settings.prompt_throttle_budget,
                        call_time: LLM_TIMEOUT,
                        ..RetryPolicy::default()
                    },
                }),
                4,
            ),
            (
                inbox("publisher")?,
                Arc::new(PublishHandler {
                    store: store.clone(),
                    blobs: blobs.clone(),
                    clips: Arc::new(Ffmpeg::default()),
                    prices,
                    text_engine,
                    show: show.clone(),
                }),
                1,
            ),
            (
                inbox("publisher-notify")?,
                Arc::new(NotifyHandler {
                    store: store.clone(),
                    blobs: blobs.clone(),
                    notifier: notifier.clone(),
                    links: publisher::links::ShareLinks::direct(LINK_LIFETIME),
                    show: show.clone(),
                }),
                1,
            ),
        ];
        let (stop, stop_rx) = watch::channel(false);
        let workers = handlers
            .into_iter()
            .map(|(spec, handler, n)| {
                tokio::spawn(Worker::new(db.clone(), spec, handler, n).run(stop_rx.clone()))
            })
            .collect();
        let ingest = IngestService {
            store,
            blobs: blobs.clone(),
            probe: Arc::new(Ffmpeg::default()),
        };
        Ok(Self {
            db,
            blobs,
            notifier,
            show,
            ingest,
            dispatcher,
            data_dir: settings.data_dir.clone(),
            stop,
            workers,
            _lock: lock,
        })
    }

    /// Messages still to be processed.
    pub fn pending(&self) -> anyhow::Result<u64> {
        Ok(self.db.pending(WORK_QUEUES)?)
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for w in self.workers {
            let _ = w.await;
        }
        clear_scratch(&self.data_dir);
    }
}

/// Empties `<data-dir>/tmp`, where tools write before a file is stored. Only for the holder
/// of the runner lock: no one else writes there then.
fn clear_scratch(data_dir: &Path) {
    let scratch = data_dir.join("tmp");
    if let Ok(entries) = std::fs::read_dir(&scratch) {
        for entry in entries.flatten() {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a scratch file");
            }
        }
    }
}
