//! The SQLite database behind the local bus, queues and store.

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use thiserror::Error;
use tokio::sync::Notify;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot open the podflow database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another podflow process is working in {0}; wait for it to finish or use another --data-dir"
    )]
    Busy(PathBuf),
    #[error(
        "{path} was written by a newer podflow (database schema {found}; this build reads up to {supported}); upgrade podflow, or use another --data-dir"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: usize,
    },
    #[error("cannot bring {path} to the current database schema: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<DbError> for podflow_core::PortError {
    fn from(e: DbError) -> Self {
        podflow_core::PortError::storage("embedded store", e)
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queues(
    name TEXT PRIMARY KEY,
    fifo INTEGER NOT NULL,
    visibility_ms INTEGER NOT NULL,
    max_receive_count INTEGER NOT NULL,
    dlq TEXT
);
CREATE TABLE IF NOT EXISTS messages(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    group_id TEXT,
    dedup_id TEXT,
    body TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    in_flight INTEGER NOT NULL DEFAULT 0,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    source_queue TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS messages_order ON messages(queue, seq);
CREATE INDEX IF NOT EXISTS messages_receipt ON messages(receipt);
CREATE INDEX IF NOT EXISTS messages_group ON messages(queue, group_id, seq);
CREATE TABLE IF NOT EXISTS dedup(
    queue TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY(queue, dedup_id)
);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    detail_type TEXT NOT NULL,
    episode_id TEXT,
    body TEXT NOT NULL,
    published_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_episode ON events(episode_id, seq);
CREATE TABLE IF NOT EXISTS episodes(
    episode_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS steps(
    episode_id TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    note TEXT,
    PRIMARY KEY(episode_id, step)
);
CREATE TABLE IF NOT EXISTS work(
    key TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS work_log(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    episode_id TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts(
    episode_id TEXT NOT NULL,
    name TEXT NOT NULL,
    blob TEXT NOT NULL,
    PRIMARY KEY(episode_id, name)
);
CREATE TABLE IF NOT EXISTS prompts(
    episode_id TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    prompt_version INTEGER NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    output TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY(episode_id, prompt_id)
);
CREATE TABLE IF NOT EXISTS summaries(
    episode_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    envelope TEXT,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY(episode_id, revision)
);
"#;

/// The database schema, one step per version (SQLite's `user_version` counts the steps
/// applied). Version 1 is the schema of every data directory made before versions were
/// kept: its statements are `IF NOT EXISTS`, so such a directory is only stamped. A change
/// to the schema is a new step at the end; steps are never edited once released.
const MIGRATIONS: [&str; 2] = [
    SCHEMA,
    "ALTER TABLE prompts ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE prompts ADD COLUMN throttled_since INTEGER;",
];

/// The connection's settings and the current schema.
fn prepare(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    // WAL + NORMAL by default (see `Durability`): FULL fsyncs every commit.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(conn, path, &MIGRATIONS)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Brings the database to the newest schema `steps` know, or refuses one that is newer.
fn migrate(conn: &mut Connection, path: &Path, steps: &[&'static str]) -> Result<(), DbError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > steps.len() as i64 {
        return Err(DbError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: steps.len(),
        });
    }
    let migrations = Migrations::new(steps.iter().map(|sql| M::up(sql)).collect());
    let mut attempt = 0;
    loop {
        match migrations.to_latest(conn) {
            Ok(()) => return Ok(()),
            Err(source) => {
                // Another process opening the same directory (a `podflow status` beside a
                // starting `podflow run`) may have applied the same step first: its
                // transaction won, ours failed on the change already made (or on a
                // snapshot that went stale, which SQLite does not wait out). Once the
                // schema is current that is success; until then, try again briefly.
                let now: i64 = conn
                    .pragma_query_value(None, "user_version", |r| r.get(0))
                    .unwrap_or(-1);
                if now == steps.len() as i64 {
                    return Ok(());
                }
                attempt += 1;
                if attempt >= 20 {
                    return Err(DbError::Migrate {
                        path: path.to_owned(),
                        source,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// How hard a commit holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit is in the OS's hands before it returns, so it
    /// survives the process being killed; a power cut may lose the last few.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is on disk before it returns (a power cut loses
    /// nothing committed), at the cost the bus bench shows.
    Full,
}

/// A handle to the database. Cheap to clone; all clones share one connection, which keeps
/// writes serialised without SQLITE_BUSY handling, and one wake-up signal for workers.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Signalled whenever a message is enqueued, so idle workers wake at once instead of
    /// polling on a timer (hop latency matters for the bench target).
    pub(crate) new_message: Arc<Notify>,
    /// Fault injection: deliver every routed bus event twice (see `podflow run --help`).
    pub(crate) duplicate_deliveries: bool,
    path: PathBuf,
    /// The background checkpointer runs while any clone of this handle exists.
    _alive: Arc<()>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) `<data_dir>/podflow.db`.
    pub fn open(data_dir: &Path) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("podflow.db");
        let mut conn = Connection::open(&path).map_err(|source| DbError::Open {
            path: path.clone(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Another process opening the directory at the same moment (a `podflow status`
        // beside a starting `podflow run`) can make the journal-mode switch or a migration
        // answer "locked" at once, which the busy timeout does not wait out: try again.
        let mut attempt = 0;
        loop {
            match prepare(&mut conn, &path) {
                Ok(()) => break,
                Err(DbError::Sql(e)) if is_busy(&e) && attempt < 40 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
        // Checkpoints (copying the WAL back into the database, with an fsync) would otherwise
        // run inside whichever commit crosses the threshold and stall that hop for
        // milliseconds; a background connection does them instead.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let alive = Arc::new(());
        spawn_checkpointer(&path, Arc::downgrade(&alive));
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            new_message: Arc::new(Notify::new()),
            duplicate_deliveries: false,
            path,
            _alive: alive,
        })
    }

    /// Sets how hard commits hold (see [`Durability`]).
    pub fn with_durability(self, durability: Durability) -> Result<Self, DbError> {
        let level = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        self.conn().pragma_update(None, "synchronous", level)?;
        Ok(self)
    }

    /// Turns on duplicate delivery of every bus event (fault injection).
    pub fn with_duplicate_deliveries(mut self, on: bool) -> Self {
        self.duplicate_deliveries = on;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection. Held only for the length of one statement or transaction, never
    /// across an `.await`.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back),
        // so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checkpoints the WAL every 500 ms from a connection of its own, until the last [`Db`]
/// handle is dropped. PASSIVE never blocks writers; a failure only means the WAL grows
/// until the next try (and SQLite checkpoints when the last connection closes).
fn spawn_checkpointer(path: &Path, alive: std::sync::Weak<()>) {
    let path = path.to_owned();
    let spawned = std::thread::Builder::new()
        .name("podflow-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = Connection::open(&path) else {
                return;
            };
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                if alive.upgrade().is_none() {
                    return;
                }
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no background checkpointer; the WAL will grow until restart");
    }
}

/// An exclusive lock on a data directory for one runner process (`podflow run`). While it
/// is held, messages marked in flight belong to dead runs and may be released at once.
#[derive(Debug)]
pub struct RunnerLock {
    _file: File,
}

impl RunnerLock {
    pub fn acquire(data_dir: &Path) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("runner.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DbError::DataDir {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(_) => Err(DbError::Busy(data_dir.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .expect("open")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn a_data_directory_from_before_schema_versions_is_stamped_and_keeps_its_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("podflow.db");
        {
            let old = Connection::open(&path).expect("open");
            old.execute_batch(SCHEMA).expect("old schema");
            old.execute(
                "INSERT INTO episodes(episode_id, record, created_at)
                 VALUES('ep-1', '{\"original_name\":\"weekly.mp3\"}', 0)",
                [],
            )
            .expect("an episode");
        }
        assert_eq!(user_version(&path), 0);
        let db = Db::open(dir.path()).expect("migrated");
        let kept: String = db
            .conn()
            .query_row(
                "SELECT record FROM episodes WHERE episode_id='ep-1'",
                [],
                |r| r.get(0),
            )
            .expect("the episode is still there");
        assert!(kept.contains("weekly.mp3"), "{kept}");
        drop(db);
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_later_step_is_applied_once_on_top_of_the_current_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("podflow.db");
        drop(Db::open(dir.path()).expect("current"));
        let mut conn = Connection::open(&path).expect("open");
        let mut steps = MIGRATIONS.to_vec();
        steps.push("ALTER TABLE queues ADD COLUMN note TEXT");
        migrate(&mut conn, &path, &steps).expect("the extra step");
        migrate(&mut conn, &path, &steps).expect("nothing left to do");
        assert_eq!(user_version(&path), steps.len() as i64);
        conn.execute("UPDATE queues SET note='added by the extra step'", [])
            .expect("the new column exists");
    }

    #[test]
    fn a_data_directory_at_schema_1_gains_the_throttle_columns_and_keeps_its_prompts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("podflow.db");
        {
            let mut old = Connection::open(&path).expect("open");
            migrate(&mut old, &path, &MIGRATIONS[..1]).expect("schema 1");
            old.execute(
                "INSERT INTO prompts(episode_id, prompt_id, prompt_version, model, status, updated_at)
                 VALUES('ep-1', 'summary', 1, 'm', 'pending', 0)",
                [],
            )
            .expect("a prompt");
        }
        assert_eq!(user_version(&path), 1);
        let db = Db::open(dir.path()).expect("migrated");
        let (throttles, since): (i64, Option<i64>) = db
            .conn()
            .query_row(
                "SELECT throttles, throttled_since FROM prompts WHERE prompt_id='summary'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("the prompt is still there, with the new columns");
        assert_eq!((throttles, since), (0, None));
        drop(db);
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    }

    #[test]
    fn processes_opening_an_old_data_directory_at_once_all_get_the_current_schema() {
        for _ in 0..30 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("podflow.db");
            {
                let mut old = Connection::open(&path).expect("open");
                migrate(&mut old, &path, &MIGRATIONS[..1]).expect("schema 1");
            }
            let opened: Vec<Result<(), String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| Db::open(dir.path()).map(drop).map_err(|e| e.to_string()))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            assert!(opened.iter().all(Result::is_ok), "{opened:?}");
            assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
        }
    }

    #[test]
    fn a_newer_data_directory_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("podflow.db");
        Connection::open(&path)
            .expect("open")
            .pragma_update(None, "user_version", 7)
            .expect("stamp");
        let err = Db::open(dir.path()).expect_err("refused").to_string();
        assert!(
            err.contains("newer podflow")
                && err.contains("schema 7")
                && err.contains(&format!("up to {}", MIGRATIONS.len()))
                && err.contains(&path.display().to_string())
                && err.contains("upgrade podflow"),
            "{err}"
        );
        assert_eq!(user_version(&path), 7, "left as it was");
    }
}
