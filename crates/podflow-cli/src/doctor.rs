//! `podflow doctor`: what a user debugging a machine needs on one screen — the CPU and the
//! instruction sets that matter, the speech engine and compute type that will run, the model,
//! ffmpeg, the LLM endpoint and the data directory — with the fix for whatever is missing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use podflow_core::{
    ErrorKind, SpeechToText,
    language::{self, Language},
};
use podflow_speech::{cpu::CpuSummary, engine::LocalEngine, locate};
use serde::Serialize;

use crate::{
    commands::{EXIT_BAD_INPUT, EXIT_OK},
    runtime::Settings,
};

/// How a check came out: `Fail` is something podflow needs (exit 1); `Warn` limits what a run
/// delivers without stopping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do, where something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check and prints them; exit 1 when something needed is missing.
pub async fn doctor(settings: &Settings, json: bool) -> anyhow::Result<i32> {
    let mut checks = vec![Check::ok("cpu", CpuSummary::detect().line())];
    checks.extend(speech_checks(settings).await);
    checks.push(program_check("ffmpeg"));
    checks.push(program_check("ffprobe"));
    checks.push(llm_check(settings).await);
    checks.push(data_dir_check(&settings.data_dir));
    print(&checks, json)?;
    Ok(exit_code(&checks))
}

fn exit_code(checks: &[Check]) -> i32 {
    if checks.iter().any(|c| c.status == Status::Fail) {
        EXIT_BAD_INPUT
    } else {
        EXIT_OK
    }
}

fn print(checks: &[Check], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(checks)?);
        return Ok(());
    }
    for check in checks {
        let status = match check.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        println!("{status}  {:<11} {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            println!("{:17}→ {fix}", "");
        }
    }
    Ok(())
}

/// The CTranslate2 library, then the engine that will transcribe (loading it, as a run
/// would), its compute type and the model it loaded.
async fn speech_checks(settings: &Settings) -> Vec<Check> {
    let mut checks = Vec::new();
    // (Were the library gone, this binary would not have started.)
    if let Some(library) = locate::ctranslate2_library() {
        checks.push(Check::ok("ctranslate2", library.to_owned()));
    }
    match engine_checks(settings).await {
        Ok(found) => checks.extend(found),
        Err(failed) => checks.push(failed),
    }
    checks
}

/// The engine and model checks, or the one that failed.
async fn engine_checks(settings: &Settings) -> Result<Vec<Check>, Check> {
    let fail = |name: &'static str, fix: &'static str| {
        move |e: &dyn std::fmt::Display| Check::problem(name, Status::Fail, e.to_string(), fix)
    };
    let model_path = match settings.whisper_model.clone() {
        Some(path) => path,
        None => locate::model().map_err(|e| {
            fail(
                "model",
                "run scripts/setup.sh, or set PODFLOW_WHISPER_MODEL",
            )(&e)
        })?,
    };
    let engine = LocalEngine::new(
        settings.engine,
        Some(model_path.clone()),
        settings.data_dir.join("models"),
    )
    .map_err(|e| fail("engine", "set PODFLOW_WHISPER_ENGINE=whisper.cpp")(&e))?
    .with_language(settings.language.clone());
    let (engine, prepared) = tokio::task::spawn_blocking(move || {
        let result = engine.load();
        (engine, result)
    })
    .await
    .map_err(|e| {
        fail(
            "engine",
            "run `podflow --verbose doctor` and report its log",
        )(&e)
    })?;
    prepared.map_err(|e| {
        if e.kind() == ErrorKind::Input {
            // The model loads, but not for the language asked for.
            fail(
                "language",
                "use a multilingual model (scripts/setup.sh --multilingual, then PODFLOW_WHISPER_MODEL), or PODFLOW_LANGUAGE=auto",
            )(&e)
        } else {
            fail(
                "engine",
                "run scripts/setup.sh; PODFLOW_WHISPER_MODEL must name a CTranslate2 Whisper directory or a ggml file",
            )(&e)
        }
    })?;
    let compute = engine
        .compute_type()
        .map(|k| format!(", compute type {k}"))
        .unwrap_or_default();
    let detail = format!("{}{compute}", engine.engine());
    let engine_check = match engine.notice() {
        Some(notice) => Check::problem(
            "engine",
            Status::Warn,
            format!("{detail} — {notice}"),
            "the other engine transcribes instead (whisper.cpp is about half as fast); the reason says what to change",
        ),
        None => Check::ok("engine", detail),
    };
    let model_check = Check::ok(
        "model",
        format!(
            "{} at {} ({})",
            engine.model(),
            model_path.display(),
            megabytes(&model_path)
        ),
    );
    let language = match (&settings.language, engine.model().ends_with(".en")) {
        (Language::Auto, true) => format!("auto: English ({} is English-only)", engine.model()),
        (Language::Auto, false) => "auto: identified from each episode's audio".to_owned(),
        (Language::Code(code), _) => format!("{code} ({})", language::display_name(code)),
    };
    Ok(vec![
        engine_check,
        model_check,
        Check::ok("language", language),
    ])
}

