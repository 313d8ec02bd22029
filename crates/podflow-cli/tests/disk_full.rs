//! A full disk, for real: the data directory on a 1.7 MB tmpfs (in a private mount
//! namespace made with `unshare`, so the test needs no privileges beyond user namespaces).
//! `podflow run` must stop with one line naming the data directory and exit 1, leave no
//! temporary file, and — once the filesystem is grown — a second run must finish the
//! episode.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
};

use podflow_fakes::{FakeLlm, FakeLlmConfig};

/// Runs podflow twice in one mount namespace and prints what the test checks as `key=value`.
const SCRIPT: &str = r#"
set -eu
bin="$1"; sample="$2"
mnt=$(mktemp -d)
mount -t tmpfs -o size=1700k tmpfs "$mnt"
data="$mnt/data"
set +e
PODFLOW_DATA_DIR="$data" "$bin" run "$sample" >/dev/null 2>"$mnt/first.err"
echo "first_exit=$?"
echo "first_lines=$(grep -c . "$mnt/first.err")"
echo "first_error=$(tail -n 1 "$mnt/first.err")"
echo "scratch_files=$(find "$data/tmp" -type f 2>/dev/null | wc -l)"
echo "temp_files=$(find "$data" -name '*.tmp-*' | wc -l)"
mount -o remount,size=64m "$mnt"
PODFLOW_DATA_DIR="$data" "$bin" run --json "$sample" >"$mnt/second.out" 2>"$mnt/second.err"
echo "second_exit=$?"
echo "second_report=$(head -n 1 "$mnt/second.out")"
echo "second_error=$(tail -n 1 "$mnt/second.err")"
"#;

fn sample(dir: &Path) -> PathBuf {
    let out = dir.join("sample-episode.m4a");
    podflow_fakes::media::sample_episode(&out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_the_run_in_one_line_and_the_next_run_finishes() {
    let llm = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("fake LLM starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = sample(dir.path());
    let bin = env!("CARGO_BIN_EXE_podflow");
    let url = llm.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("unshare")
            .args([
                "--mount",
                "--map-root-user",
                "bash",
                "-c",
                SCRIPT,
                "disk-full",
            ])
            .arg(bin)
            .arg(&sample)
            .env("PODFLOW_LLM_URL", url)
            .env("PODFLOW_LLM_MODEL", "fake-model")
            .output()
            .expect("unshare runs")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the script (unshare --mount --map-root-user: user namespaces must be allowed) failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |key: &str| *seen.get(key).unwrap_or_else(|| panic!("{key} in {text}"));

    assert_eq!(get("first_exit"), "1", "{text}");
    assert_eq!(get("first_lines"), "1", "one line: {text}");
    let error = get("first_error");
    assert!(
        error.starts_with("error: the disk holding ")
            && error.contains("/data is full")
            && error.contains("free some space"),
        "{error}"
    );
    assert_eq!(get("scratch_files"), "0", "{text}");
    assert_eq!(get("temp_files"), "0", "{text}");

    assert_eq!(get("second_exit"), "0", "{text}");
    let report: serde_json::Value =
        serde_json::from_str(get("second_report")).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["status"], "done", "{report}");
    assert_eq!(report["failed_steps"], serde_json::json!([]), "{report}");
    assert_eq!(report["failed_prompts"], serde_json::json!([]), "{report}");
}
