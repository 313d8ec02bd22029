//! Secrets given to the command line: warned about, never printed back, and a bearer
//! token never sent over plain http to another machine.

use std::process::Command;

const MARKER: &str = "sk-SECRET-MARKER";

fn podflow(data: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.env("PODFLOW_DATA_DIR", data)
        .env_remove("PODFLOW_LLM_API_KEY")
        .env_remove("PODFLOW_LLM_URL");
    cmd
}

#[test]
fn a_key_given_as_a_flag_is_warned_about_and_never_sent_over_plain_http_to_another_host() {
    let data = tempfile::tempdir().expect("tempdir");
    let sample = data.path().join("empty.wav");
    std::fs::write(&sample, b"not audio").expect("file");
    // An http server elsewhere (a documentation address that routes nowhere): refused
    // before anything is sent.
    let out = podflow(data.path())
        .args([
            "run",
            "--llm-url",
            "http://192.0.2.10:11434/v1",
            "--llm-api-key",
            MARKER,
        ])
        .arg(&sample)
        .output()
        .expect("podflow runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("warning: --llm-api-key puts a secret on the command line"),
        "{stderr}"
    );
    assert!(stderr.contains("not sent over plain http"), "{stderr}");
    assert!(
        !stderr.contains(MARKER) && !stdout.contains(MARKER),
        "{stderr}{stdout}"
    );
}

#[test]
fn a_key_read_from_a_file_is_used_without_a_warning_and_a_missing_file_is_named() {
    let data = tempfile::tempdir().expect("tempdir");
    let sample = data.path().join("empty.wav");
    std::fs::write(&sample, b"not audio").expect("file");
    let key_file = data.path().join("llm-key");
    std::fs::write(&key_file, format!("{MARKER}\n")).expect("key file");
    let run = |setting: String| {
        podflow(data.path())
            .env("PODFLOW_LLM_API_KEY", setting)
            .args(["run", "--llm-url", "http://192.0.2.10:11434/v1"])
            .arg(&sample)
            .output()
            .expect("podflow runs")
    };
    // Read from the file: a key is there, so plain http to another machine is refused.
    let out = run(format!("file:{}", key_file.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not sent over plain http"), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(!stderr.contains(MARKER), "{stderr}");
    // A file that is not there: named, with what to do.
    let missing = data.path().join("no-such-key");
    let out = run(format!("file:{}", missing.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "PODFLOW_LLM_API_KEY: cannot read {}",
            missing.display()
        )),
        "{stderr}"
    );
}
