//! ingest over the embedded store and blob files, for the tests that send it upload events.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use ingest::{IngestService, upload::UploadHandler};
use podflow_core::{Delivery, Outcome};
use podflow_embedded::{Db, FileBlobStore};
use podflow_events::EpisodeUploaded;
use podflow_media::Ffmpeg;

pub struct Setup {
    _dir: tempfile::TempDir,
    pub db: Db,
    pub handler: UploadHandler,
    pub blobs: FileBlobStore,
}

pub fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("db");
    let blobs = FileBlobStore::new(dir.path());
    let service = IngestService {
        store: Arc::new(db.clone()),
        blobs: Arc::new(blobs.clone()),
        probe: Arc::new(Ffmpeg::default()),
    };
    Setup {
        _dir: dir,
        db,
        handler: UploadHandler {
            service: Arc::new(service),
        },
        blobs,
    }
}

/// `bytes` stored under `key`, as an upload leaves them.
pub fn upload(s: &Setup, key: &str, bytes: &[u8]) {
    let path = s.blobs.root().join(key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, bytes).expect("write");
}

pub fn delivery(body: String) -> Delivery {
    Delivery {
        message_id: "evt-1".into(),
        body,
        attempt: 1,
        deadline: None,
    }
}

/// The episodes an outcome announces (each checked against its schema by decoding).
pub fn uploaded(outcome: Outcome) -> Vec<EpisodeUploaded> {
    match outcome {
        Outcome::Done { emit, .. } => emit
            .iter()
            .map(|e| e.decode::<EpisodeUploaded>().expect("EpisodeUploaded"))
            .collect(),
        other => panic!("{other:?}"),
    }
}
