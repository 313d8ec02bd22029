//! Files under the data directory as the blob store. Writes go to a temporary file that is
//! flushed to disk and then renamed into place (the directory flushed too), so neither a
//! crash nor a power cut leaves a half-written or empty output under its final name.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use podflow_core::{BlobStore, PortError};
use podflow_events::BlobRef;
use podflow_media::hash_file;

#[derive(Debug, Clone)]
pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file for a key. Keys are relative paths we build ourselves; `..` and absolute
    /// paths are refused so a hostile key cannot escape the data directory.
    fn path_for(&self, key: &str) -> Result<PathBuf, PortError> {
        let rel = Path::new(key);
        if key.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(PortError::storage(
                "blob store",
                format!("refusing key `{key}`"),
            ));
        }
        Ok(self.root.join(rel))
    }
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<BlobRef, PortError> {
        let path = self.path_for(key)?;
        let err = |e: std::io::Error| PortError::storage(format!("writing {}", path.display()), e);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(err)?;
        }
        let tmp = beside(&path);
        let written = tokio::fs::write(&tmp, &bytes).await;
        settle(written, &tmp, &path).await.map_err(err)?;
        Ok(BlobRef {
            bucket: None,
            key: key.to_owned(),
            size: bytes.len() as u64,
            sha256: podflow_core::content::sha256_hex(&bytes),
        })
    }

    async fn copy(&self, blob: &BlobRef, key: &str) -> Result<BlobRef, PortError> {
        let (from, to) = (self.path_for(&blob.key)?, self.path_for(key)?);
        let err = |e: std::io::Error| {
            PortError::storage(format!("copying {} to {}", from.display(), to.display()), e)
        };
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(err)?;
        }
        // Copied beside the target, then renamed: a reader never sees half a file.
        let tmp = beside(&to);
        let copied = tokio::fs::copy(&from, &tmp).await.map(|_| ());
        settle(copied, &tmp, &to).await.map_err(err)?;
        Ok(BlobRef {
            bucket: None,
            key: key.to_owned(),
            ..blob.clone()
        })
    }

    async fn put_hashed_file(
        &self,
        key: &str,
        file: &Path,
        sha256: &str,
        size: u64,
    ) -> Result<BlobRef, PortError> {
        let path = self.path_for(key)?;
        let err = |e: std::io::Error| PortError::storage(format!("storing {}", path.display()), e);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(err)?;
        }
        match durable_rename(file, &path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                // The file is on another filesystem: copied beside the target, then renamed.
                let tmp = beside(&path);
                let copied = tokio::fs::copy(file, &tmp).await.map(|_| ());
                settle(copied, &tmp, &path).await.map_err(err)?;
                let _ = tokio::fs::remove_file(file).await;
            }
            Err(e) => return Err(err(e)),
        }
        Ok(BlobRef {
            bucket: None,
            key: key.to_owned(),
            size,
            sha256: sha256.to_owned(),
        })
    }

    async fn digest(&self, key: &str) -> Result<BlobRef, PortError> {
        let path = self.path_for(key)?;
        let (sha256, size) = hash_file(&path)
            .await
            .map_err(|e| PortError::storage(format!("reading {}", path.display()), e))?;
        Ok(BlobRef {
            bucket: None,
            key: key.to_owned(),
            size,
            sha256,
        })
    }

    async fn get(&self, blob: &BlobRef) -> Result<Vec<u8>, PortError> {
        let path = self.path_for(&blob.key)?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| PortError::storage(format!("reading {}", path.display()), e))
    }

    fn local_path(&self, blob: &BlobRef) -> Option<PathBuf> {
        self.path_for(&blob.key).ok()
    }

    async fn share_url(&self, blob: &BlobRef, _valid_for: Duration) -> Result<String, PortError> {
        // Local files do not expire; the path is the link.
        let path = self.path_for(&blob.key)?;
        let absolute = std::path::absolute(&path)
            .map_err(|e| PortError::storage(format!("resolving {}", path.display()), e))?;
        Ok(format!("file://{}", absolute.display()))
    }

    fn scratch_path(&self, name: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}-{name}", uuid::Uuid::new_v4()))
    }
}

/// A temporary name in the target's directory (so the rename stays on one filesystem).
fn beside(path: &Path) -> PathBuf {
    path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()))
}

/// Makes the file `tmp` (once `written` says it is complete) the file at `path`, durably:
/// its data is flushed before the rename and the directory after it, so after a power cut
/// `path` holds the whole file or does not exist. On any failure (a full disk, say) `tmp`
/// is removed, leaving nothing behind.
async fn settle(written: std::io::Result<()>, tmp: &Path, path: &Path) -> std::io::Result<()> {
    let settled = match written {
        Ok(()) => durable_rename(tmp, path).await,
        Err(e) => Err(e),
    };
    if settled.is_err() {
        let _ = tokio::fs::remove_file(tmp).await;
    }
    settled
}

/// Renames `from` to `to` with `from`'s data flushed before and the directory entry after.
async fn durable_rename(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&from)?.sync_all()?;
        std::fs::rename(&from, &to)?;
        if let Some(dir) = to.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_round_trip_with_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileBlobStore::new(dir.path());
        let blob = store
            .put("episodes/e/x.txt", b"hello".to_vec())
            .await
            .expect("put");
        assert_eq!(blob.size, 5);
        assert_eq!(blob.sha256, podflow_core::content::sha256_hex(b"hello"));
        assert_eq!(store.get(&blob).await.expect("get"), b"hello");
        assert!(store.put("../escape", vec![]).await.is_err());
        assert!(store.put("/etc/passwd", vec![]).await.is_err());
        // A copy is a second file with the same bytes and digest.
        let copy = store.copy(&blob, "episodes/f/x.txt").await.expect("copy");
        assert_eq!((copy.size, &copy.sha256), (blob.size, &blob.sha256));
        assert_eq!(copy.key, "episodes/f/x.txt");
        assert_eq!(store.get(&copy).await.expect("get"), b"hello");
        assert!(store.copy(&blob, "../escape").await.is_err());
    }

    #[tokio::test]
    async fn a_write_that_cannot_be_put_in_place_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileBlobStore::new(dir.path());
        // A directory where the file should go: the rename fails after the write.
        std::fs::create_dir_all(dir.path().join("episodes/e/notes.md/taken")).expect("dir");
        let err = store
            .put("episodes/e/notes.md", b"# Notes".to_vec())
            .await
            .expect_err("refused");
        assert!(err.report().contains("notes.md"), "{}", err.report());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("episodes/e"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("notes.md")]);
    }

    #[tokio::test]
    async fn a_file_hashed_by_its_writer_is_moved_in_with_that_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileBlobStore::new(dir.path().join("data"));
        let upload = dir.path().join("episode.wav");
        std::fs::write(&upload, b"RIFF audio").expect("write");
        let scratch = store.scratch_path("episode.wav");
        std::fs::create_dir_all(scratch.parent().expect("dir")).expect("scratch dir");
        let (sha256, size) = podflow_media::copy_hashing(&upload, &scratch)
            .await
            .expect("copy");
        let blob = store
            .put_hashed_file("incoming/e.wav", &scratch, &sha256, size)
            .await
            .expect("put");
        assert!(!scratch.exists(), "moved, not copied");
        assert_eq!(
            store.digest("incoming/e.wav").await.expect("digest"),
            blob,
            "the stored bytes have the digest the writer computed"
        );
    }
}
