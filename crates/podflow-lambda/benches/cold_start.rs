//! `cargo bench -p podflow-lambda --bench cold_start`: release binary size of every service
//! and, for the services that run on Lambda, start-to-ready time: from spawning the binary
//! with a Lambda environment to its first `GET .../invocation/next` on a local stand-in for
//! the Runtime API (the moment Lambda would hand it an event). Baseline in the same run:
//! spawning `/bin/true`. Targets: ≤ 10 MB and ≤ 25 ms.
//!
//! Builds the binaries first with the `lambda` profile (size-optimised, fat LTO; about
//! 10 minutes per clean build on 2 cores), or the profile in `PODFLOW_BENCH_PROFILE`
//! (`release` is what a plain `cargo lambda build --release` gives).

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const SERVICES: &[(&str, bool)] = &[
    ("ingest", true),
    ("transcode-watcher", true),
    ("transcriber", true),
    ("prompt-dispatcher", true),
    ("bedrock-invoker", true),
    ("publisher", true),
];
const RUNS: usize = 15;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Spawns `binary` as Lambda would and waits for its first call to the Runtime API.
fn start_to_ready(binary: &Path, service: &str) -> Option<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let api = listener.local_addr().ok()?.to_string();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", service)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{service}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("PODFLOW_BUCKET", "bench-bucket")
        .env("PODFLOW_TABLE", "bench-table")
        .env("PODFLOW_EVENT_BUS", "bench-bus")
        .env(
            "PODFLOW_EVENT_DLQ_URL",
            "https://sqs.us-east-1.amazonaws.com/1/events-dlq",
        )
        .env(
            "PODFLOW_PROMPT_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/prompts.fifo",
        )
        .env(
            "PODFLOW_PROMPT_DLQ_URL",
            "https://sqs.us-east-1.amazonaws.com/1/prompts-dlq.fifo",
        )
        .env(
            "PODFLOW_MEDIACONVERT_ROLE_ARN",
            "arn:aws:iam::1:role/bench-mediaconvert",
        )
        .env("PODFLOW_STACK", "bench")
        // The publisher's role (its fan-in; the notifier is the same binary).
        .env("PODFLOW_SERVICE", service)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    listener.set_nonblocking(true).ok()?;
    let deadline = started + Duration::from_secs(5);
    let ready = loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                // The request line proves it is the runtime client asking for work.
                let mut first = [0u8; 64];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let n = stream.read(&mut first).unwrap_or(0);
                let asked =
                    String::from_utf8_lossy(&first[..n]).contains("/runtime/invocation/next");
                break asked.then(|| started.elapsed());
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    ready
}

fn main() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = std::env::var("PODFLOW_BENCH_PROFILE").unwrap_or_else(|_| "lambda".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--profile", &profile]);
    for (service, _) in SERVICES {
        build.args(["-p", service]);
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "release build failed");

    let baseline = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let _ = Command::new("/bin/true").status();
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "baseline: spawning /bin/true takes {:.1} ms (median of {RUNS})\n",
        baseline.as_secs_f64() * 1e3
    );
    println!(
        "| service | binary | ≤ 10 MB | start-to-ready (median) | ratio to baseline | ≤ 25 ms |"
    );
    println!("|---|---:|:---:|---:|---:|:---:|");
    for (service, on_lambda) in SERVICES {
        let binary = target_dir()
            .join(if profile == "dev" { "debug" } else { &profile })
            .join(service);
        let mb = std::fs::metadata(&binary)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(f64::NAN);
        let size_ok = if mb <= 10.0 { "yes" } else { "no" };
        let (ready, ratio, ready_ok) = if *on_lambda {
            let samples: Vec<Duration> = (0..RUNS)
                .filter_map(|_| start_to_ready(&binary, service))
                .collect();
            if samples.len() == RUNS {
                let m = median(samples);
                (
                    format!("{:.1} ms", m.as_secs_f64() * 1e3),
                    format!("{:.1}×", m.as_secs_f64() / baseline.as_secs_f64()),
                    if m <= Duration::from_millis(25) {
                        "yes"
                    } else {
                        "no"
                    },
                )
            } else {
                ("did not become ready".into(), "–".into(), "no")
            }
        } else {
            ("not on Lambda yet".into(), "–".into(), "–")
        };
        println!("| {service} | {mb:.1} MB | {size_ok} | {ready} | {ratio} | {ready_ok} |");
    }
}
