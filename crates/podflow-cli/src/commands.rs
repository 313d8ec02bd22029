//! The subcommands.

use std::{path::PathBuf, time::Duration};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use podflow_core::{
    EpisodeStore, ErrorKind, MediaProbe, PromptStatus, SpeechToText, language::Language,
};
use podflow_media::Ffmpeg;
use podflow_speech::engine::{EngineKind, LocalEngine};
use transcriber::TranscriptFormat;

use crate::{
    dlq::{self, ReplayChanges, Selection},
    report::EpisodeReport,
    runtime::{Pipeline, Settings, open_db},
};

/// Exit codes (documented in the README).
pub const EXIT_OK: i32 = 0;
pub const EXIT_BAD_INPUT: i32 = 1;
pub const EXIT_PROMPTS_FAILED: i32 = 3;

/// The run was stopped by a signal; its code is 128 + the signal's number, as shells report.
#[derive(Debug, thiserror::Error)]
#[error("{signal}: stopped; finished steps are kept, and running the same command again continues")]
pub struct Interrupted {
    signal: &'static str,
    pub exit_code: i32,
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
async fn interrupted() -> anyhow::Result<Interrupted> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => Interrupted { signal: "interrupted (SIGINT)", exit_code: 130 },
        _ = terminate.recv() => Interrupted { signal: "terminated (SIGTERM)", exit_code: 143 },
    })
}

/// Drains until the work is done or a signal stops it; either way the workers stop (and
/// take their ffmpeg children with them) and scratch files are cleared.
async fn drain_until_stopped(
    pipeline: Pipeline,
    episodes: &[String],
    quiet: bool,
) -> anyhow::Result<()> {
    let drained = tokio::select! {
        drained = drain(&pipeline, episodes, quiet) => drained,
        signal = interrupted() => Err(signal?.into()),
    };
    pipeline.shutdown().await;
    drained
}

