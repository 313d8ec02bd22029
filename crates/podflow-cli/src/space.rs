//! Free space where the data directory lives. When the disk fills up, `podflow run` stops
//! with one line that names the directory, instead of letting steps fail one by one on
//! writes that cannot succeed; everything finished stays, and the next run continues.

use std::path::{Path, PathBuf};

/// Below this, podflow stops: SQLite needs room for its write-ahead log to commit anything
/// (even the record of a failure), and ffmpeg and the stores need room for one more file.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error(
    "the disk holding {} is full ({} KiB free; podflow needs {} KiB to go on): free some space, then run the same command again (finished steps are kept)",
    .data_dir.display(), .free / 1024, MIN_FREE_BYTES / 1024
)]
pub struct DiskFull {
    data_dir: PathBuf,
    free: u64,
}

/// `Err` when the filesystem holding `data_dir` (or, before it exists, its nearest existing
/// parent) has less than [`MIN_FREE_BYTES`] available. A filesystem that cannot say passes.
pub fn check(data_dir: &Path) -> Result<(), DiskFull> {
    let existing = data_dir
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("."));
    match free_bytes(existing) {
        Some(free) if free < MIN_FREE_BYTES => Err(DiskFull {
            data_dir: data_dir.to_owned(),
            free,
        }),
        _ => Ok(()),
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_room_passes_and_the_message_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Not created yet: its parent is measured.
        let data = dir.path().join("podflow-data");
        if free_bytes(dir.path()).is_some_and(|free| free >= MIN_FREE_BYTES) {
            check(&data).expect("room");
        }
        let full = DiskFull {
            data_dir: data.clone(),
            free: 300 * 1024,
        }
        .to_string();
        assert!(
            full.contains(&data.display().to_string())
                && full.contains("300 KiB free")
                && full.contains("free some space")
                && !full.contains('\n'),
            "{full}"
        );
    }
}
