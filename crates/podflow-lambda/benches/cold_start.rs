//! `cargo bench -p podflow-lambda --bench cold_start`: the size of every Lambda function's
//! `bootstrap` and its start-to-ready time: from spawning it with a Lambda environment to its
//! first `GET .../invocation/next` on a local stand-in for the Runtime API (the moment Lambda
//! would hand it an event). Baseline in the same run: spawning `/bin/true`. Targets: ≤ 10 MB
//! and ≤ 25 ms.
//!
//! Each function is built exactly as `sam build` builds it, by `infra/Makefile` (cargo-lambda,
//! the `deploy` profile), but for this machine's architecture (`LAMBDA_ARCH=--x86-64`, or
//! `PODFLOW_BENCH_ARCH`) so it can be started here. Needs `cargo lambda` (`pip install
//! cargo-lambda`); from clean on 2 cores the first function took 10.5 minutes, each next one
//! about a minute.

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// (the template's function, the `PODFLOW_SERVICE` it sets)
const FUNCTIONS: &[(&str, &str)] = &[
    ("IngestFunction", "ingest"),
    ("TranscodeWatcherFunction", "transcode-watcher"),
    ("TranscriberFunction", "transcriber"),
    ("PromptDispatcherFunction", "prompt-dispatcher"),
    ("BedrockInvokerFunction", "bedrock-invoker"),
    ("PublisherFunction", "publisher"),
    ("PublisherNotifyFunction", "publisher-notify"),
];
const RUNS: usize = 15;

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
        .env(
            "PODFLOW_LLM_MODEL",
            "anthropic.claude-3-haiku-20240307-v1:0",
        )
        // The publisher's notifier needs somewhere to post.
        .env("PODFLOW_SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:bench")
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

/// Builds `function` with `infra/Makefile` into `out/bootstrap`.
fn build(root: &Path, function: &str, arch: &str, out: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let status = Command::new("make")
        .current_dir(root)
        .args(["--quiet", "-f", "infra/Makefile"])
        .arg(format!("build-{function}"))
        .arg(format!("LAMBDA_ARCH={arch}"))
        .env("ARTIFACTS_DIR", out)
        .status()
        .map_err(|e| format!("make: {e}"))?;
    if !status.success() {
        return Err(format!("make build-{function} failed ({status})"));
    }
    Ok(out.join("bootstrap"))
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let arch = std::env::var("PODFLOW_BENCH_ARCH").unwrap_or_else(|_| "--x86-64".into());
    let out = std::env::temp_dir().join(format!("podflow-cold-start-{}", std::process::id()));
    let mut built = Vec::new();
    for (function, service) in FUNCTIONS {
        match build(&root, function, &arch, &out.join(function)) {
            Ok(bootstrap) => built.push((*function, *service, bootstrap)),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }

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
        "| function | bootstrap | ≤ 10 MB | start-to-ready (median) | ratio to baseline | ≤ 25 ms |"
    );
    println!("|---|---:|:---:|---:|---:|:---:|");
    for (function, service, bootstrap) in &built {
        let mb = std::fs::metadata(bootstrap)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(f64::NAN);
        let size_ok = if mb <= 10.0 { "yes" } else { "no" };
        let samples: Vec<Duration> = (0..RUNS)
            .filter_map(|_| start_to_ready(bootstrap, service))
            .collect();
        let (ready, ratio, ready_ok) = if samples.len() == RUNS {
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
        };
        println!("| {function} | {mb:.2} MB | {size_ok} | {ready} | {ratio} | {ready_ok} |");
    }
    let _ = std::fs::remove_dir_all(&out);
}
