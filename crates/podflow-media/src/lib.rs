//! Media files for every runtime (the `podflow` process and the Lambda functions alike):
//! [`Ffmpeg`] runs ffmpeg and ffprobe behind the `MediaProbe`, `Transcoder` and
//! `ClipCutter` ports through [`tool`] (deadlines, process groups, bounded stderr),
//! [`loudness`] reads what ffmpeg measures (the MP3's two-pass loudnorm, `ebur128` checks),
//! [`decode::AudioStream`] streams the samples the speech engines read,
//! [`duration_seconds`] reads just the length, [`hash_file`] and [`copy_hashing`] read
//! an episode's SHA-256 as a stream, and [`store_file`] moves a finished file into a blob
//! store with its digest.

use std::path::Path;

use podflow_core::{BlobStore, PortError};
use podflow_events::BlobRef;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

pub mod decode;
pub mod ffmpeg;
pub mod loudness;
pub mod tool;

pub use ffmpeg::Ffmpeg;
pub use tool::ToolDeadlines;

/// The audio's length in seconds as ffprobe reads it from the container, if it can: for
/// blocking code that only needs the length (the speech engine sizing its pieces). The
/// `MediaProbe` port's [`Ffmpeg::probe`](ffmpeg::Ffmpeg) is the full, checked probe.
pub fn duration_seconds(path: &Path) -> Option<f64> {
    let mut args: Vec<std::ffi::OsString> = [
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "csv=p=0",
    ]
    .map(Into::into)
    .to_vec();
    args.push(ffmpeg::file_arg(path));
    let out = tool::run_blocking("ffprobe", &args, ToolDeadlines::from_env().fixed()).ok()?;
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (seconds.is_finite() && seconds > 0.0).then_some(seconds)
}

/// Hashes a finished file (written by ffmpeg, say) and moves it into `blobs` under `key`.
pub async fn store_file(
    blobs: &dyn BlobStore,
    key: &str,
    file: &Path,
) -> Result<BlobRef, PortError> {
    let (sha256, size) = hash_file(file)
        .await
        .map_err(|e| PortError::storage(format!("reading {}", file.display()), e))?;
    blobs.put_hashed_file(key, file, &sha256, size).await
}

/// SHA-256 (hex) and size of a file, read in 1 MiB blocks: episodes can be gigabytes.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    digest(path, None).await
}

/// Copies `from` to `to` and returns the SHA-256 (hex) and size of what was copied, in one
/// read of the source: an ingested episode is hashed as it is copied.
pub async fn copy_hashing(from: &Path, to: &Path) -> std::io::Result<(String, u64)> {
    digest(from, Some(to)).await
}

async fn digest(path: &Path, copy_to: Option<&Path>) -> std::io::Result<(String, u64)> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut copy = match copy_to {
        Some(to) => Some(tokio::fs::File::create(to).await?),
        None => None,
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(copy) = copy.as_mut() {
            copy.write_all(&buf[..n]).await?;
        }
        size += n as u64;
    }
    if let Some(mut copy) = copy {
        copy.flush().await?;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_comes_from_the_container_and_a_non_media_file_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wav = dir.path().join("tone.wav");
        let made = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("sine=frequency=440:duration=2.5")
            .arg(&wav)
            .status()
            .expect("ffmpeg runs (scripts/setup.sh installs it)");
        assert!(made.success());
        let seconds = duration_seconds(&wav).expect("a length");
        assert!((seconds - 2.5).abs() < 0.05, "{seconds}");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not audio").expect("write");
        assert_eq!(duration_seconds(&text), None);
    }

    #[tokio::test]
    async fn a_file_hashes_to_the_sha256_of_its_bytes_and_copies_with_the_same_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audio.bin");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let (sha, size) = hash_file(&path).await.expect("hash");
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(sha, podflow_core::content::sha256_hex(&bytes));
        let copy = dir.path().join("copy.bin");
        let copied = copy_hashing(&path, &copy).await.expect("copy");
        assert_eq!(copied, (sha, size));
        assert_eq!(std::fs::read(&copy).expect("read"), bytes);
    }
}
