//! `podflow`: runs the whole pipeline on one machine — the same service handlers as on AWS,
//! over the embedded adapters (SQLite bus and queues, files, ffmpeg, local Whisper, an
//! OpenAI-compatible LLM).

mod approve;
mod commands;
mod dlq;
mod doctor;
mod report;
mod runtime;
mod serve;
mod space;

use podflow_core::{TextEngine, language::Language};
use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use podflow_embedded::Durability;
use podflow_speech::engine::EngineKind;
use prompt_dispatcher::ReplayVersion;
use publisher::approval::{Request, TitleChoice};
use transcriber::TranscriptFormat;

#[derive(Parser)]
#[command(
    name = "podflow",
    version,
    about = "Turn a recorded podcast episode into everything a show needs each week"
)]
struct Cli {
    /// Where podflow keeps its state and outputs.
    #[arg(
        long,
        global = true,
        env = "PODFLOW_DATA_DIR",
        default_value = "./podflow-data"
    )]
    data_dir: PathBuf,
    /// Log what podflow decides (engine, compute type, fallbacks) to standard error.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct LlmArgs {
    /// Which LLM API: `openai` (any OpenAI-compatible server) or `bedrock` (Converse, with
    /// AWS credentials and region from the environment).
    #[arg(long, env = "PODFLOW_LLM_PROVIDER", default_value = "openai")]
    llm_provider: String,
    /// Base URL of an OpenAI-compatible API (requests go to <URL>/chat/completions);
    /// default http://localhost:11434/v1 (Ollama), used only when something answers there.
    #[arg(long, env = "PODFLOW_LLM_URL")]
    llm_url: Option<String>,
    /// Which engine writes the summary, chapters, show notes, clips and titles: `auto` (the
    /// LLM, and the built-in extractive engine for any output whose prompt failed, or for
    /// all of them when no LLM was given and none answers at the default URL),
    /// `extractive` (no LLM at all) or `llm` (the LLM alone).
    #[arg(long, env = "PODFLOW_TEXT_ENGINE", default_value = "auto")]
    text_engine: TextEngine,
    /// The model prompts with `model = "default"` use.
    #[arg(long, env = "PODFLOW_LLM_MODEL", default_value = "llama3.2")]
    llm_model: String,
    #[arg(long, env = "PODFLOW_LLM_API_KEY", hide_env_values = true)]
    llm_api_key: Option<String>,
    /// A directory of prompt files that add to or replace the bundled ones.
    #[arg(long, env = "PODFLOW_PROMPTS_DIR")]
    prompts_dir: Option<PathBuf>,
    /// A Whisper model directory (CTranslate2) or ggml file; default: the bundled tiny.en.
    #[arg(long, env = "PODFLOW_WHISPER_MODEL")]
    whisper_model: Option<PathBuf>,
    /// The local speech engine (default: ctranslate2 where built in, else whisper.cpp).
    #[arg(long, env = "PODFLOW_WHISPER_ENGINE", value_enum)]
    engine: Option<EngineKind>,
    /// The language spoken: `auto` (identified from the audio; the bundled English-only
    /// model takes it as English) or an ISO 639-1 code such as de (docs/transcription.md).
    #[arg(long, env = "PODFLOW_LANGUAGE", default_value = "auto")]
    language: Language,
    #[arg(long, env = "PODFLOW_MP3_BITRATE", default_value_t = 128)]
    mp3_bitrate_kbps: u32,
    /// How many failed tries (5xx, timeouts, garbled answers) a prompt gets before it goes
    /// to the dead-letter queue; throttled tries do not count.
    #[arg(long, env = "PODFLOW_PROMPT_ATTEMPTS", default_value_t = 5)]
    prompt_attempts: u32,
    /// Minutes a prompt may stay throttled by its provider (from the first throttle)
    /// before it goes to the dead-letter queue.
    #[arg(long, env = "PODFLOW_PROMPT_THROTTLE_BUDGET", default_value_t = 30)]
    prompt_throttle_budget: u64,
    /// A TOML file of per-model limits: requests and tokens per minute, context size.
    #[arg(long, env = "PODFLOW_MODEL_LIMITS")]
    model_limits: Option<PathBuf>,
    /// A TOML price table (see docs/publishing.md); replaces bundled prices by name.
    #[arg(long, env = "PODFLOW_PRICES")]
    prices: Option<PathBuf>,
    /// A Slack incoming-webhook URL for "MP3 ready" and summary messages.
    #[arg(long, env = "PODFLOW_SLACK_WEBHOOK_URL", hide_env_values = true)]
    slack_webhook_url: Option<String>,
    /// An SNS topic ARN to notify instead of Slack (AWS credentials from the environment).
    #[arg(long, env = "PODFLOW_SNS_TOPIC_ARN")]
    sns_topic_arn: Option<String>,
    /// How hard the database's commits hold: `normal` survives a killed process, `full` also
    /// a power cut (every commit waits for the disk; see docs/architecture.md).
    #[arg(long, env = "PODFLOW_DURABILITY", value_enum, default_value_t = DurabilityArg::Normal)]
    durability: DurabilityArg,
    /// Fault injection: deliver every bus event twice (to show handlers are idempotent).
    #[arg(long, env = "PODFLOW_CHAOS_DUPLICATE_DELIVERY", hide = true)]
    chaos_duplicate_delivery: bool,
    #[command(flatten)]
    show: ShowArgs,
}