/// Waits until every queue is drained, refreshing one status line per episode.
async fn drain(pipeline: &Pipeline, episodes: &[String], quiet: bool) -> anyhow::Result<()> {
    let bars = MultiProgress::new();
    if quiet {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let lines: Vec<ProgressBar> = episodes
        .iter()
        .map(|_| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
        .collect();
    loop {
        for (id, bar) in episodes.iter().zip(&lines) {
            if let Some(report) = EpisodeReport::load(&pipeline.db, id).await? {
                bar.set_message(report.progress_line());
            }
        }
        if pipeline.pending()? == 0 {
            break;
        }
        crate::space::check(&pipeline.data_dir)?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for bar in lines {
        bar.finish();
    }
    Ok(())
}

async fn reports_for(
    data_dir: &std::path::Path,
    episodes: &[String],
) -> anyhow::Result<Vec<EpisodeReport>> {
    let db = open_db(data_dir)?;
    let mut reports = Vec::new();
    for id in episodes {
        if let Some(r) = EpisodeReport::load(&db, id).await? {
            reports.push(r);
        }
    }
    Ok(reports)
}

fn print_reports(reports: &[EpisodeReport], json: bool, data_dir: &std::path::Path) {
    for report in reports {
        if json {
            println!("{}", report.run_json(data_dir));
        } else {
            println!("{}", report.table());
        }
    }
}

fn exit_code(reports: &[EpisodeReport], bad_input: bool) -> i32 {
    if bad_input
        || reports
            .iter()
            .any(|r| r.status == "failed" || r.status == "in_progress")
    {
        EXIT_BAD_INPUT
    } else if reports.iter().any(|r| r.status == "partial") {
        EXIT_PROMPTS_FAILED
    } else {
        EXIT_OK
    }
}

pub async fn run(settings: &Settings, files: &[PathBuf], json: bool) -> anyhow::Result<i32> {
    let pipeline = Pipeline::start(settings).await?;
    let mut episodes = Vec::new();
    let mut bad_input = false;
    for file in files {
        match pipeline.ingest.ingest_file(file).await {
            Ok(event) => {
                let id = event.episode_id().unwrap_or_default().to_owned();
                pipeline.db.publish(std::slice::from_ref(&event))?;
                if !episodes.contains(&id) {
                    episodes.push(id);
                }
            }
            Err(e) if e.is_bad_input() => {
                eprintln!("error: {}", podflow_core::report(&e));
                bad_input = true;
            }
            Err(e) => {
                pipeline.shutdown().await;
                // Out of space while copying the episode in: say that, not the copy's error.
                crate::space::check(&settings.data_dir)?;
                return Err(e.into());
            }
        }
    }
    drain_until_stopped(pipeline, &episodes, json).await?;
    let reports = reports_for(&settings.data_dir, &episodes).await?;
    print_reports(&reports, json, &settings.data_dir);
    if !json {
        // Each distinct reason once, in full (table cells are shortened).
        let mut reasons: Vec<&str> = reports
            .iter()
            .flat_map(|r| r.prompts.iter())
            .filter(|p| p.status == PromptStatus::Failed)
            .filter_map(|p| p.last_error.as_deref())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        for reason in reasons {
            eprintln!("prompt failure: {reason}");
        }
    }
    say_who_waits(&reports, json);
    if !json && reports.iter().any(|r| r.status == "partial") {
        eprintln!(
            "some prompts failed and are in the dead-letter queue: see `podflow dlq list`, fix the cause, then `podflow dlq replay --all`"
        );
    }
    Ok(exit_code(&reports, bad_input))
}

/// Runs the pipeline until `episodes` settle after a decision, then reports them.
pub async fn settle(
    pipeline: Pipeline,
    data_dir: &std::path::Path,
    episodes: &[String],
    json: bool,
) -> anyhow::Result<i32> {
    drain_until_stopped(pipeline, episodes, json).await?;
    let reports = reports_for(data_dir, episodes).await?;
    print_reports(&reports, json, data_dir);
    say_who_waits(&reports, json);
    Ok(exit_code(&reports, false))
}

/// Episodes whose proposal waits for a person, and the commands that decide.
fn say_who_waits(reports: &[EpisodeReport], json: bool) {
    if json {
        return;
    }
    for r in reports.iter().filter(|r| r.status == "awaiting_approval") {
        eprintln!(
            "{} awaits approval: `podflow approve {0} [--title N | --title-text TEXT] [--summary-file F]`, or `podflow reject {0} --note …`",
            r.episode_id
        );
    }
}

pub async fn status(
    data_dir: &std::path::Path,
    episode: Option<&str>,
    json: bool,
) -> anyhow::Result<i32> {
    let db = open_db(data_dir)?;
    let ids: Vec<String> = match episode {
        Some(id) => vec![id.to_owned()],
        None => db
            .episodes()
            .await?
            .into_iter()
            .map(|e| e.episode_id)
            .collect(),
    };
    if ids.is_empty() && !json {
        println!(
            "no episodes yet in {}; start one with `podflow run FILE`",
            data_dir.display()
        );
    }
    for id in ids {
        match EpisodeReport::load(&db, &id).await? {
            Some(r) if json => println!("{}", serde_json::to_string(&r)?),
            Some(r) => println!("{}", r.table()),
            None => {
                eprintln!(
                    "error: no episode `{id}` in {}; `podflow status` lists them",
                    data_dir.display()
                );
                return Ok(EXIT_BAD_INPUT);
            }
        }
    }
    Ok(EXIT_OK)
}

/// `podflow dlq replay` on the local queues: the replayed prompts run at once, and the run
/// ends as `podflow run` does, with each touched episode's report.
pub async fn dlq_replay(
    settings: &Settings,
    selection: &Selection<'_>,
    changes: &ReplayChanges,
    json: bool,
) -> anyhow::Result<i32> {
    let pipeline = Pipeline::start(settings).await?;
    let replayed = dlq::replay(
        &pipeline.db,
        selection,
        changes,
        Some(pipeline.dispatcher.as_ref()),
        Some(&pipeline.db as &dyn EpisodeStore),
        json,
    )
    .await?;
    let mut episodes: Vec<String> = Vec::new();
    for job in &replayed.jobs {
        if !episodes.contains(&job.episode_id) {
            episodes.push(job.episode_id.clone());
        }
    }
    drain_until_stopped(pipeline, &episodes, json).await?;
    let reports = reports_for(&settings.data_dir, &episodes).await?;
    print_reports(&reports, json, &settings.data_dir);
    let still_failed = reports
        .iter()
        .any(|r| r.prompts.iter().any(|p| p.status == PromptStatus::Failed));
    Ok(if replayed.exit != EXIT_OK {
        replayed.exit
    } else if still_failed {
        EXIT_PROMPTS_FAILED
    } else {
        EXIT_OK
    })
}

/// What `podflow transcribe` was asked for.
#[derive(Debug)]
pub struct TranscribeRequest {
    pub file: PathBuf,
    pub format: TranscriptFormat,
    pub output: Option<PathBuf>,
    pub whisper_model: Option<PathBuf>,
    pub engine: EngineKind,
    pub language: Language,
    pub window_seconds: f64,
}

/// Transcribes one file with a progress bar; nothing is recorded in the data directory
/// but the converted model.
pub async fn transcribe(
    data_dir: &std::path::Path,
    request: &TranscribeRequest,
) -> anyhow::Result<i32> {
    let file = &request.file;
    let engine = match LocalEngine::new(
        request.engine,
        request.whisper_model.clone(),
        data_dir.join("models"),
    ) {
        Ok(engine) => engine.with_language(request.language.clone()),
        Err(e) => {
            eprintln!("error: {}", e.report());
            return Ok(EXIT_BAD_INPUT);
        }
    };
    // ffprobe first: a file it rejects is reported in its words before any model loads,
    // and the length it reads sizes the bar and the engine's pieces (no second probe).
    let info = match Ffmpeg::default().probe(file).await {
        Ok(info) => info,
        Err(e) => {
            eprintln!("error: {}: {}", file.display(), e.report());
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let bar = ProgressBar::new(info.duration_seconds.ceil().max(1.0) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} s of audio, {elapsed} elapsed, ~{eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("transcribing {}", file.display()));
    let progress = {
        let bar = bar.clone();
        move |done: f64| bar.set_position(done as u64)
    };
    let transcribed = engine
        .transcribe_with_progress(
            file,
            Some(info.duration_seconds),
            request.window_seconds,
            progress,
        )
        .await;
    bar.finish_and_clear();
    let transcript = match transcribed {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::Input => {
            eprintln!("error: {}", e.report());
            return Ok(EXIT_BAD_INPUT);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(notice) = engine.notice() {
        eprintln!("note: {notice}");
    }
    if transcript.segments.is_empty() {
        eprintln!(
            "error: no speech was recognised in {} ({:.1} s of audio)",
            file.display(),
            transcript.duration_seconds
        );
        return Ok(EXIT_BAD_INPUT);
    }
    let text = transcriber::render(&transcript, request.format)?;
    match &request.output {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "wrote {} ({} segments, {:.1} s of audio)",
                path.display(),
                transcript.segments.len(),
                transcript.duration_seconds
            );
        }
        None => print!("{text}"),
    }
    Ok(EXIT_OK)
}
