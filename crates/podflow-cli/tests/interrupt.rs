//! Stopping `podflow run` (SIGTERM, as a service manager or Ctrl-C would) while ffmpeg is
//! busy: podflow exits at once with 128 + 15 and one line saying the finished work is kept,
//! and the ffmpeg it started does not live on as an orphan; stopped during transcription,
//! it exits at once and the next run finishes without redoing what was done.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// A stand-in `ffmpeg` that hangs (as `sleep 600`) when asked for the podcast MP3 and runs
/// the real one otherwise.
fn hanging_ffmpeg(dir: &Path) -> PathBuf {
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v ffmpeg"])
            .output()
            .expect("sh")
            .stdout,
    )
    .expect("utf-8");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let script = bin.join("ffmpeg");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in *-audio.mp3*) exec sleep 600 ;; esac\nexec {} \"$@\"\n",
            real.trim()
        ),
    )
    .expect("script");
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    bin
}

/// Sends SIGTERM to `run` and waits for it to exit within `limit`: its status and stderr.
fn terminate(run: &mut std::process::Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let terminated = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .expect("kill");
    assert!(terminated.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopping.elapsed() < limit,
            "podflow did not stop within {} s of SIGTERM",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(run.stderr.take().expect("stderr")).expect("read");
    (status, stderr)
}

/// Pids of `sleep 600` processes whose working directory or arguments are ours to find.
fn hanging_sleeps() -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .unwrap_or_default()
            .contains(") Z ");
        if cmdline == b"sleep\x00600\x00" && !zombie {
            found.push(pid);
        }
    }
    found
}

#[test]
fn sigterm_stops_the_run_and_its_ffmpeg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample-episode.m4a");
    podflow_fakes::media::sample_episode(&sample);
    let fake_bin = hanging_ffmpeg(dir.path());
    let path = format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let before = hanging_sleeps();
    let mut run = Command::new(env!("CARGO_BIN_EXE_podflow"))
        .arg("run")
        .arg(&sample)
        .env("PATH", path)
        .env("PODFLOW_DATA_DIR", dir.path().join("data"))
        .env("PODFLOW_LLM_URL", "http://127.0.0.1:9/v1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podflow starts");

    // Wait until the MP3 encode hangs.
    let started = Instant::now();
    let hung = loop {
        let new: Vec<u32> = hanging_sleeps()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if let Some(pid) = new.first() {
            break *pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the MP3 encode never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let (status, stderr) = terminate(&mut run, Duration::from_secs(30));
    assert_eq!(status.code(), Some(143), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("terminated (SIGTERM)") && last.contains("finished steps are kept"),
        "{stderr}"
    );
    // Killed with its step (a zombie reaped by init at worst, never a live orphan).
    let gone = Instant::now();
    while hanging_sleeps().contains(&hung) {
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "ffmpeg (pid {hung}) outlived podflow"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line names `needle` (the episode file), not zombies.
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(
            &std::fs::read(entry.path().join("cmdline")).unwrap_or_default(),
        )
        .into_owned();
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .unwrap_or_default()
            .contains(") Z ");
        if cmdline.contains(needle) && !zombie && pid != std::process::id() {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_transcription_stops_at_once_and_the_next_run_redoes_nothing() {
    use podflow_core::{EpisodeStore, StepStatus};
    let llm = podflow_fakes::FakeLlm::start(podflow_fakes::FakeLlmConfig::default())
        .await
        .expect("fake llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sigterm-episode.m4a");
    podflow_fakes::media::sample_episode(&sample);
    let data = dir.path().join("data");
    let podflow = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
        cmd.arg("run")
            .arg(&sample)
            .env("PODFLOW_DATA_DIR", &data)
            .env("PODFLOW_LLM_URL", &llm.url)
            .env("PODFLOW_LLM_MODEL", "fake-model")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    let mut run = podflow().spawn().expect("podflow starts");

    // Wait until the transcription step is running.
    let started = Instant::now();
    let episode = loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "transcription never started"
        );
        if let Ok(Some(status)) = run.try_wait() {
            panic!("podflow ended ({status}) before transcribing");
        }
        std::thread::sleep(Duration::from_millis(20));
        if !data.join("podflow.db").exists() {
            continue;
        }
        let Ok(db) = podflow_embedded::Db::open(&data) else {
            continue;
        };
        let Some(ep) = db.episodes().await.expect("episodes").into_iter().next() else {
            continue;
        };
        let steps = db.steps(&ep.episode_id).await.expect("steps");
        if steps
            .iter()
            .any(|s| s.step == "transcribe" && s.status == StepStatus::Running)
        {
            break ep.episode_id;
        }
    };

    let (status, stderr) = terminate(&mut run, Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "{stderr}");
    // Nothing that reads the episode lives on (the decoder's ffmpeg ends with its reader).
    let gone = Instant::now();
    while !processes_naming("sigterm-episode.m4a").is_empty() {
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "left running: {:?}",
            processes_naming("sigterm-episode.m4a")
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let db = podflow_embedded::Db::open(&data).expect("db");
    let transcoded_before = db.work_count("transcode", &episode).await.expect("count");
    let again = podflow().output().expect("podflow runs again");
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let steps = db.steps(&episode).await.expect("steps");
    assert!(
        steps.iter().all(|s| s.status == StepStatus::Done),
        "{steps:?}"
    );
    // Finished work is not redone: one transcode and one transcription in all.
    assert_eq!(
        db.work_count("transcode", &episode).await.expect("count"),
        1
    );
    assert!(transcoded_before <= 1);
    assert_eq!(
        db.work_count("transcribe", &episode).await.expect("count"),
        1
    );
}