/// The size of a model file, or of the weights in a model directory.
fn megabytes(path: &Path) -> String {
    let file = if path.is_dir() {
        path.join("model.bin")
    } else {
        path.to_owned()
    };
    std::fs::metadata(&file).map_or_else(
        |_| "size unknown".to_owned(),
        |m| format!("{:.1} MB", m.len() as f64 / 1e6),
    )
}

fn program_check(program: &'static str) -> Check {
    match Command::new(program).arg("-version").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            Check::ok(program, text.lines().next().unwrap_or(program).to_owned())
        }
        Ok(out) => Check::problem(
            program,
            Status::Fail,
            format!("`{program} -version` failed ({})", out.status),
            "reinstall it: apt-get install ffmpeg",
        ),
        Err(e) => Check::problem(
            program,
            Status::Fail,
            format!("not found ({e})"),
            "install it: apt-get install ffmpeg (scripts/setup.sh does)",
        ),
    }
}

async fn llm_check(settings: &Settings) -> Check {
    if settings.llm_provider == "bedrock" {
        return Check::ok(
            "llm",
            "Amazon Bedrock (Converse); credentials and region are read from the environment on the first prompt",
        );
    }
    let key = match crate::runtime::llm_api_key(settings).await {
        Ok(key) => key,
        Err(e) => {
            return Check::problem(
                "llm",
                Status::Fail,
                format!("{e:#}"),
                "set PODFLOW_LLM_API_KEY to the key, or to file:PATH, ssm:NAME or secretsmanager:ID naming it",
            );
        }
    };
    let client = bedrock_invoker::openai::OpenAiCompatible::new(
        &settings.llm_url,
        key,
        Duration::from_secs(3),
    );
    match client.probe().await {
        Ok(answer) => Check::ok("llm", answer),
        Err(reason) => Check::problem(
            "llm",
            Status::Warn,
            reason,
            "the built-in extractive engine writes the texts meanwhile; for LLM-written ones set PODFLOW_LLM_URL (e.g. http://localhost:11434/v1 for Ollama) and run the episodes again (`podflow dlq replay --all` for prompts that failed)",
        ),
    }
}

/// The data directory, or the nearest existing folder above it (podflow creates the rest):
/// a file can be created there.
fn data_dir_check(dir: &Path) -> Check {
    let existing: PathBuf = dir
        .ancestors()
        .find(|p| p.is_dir())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let probe = existing.join(format!(".podflow-doctor-{}", std::process::id()));
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    let state = if dir.is_dir() {
        "exists"
    } else {
        "will be created"
    };
    if writable {
        Check::ok("data dir", format!("{} ({state}, writable)", dir.display()))
    } else {
        Check::problem(
            "data dir",
            Status::Fail,
            format!(
                "{} ({state}): {} is not writable",
                dir.display(),
                existing.display()
            ),
            "choose another with --data-dir or PODFLOW_DATA_DIR",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_makes_the_exit_code_one_and_a_warning_does_not() {
        let mut checks = vec![
            Check::ok("cpu", "x"),
            Check::problem("llm", Status::Warn, "down", "start it"),
        ];
        assert_eq!(exit_code(&checks), EXIT_OK);
        checks.push(Check::problem(
            "ffmpeg",
            Status::Fail,
            "not found",
            "install it",
        ));
        assert_eq!(exit_code(&checks), EXIT_BAD_INPUT);
    }

    #[test]
    fn a_missing_program_fails_with_the_install_command() {
        let check = program_check("podflow-no-such-program-here");
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("not found"), "{}", check.detail);
        assert!(
            check
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("apt-get install"))
        );
    }

    #[test]
    fn a_data_dir_under_a_writable_folder_is_fine_and_an_unwritable_one_fails() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fresh = tmp.path().join("not-yet/data");
        let check = data_dir_check(&fresh);
        assert_eq!(check.status, Status::Ok, "{}", check.detail);
        assert!(check.detail.contains("will be created"));
        // /proc refuses new files, for root too.
        let check = data_dir_check(Path::new("/proc/podflow-data"));
        assert_eq!(check.status, Status::Fail, "{}", check.detail);
        assert!(check.fix.is_some());
    }
}
