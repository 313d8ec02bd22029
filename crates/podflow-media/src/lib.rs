//! Media files for every runtime (the `podflow` process and the Lambda functions alike):
//! [`Ffmpeg`] runs ffmpeg and ffprobe behind the `MediaProbe`, `Transcoder` and
//! `ClipCutter` ports, and [`hash_file`] reads an episode's SHA-256 as a stream.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

pub mod ffmpeg;

pub use ffmpeg::Ffmpeg;

/// SHA-256 (hex) and size of a file, read in 1 MiB blocks: episodes can be gigabytes.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_hashes_to_the_sha256_of_its_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audio.bin");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let (sha, size) = hash_file(&path).await.expect("hash");
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(sha, podflow_core::content::sha256_hex(&bytes));
    }
}
