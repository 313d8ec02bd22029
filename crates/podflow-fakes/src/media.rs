//! Test and bench audio: the sample episode, and files joined one after another with ffmpeg.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Makes the two-voice sample episode (about 40 s, `scripts/make-sample-episode.sh`) at
/// `out`. Panics if the script fails: for tests.
pub fn sample_episode(out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-sample-episode.sh");
    let made = Command::new(script)
        .arg(out)
        .status()
        .expect("the sample script runs");
    assert!(made.success(), "scripts/make-sample-episode.sh failed");
}

/// Joins `parts` (same format) into `out` with ffmpeg's concat demuxer; the list it reads
/// is written beside `out`. Panics with ffmpeg's words if it fails: for tests and benches.
pub fn concat(parts: &[PathBuf], out: &Path) {
    let list: String = parts
        .iter()
        .map(|p| format!("file '{}'\n", p.display()))
        .collect();
    let list_path = out.with_extension("list.txt");
    std::fs::write(&list_path, list).expect("write the concat list");
    let made = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
        ])
        .arg(&list_path)
        .arg(out)
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(
        made.status.success(),
        "ffmpeg could not join {} parts into {}: {}",
        parts.len(),
        out.display(),
        String::from_utf8_lossy(&made.stderr)
    );
}