/// The show, above `podflow.toml` and `PODFLOW_SHOW_*` (see docs/publishing.md).
#[derive(clap::Args, Clone)]
struct ShowArgs {
    /// The show's title (feed, MP3 tags).
    #[arg(long)]
    show_title: Option<String>,
    /// The address the data directory's files are served from (the feed's links); default:
    /// the data directory as a file:// URL.
    #[arg(long)]
    base_url: Option<String>,
    /// The hosts' names, comma-separated, in the order their voices are usually first heard.
    #[arg(long)]
    hosts: Option<String>,
    /// This run's speakers, comma-separated, in the order their voices are first heard
    /// (default: the hosts): the names transcripts, captions, prompts and the feed use.
    #[arg(long, env = "PODFLOW_SPEAKERS")]
    speakers: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DurabilityArg {
    Normal,
    Full,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up; size does not matter
enum Command {
    /// Process episodes to completion (exit 0: all done; 3: some prompts failed; 1: bad input or setup).
    Run {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON object per episode instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        llm: LlmArgs,
    },
    /// Transcribe one file only (no prompts, nothing recorded): subtitles or a transcript.
    Transcribe {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "txt")]
        format: TranscriptFormat,
        /// Write here instead of to standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// A Whisper model directory (CTranslate2) or ggml file; default: the bundled tiny.en.
        #[arg(long, env = "PODFLOW_WHISPER_MODEL")]
        whisper_model: Option<PathBuf>,
        /// The local speech engine (default: ctranslate2 where built in, else whisper.cpp).
        #[arg(long, env = "PODFLOW_WHISPER_ENGINE", value_enum)]
        engine: Option<EngineKind>,
        /// The language spoken: `auto` (identified from the audio; the bundled English-only
        /// model takes it as English) or an ISO 639-1 code such as de.
        #[arg(long, env = "PODFLOW_LANGUAGE", default_value = "auto")]
        language: Language,
        /// Seconds of audio decoded at a time (memory stays flat for long episodes).
        #[arg(long, default_value_t = 300.0, hide = true)]
        window_seconds: f64,
    },
    /// Check this machine: CPU, speech engine and compute type, model, ffmpeg, LLM endpoint,
    /// data directory (exit 1 when something needed is missing, with the fix).
    Doctor {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        llm: LlmArgs,
    },
    /// Show each step and prompt of an episode (or all) with state, attempts and last error.
    Status {
        episode_id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve an episode's proposal (shows with approval = "required"): it is published
    /// with the chosen title and, optionally, an edited summary.
    Approve {
        episode_id: String,
        /// The proposal to approve (default: the latest; an older one is refused).
        #[arg(long)]
        proposal: Option<u32>,
        /// Publish the proposal's suggested title number N (from 1; default: the first).
        #[arg(long, value_name = "N")]
        title: Option<usize>,
        /// Publish this title instead of a suggestion (any text, numbers included).
        #[arg(long, value_name = "TEXT", conflicts_with = "title")]
        title_text: Option<String>,
        /// A file holding the summary as it should be published.
        #[arg(long)]
        summary_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        llm: LlmArgs,
    },
    /// Reject an episode's proposal with a note; `--rerun` prompts run again (optionally on
    /// another model or prompt version) and their outcome is proposed anew.
    Reject {
        episode_id: String,
        #[arg(long)]
        proposal: Option<u32>,
        /// Why (kept in the episode's approve step).
        #[arg(long, required = true)]
        note: String,
        /// Prompts to run again, comma-separated (e.g. titles,summary).
        #[arg(long, value_delimiter = ',')]
        rerun: Vec<String>,
        /// Run them on this model.
        #[arg(long)]
        model: Option<String>,
        /// Render them from this prompt version: `latest`, or a number the catalog holds.
        #[arg(long, value_name = "N|latest")]
        prompt_version: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        llm: LlmArgs,
    },
    /// Inspect and replay the dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// A local web page: episodes with their steps, prompts, player and outputs; approve or
    /// reject proposals, replay dead letters, browse the prompt catalog. The pipeline runs
    /// meanwhile (this holds the data directory, as `run` does); Ctrl-C stops both.
    Serve {
        /// The port to listen on (0: any free one; the address is printed).
        #[arg(long, default_value_t = 8750)]
        port: u16,
        /// The address to listen on. Anything but loopback shows the page, which has no
        /// login, to the network.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        #[command(flatten)]
        llm: LlmArgs,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up; size does not matter
enum DlqAction {
    /// List dead-lettered messages with the reason they failed.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sqs: SqsArgs,
        /// List the deployed stack's event dead-letter queue (stack output `EventDlqUrl`)
        /// instead: events a function gave up on or EventBridge could not deliver.
        #[arg(long, requires = "event_dlq_url")]
        events: bool,
        #[arg(long, env = "PODFLOW_EVENT_DLQ_URL")]
        event_dlq_url: Option<String>,
    },
    /// Move messages back to their queue and process them (never re-transcodes or re-transcribes).
    Replay {
        message_ids: Vec<String>,
        #[arg(long, conflicts_with = "message_ids")]
        all: bool,
        /// Use this model for the replayed prompts.
        #[arg(long)]
        model: Option<String>,
        /// Render the replayed prompts again from the catalog (bundled prompts plus
        /// PODFLOW_PROMPTS_DIR): `latest`, or a version number the catalog must hold.
        #[arg(long, value_name = "N|latest", value_parser = parse_replay_version)]
        prompt_version: Option<ReplayVersion>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sqs: SqsArgs,
        /// Replay the deployed stack's event dead-letter queue instead: podflow's events go
        /// back onto the bus, S3 uploads are announced again by S3.
        #[arg(long, requires_all = ["event_dlq_url", "event_bus"], conflicts_with_all = ["model", "prompt_version"])]
        events: bool,
        #[arg(long, env = "PODFLOW_EVENT_DLQ_URL")]
        event_dlq_url: Option<String>,
        /// The stack's podflow bus (name or ARN; stack output `EventBusName`).
        #[arg(long, env = "PODFLOW_EVENT_BUS")]
        event_bus: Option<String>,
        #[command(flatten)]
        llm: LlmArgs,
    },
}

/// A deployed stack's prompt queues (stack outputs `PromptDlqUrl` and `PromptQueueUrl`):
/// with both set, `dlq` works on SQS instead of the local data directory.
#[derive(clap::Args)]
struct SqsArgs {
    #[arg(long, env = "PODFLOW_PROMPT_DLQ_URL", requires = "sqs_queue_url")]
    sqs_dlq_url: Option<String>,
    #[arg(long, env = "PODFLOW_PROMPT_QUEUE_URL")]
    sqs_queue_url: Option<String>,
}

impl SqsArgs {
    fn queues(&self) -> Option<dlq::SqsQueues> {
        Some(dlq::SqsQueues {
            dlq_url: self.sqs_dlq_url.clone()?,
            queue_url: self.sqs_queue_url.clone()?,
        })
    }
}

fn parse_replay_version(text: &str) -> Result<ReplayVersion, String> {
    if text == "latest" {
        return Ok(ReplayVersion::Latest);
    }
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(ReplayVersion::Exactly(n)),
        _ => Err(format!(
            "`{text}` is not a prompt version: give a number from 1 up, or `latest`"
        )),
    }
}

fn settings(data_dir: PathBuf, llm: LlmArgs) -> runtime::Settings {
    runtime::Settings {
        data_dir,
        llm_provider: llm.llm_provider,
        llm_url_given: llm.llm_url.is_some(),
        llm_url: llm
            .llm_url
            .unwrap_or_else(|| runtime::DEFAULT_LLM_URL.to_owned()),
        text_engine: llm.text_engine,
        llm_model: llm.llm_model,
        llm_api_key: llm.llm_api_key.map(podflow_core::secret::Secret::from),
        prompts_dir: llm.prompts_dir,
        whisper_model: llm.whisper_model,
        engine: llm.engine.unwrap_or_else(EngineKind::default_kind),
        language: llm.language,
        mp3_bitrate_kbps: llm.mp3_bitrate_kbps,
        prompt_attempts: llm.prompt_attempts.max(1),
        prompt_throttle_budget: Duration::from_secs(60 * llm.prompt_throttle_budget),
        model_limits: llm.model_limits,
        prices: llm.prices,
        slack_webhook_url: llm
            .slack_webhook_url
            .map(podflow_core::secret::Secret::from),
        sns_topic_arn: llm.sns_topic_arn,
        durability: match llm.durability {
            DurabilityArg::Normal => Durability::Normal,
            DurabilityArg::Full => Durability::Full,
        },
        duplicate_deliveries: llm.chaos_duplicate_delivery,
        speakers: llm
            .show
            .speakers
            .as_deref()
            .map(podflow_core::show::names)
            .unwrap_or_default(),
        show_flags: podflow_core::show::ShowConfig {
            title: llm.show.show_title,
            base_url: llm.show.base_url,
            hosts: llm.show.hosts.as_deref().map(podflow_core::show::names),
            ..Default::default()
        },
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    warn_of_secrets_on_the_command_line(std::env::args());
    podflow_core::telemetry::init(if cli.verbose { "info" } else { "warn" });
    let result = match cli.command {
        Command::Doctor { json, llm } => doctor::doctor(&settings(cli.data_dir, llm), json).await,
        Command::Run { files, json, llm } => {
            commands::run(&settings(cli.data_dir, llm), &files, json).await
        }
        Command::Transcribe {
            file,
            format,
            output,
            whisper_model,
            engine,
            language,
            window_seconds,
        } => {
            let request = commands::TranscribeRequest {
                file,
                format,
                output,
                whisper_model,
                engine: engine.unwrap_or_else(EngineKind::default_kind),
                language,
                window_seconds,
            };
            commands::transcribe(&cli.data_dir, &request).await
        }
        Command::Approve {
            episode_id,
            proposal,
            title,
            title_text,
            summary_file,
            json,
            llm,
        } => {
            let summary = match summary_file
                .as_deref()
                .map(std::fs::read_to_string)
                .transpose()
            {
                Ok(summary) => summary,
                Err(e) => {
                    let file = summary_file.unwrap_or_default();
                    eprintln!(
                        "error: cannot read the summary file {}: {e}; give a readable text file",
                        file.display()
                    );
                    exit(Ok(commands::EXIT_BAD_INPUT));
                }
            };
            let title = match (title, title_text) {
                (Some(n), _) => TitleChoice::Suggested(n),
                (None, Some(text)) => TitleChoice::Written(text.trim().to_owned()),
                (None, None) => TitleChoice::First,
            };
            let args = approve::DecisionArgs {
                episode_id,
                proposal,
                request: Request::Approve { title, summary },
            };
            approve::decide(&settings(cli.data_dir, llm), args, json).await
        }
        Command::Reject {
            episode_id,
            proposal,
            note,
            rerun,
            model,
            prompt_version,
            json,
            llm,
        } => {
            let args = approve::DecisionArgs {
                episode_id,
                proposal,
                request: Request::Reject {
                    note,
                    rerun,
                    model,
                    prompt_version,
                },
            };
            approve::decide(&settings(cli.data_dir, llm), args, json).await
        }
        Command::Serve { port, bind, llm } => {
            serve::serve(&settings(cli.data_dir, llm), serve::Options { bind, port }).await
        }
        Command::Status { episode_id, json } => {
            commands::status(&cli.data_dir, episode_id.as_deref(), json).await
        }
        Command::Dlq {
            action:
                DlqAction::List {
                    json,
                    sqs,
                    events,
                    event_dlq_url,
                },
        } => match (events.then_some(event_dlq_url).flatten(), sqs.queues()) {
            (Some(url), _) => dlq::list(&dlq::event_dlq(&url).await, json).await,
            (None, Some(queues)) => dlq::list(&queues.open().await, json).await,
            (None, None) => match runtime::open_db(&cli.data_dir) {
                Ok(db) => dlq::list(&db, json).await,
                Err(e) => Err(e),
            },
        },
        Command::Dlq {
            action:
                DlqAction::Replay {
                    message_ids,
                    all,
                    model,
                    prompt_version,
                    json,
                    sqs,
                    events,
                    event_dlq_url,
                    event_bus,
                    llm,
                },
        } => {
            if !all && message_ids.is_empty() {
                eprintln!(
                    "error: name the messages to replay (see `podflow dlq list`) or pass --all"
                );
                exit(Ok(commands::EXIT_BAD_INPUT));
            }
            let changes = dlq::ReplayChanges {
                model,
                prompt_version,
            };
            let selection = dlq::Selection {
                ids: &message_ids,
                all,
            };
            if let (true, Some(url), Some(bus)) = (events, &event_dlq_url, &event_bus) {
                exit(dlq::replay_events(url, bus, &selection, json).await);
            }
            let settings = settings(cli.data_dir, llm);
            match sqs.queues() {
                Some(queues) => {
                    dlq::replay_on_sqs(&queues, &selection, &changes, &settings, json).await
                }
                None => commands::dlq_replay(&settings, &selection, &changes, json).await,
            }
        }
    };
    exit(result);
}

/// A secret given as a flag is visible to every user of the machine (`ps`, shell history):
/// it still works, with a warning naming the variable to use instead.
fn warn_of_secrets_on_the_command_line(args: impl Iterator<Item = String>) {
    const SECRET_FLAGS: [(&str, &str); 2] = [
        ("--llm-api-key", "PODFLOW_LLM_API_KEY"),
        ("--slack-webhook-url", "PODFLOW_SLACK_WEBHOOK_URL"),
    ];
    for arg in args {
        for (flag, env) in SECRET_FLAGS {
            if arg == flag || arg.starts_with(&format!("{flag}=")) {
                eprintln!(
                    "warning: {flag} puts a secret on the command line, where `ps` and shell history show it; set {env} instead, to the value or to `file:PATH`, `ssm:NAME` or `secretsmanager:ID` naming it"
                );
            }
        }
    }
}

/// Exits with the command's code, or prints its error in words (exit 1).
fn exit(result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e
                .downcast_ref::<commands::Interrupted>()
                .map_or(commands::EXIT_BAD_INPUT, |i| i.exit_code);
            std::process::exit(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podflow_core::secret::Secret;

    /// Settings are logged and printed in errors as `{:?}`: the key and the webhook (given
    /// here as flags, the worst case) never show in them.
    #[test]
    fn the_settings_debug_output_holds_no_secret() {
        let cli = Cli::try_parse_from([
            "podflow",
            "run",
            "episode.wav",
            "--llm-api-key",
            "sk-MARKER",
            "--slack-webhook-url",
            "https://hooks.slack.com/services/T0/B0/xoxMARKER",
        ])
        .expect("arguments");
        let Command::Run { llm, .. } = cli.command else {
            panic!("parsed as another command");
        };
        let settings = settings(PathBuf::from("data"), llm);
        let shown = format!("{settings:?}\n{settings:#?}");
        assert!(!shown.contains("MARKER"), "{shown}");
        assert!(shown.contains("Secret(redacted)"), "{shown}");
        assert_eq!(
            settings.llm_api_key.as_ref().map(Secret::expose),
            Some("sk-MARKER")
        );
    }
}
