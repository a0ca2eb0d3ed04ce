//! The ledger: everything the host remembers about sync, in one SQLite
//! database under `.storehost/` (WAL, synchronous FULL).
//!
//! Per document the last state both sides agreed on (remote version and
//! content hash), the outbox of acknowledged local changes, the cursors
//! and lineage, the conflict copies made and the trash index. A write and
//! its bookkeeping commit together: an acknowledged change is one
//! transaction, and a pushed batch is recorded and leaves the outbox in
//! another, so a crash never leaves one without the other.

use super::hash::doc_hash;
use super::late_writes::Displaced;
use super::paths::{key_of_path, path_key};
use crate::model::Key;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "ledger.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("sync ledger {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("sync ledger {path}: {message}")]
    Migration { path: String, message: String },
    #[error(transparent)]
    Workspace(Box<crate::mirror::workspace::WorkspaceError>),
}

/// What both sides last agreed a document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub version: String,
    /// [`doc_hash`] of the content.
    pub hash: String,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Validated content (JSON or YAML).
    Put(Vec<u8>),
    Remove,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Content is a token: never printed.
        match self {
            Op::Put(content) => write!(f, "Put({} bytes)", content.len()),
            Op::Remove => f.write_str("Remove"),
        }
    }
}

/// A pull about to change the workspace, recorded before it does: what
/// its ledger step will record, so that a run stopped between the file
/// operation and that step can be finished by the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullIntent {
    pub key: Key,
    /// The backend's version it brings in; `None` when it removes the file.
    pub base: Option<Base>,
    /// The outbox entries it settles, through this one.
    pub drop_through: Option<u64>,
}

/// An acknowledged local change waiting for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub seq: u64,
    pub key: Key,
    pub op: Op,
    /// [`doc_hash`] of a put's content.
    pub hash: Option<String>,
    /// Sent to the backend at least once; its reply may have been lost.
    pub attempted: bool,
}

/// A workspace file the host replaced or deleted, kept for recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry {
    pub id: u64,
    /// Document path (`auths/<id>`, `config/config.yaml`).
    pub path: String,
    /// File name under `.storehost/trash/`.
    pub file: String,
    pub reason: String,
    pub size: u64,
    pub at_ms: u64,
}

/// The ledger's small named values.
#[derive(Debug, Clone, Copy)]
pub enum MetaName {
    Backend,
    Lineage,
    Cursor,
    LastSyncMs,
    /// "<count> <unix ms>" of the last pull whose deletions were refused.
    RemoteDeletionsRefused,
    /// Unix ms of an operator's `accept-remote-deletions`, until used.
    AcceptRemoteDeletions,
}

impl MetaName {
    fn as_str(self) -> &'static str {
        match self {
            MetaName::Backend => "backend",
            MetaName::Lineage => "lineage",
            MetaName::Cursor => "cursor",
            MetaName::LastSyncMs => "last_sync_ms",
            MetaName::RemoteDeletionsRefused => "remote_deletions_refused",
            MetaName::AcceptRemoteDeletions => "accept_remote_deletions",
        }
    }
}

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    /// Every document's base, kept in memory: a poll compares thousands of
    /// versions and must not query for each.
    bases: BTreeMap<Key, Base>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY, version TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, op TEXT NOT NULL,
    content BLOB, hash TEXT, attempted INTEGER NOT NULL DEFAULT 0,
    queued_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_by_path ON outbox (path, seq);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, copy TEXT NOT NULL, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trash (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, file TEXT NOT NULL,
    reason TEXT NOT NULL, size INTEGER NOT NULL, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS late_watch (
    file TEXT PRIMARY KEY, path TEXT NOT NULL, taken TEXT NOT NULL,
    deleted INTEGER NOT NULL, since_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    path TEXT PRIMARY KEY, version TEXT NOT NULL, problem TEXT NOT NULL,
    at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pulling (
    path TEXT PRIMARY KEY, version TEXT, hash TEXT, drop_through INTEGER);
";

/// A backend document the intake checks refused, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub path: String,
    pub version: String,
    pub problem: String,
    pub at_ms: u64,
}

impl Ledger {
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Opens (creating) the ledger in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Ledger, LedgerError> {
        let path = Ledger::file(state_dir);
        let conn = Ledger::connect(&path).map_err(sqlite_error(&path))?;
        set_private(&path);
        let mut ledger = Ledger {
            conn,
            path,
            bases: BTreeMap::new(),
        };
        ledger.bases = ledger.load_bases()?;
        Ok(ledger)
    }

    fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(conn)
    }

    /// True when a ledger file exists in `state_dir`.
    pub fn exists(state_dir: &Path) -> bool {
        Ledger::file(state_dir).is_file()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        sqlite_error(&self.path)
    }

    /// Runs `write` in one transaction, committed when it returns Ok.
    pub fn write<T>(
        &mut self,
        write: impl FnOnce(&LedgerTx<'_>) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite_error(&path))?;
        let changes = std::cell::RefCell::new(BTreeMap::new());
        let result = write(&LedgerTx {
            tx: &tx,
            path: &path,
            bases: &self.bases,
            changes: &changes,
        })?;
        tx.commit().map_err(sqlite_error(&path))?;
        for (key, base) in changes.into_inner() {
            match base {
                Some(base) => self.bases.insert(key, base),
                None => self.bases.remove(&key),
            };
        }
        Ok(result)
    }

    pub fn meta(&self, name: MetaName) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE name = ?1",
                [name.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.error())
    }

    pub fn base(&self, key: &Key) -> Option<&Base> {
        self.bases.get(key)
    }

    /// The base as committed now, read from the database rather than this
    /// handle's cache (for readers in another process or task).
    pub fn committed_base(&self, key: &Key) -> Result<Option<Base>, LedgerError> {
        self.conn
            .query_row(
                "SELECT version, hash FROM documents WHERE path = ?1",
                [path_key(key)],
                |row| {
                    Ok(Base {
                        version: row.get(0)?,
                        hash: row.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(self.error())
    }

    /// Every document's base, by key.
    pub fn bases(&self) -> &BTreeMap<Key, Base> {
        &self.bases
    }

    fn load_bases(&self) -> Result<BTreeMap<Key, Base>, LedgerError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT path, version, hash FROM documents")
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    Base {
                        version: row.get(1)?,
                        hash: row.get(2)?,
                    },
                ))
            })
            .map_err(self.error())?;
        let mut bases = BTreeMap::new();
        for row in rows {
            let (path, base) = row.map_err(self.error())?;
            if let Some(key) = key_of_path(&path) {
                bases.insert(key, base);
            }
        }
        Ok(bases)
    }

    pub fn document_count(&self) -> u64 {
        self.bases.len() as u64
    }

    pub fn outbox_len(&self) -> Result<u64, LedgerError> {
        self.count("SELECT COUNT(*) FROM outbox")
    }

    fn count(&self, sql: &str) -> Result<u64, LedgerError> {
        self.conn
            .query_row(sql, [], |row| row.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.error())
    }

    /// The oldest `limit` outbox entries.
    pub fn pending(&self, limit: usize) -> Result<Vec<Pending>, LedgerError> {
        self.select_pending(
            "SELECT seq, path, op, content, hash, attempted FROM outbox ORDER BY seq LIMIT ?1",
            params![limit as i64],
        )
    }

    /// True while entry `seq` is in the outbox.
    pub fn is_pending(&self, seq: u64) -> Result<bool, LedgerError> {
        self.conn
            .query_row("SELECT 1 FROM outbox WHERE seq = ?1", [seq as i64], |_| {
                Ok(())
            })
            .optional()
            .map(|found| found.is_some())
            .map_err(self.error())
    }

    /// A document's outbox entries, oldest first.
    pub fn pending_for(&self, key: &Key) -> Result<Vec<Pending>, LedgerError> {
        self.select_pending(
            "SELECT seq, path, op, content, hash, attempted FROM outbox WHERE path = ?1 ORDER BY seq",
            params![path_key(key)],
        )
    }

    /// Paths with outbox entries.
    pub fn pending_paths(&self) -> Result<std::collections::BTreeSet<String>, LedgerError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT DISTINCT path FROM outbox")
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(self.error())?;
        rows.collect::<Result<_, _>>().map_err(self.error())
    }

    fn select_pending(
        &self,
        sql: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<Pending>, LedgerError> {
        select_pending(&self.conn, &self.path, sql, parameters)
    }

    pub fn conflicts(&self) -> Result<Vec<String>, LedgerError> {
        let mut statement = self
            .conn
            .prepare("SELECT copy FROM conflicts ORDER BY id")
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| row.get(0))
            .map_err(self.error())?;
        rows.collect::<Result<_, _>>().map_err(self.error())
    }

    /// Backend documents refused by the intake checks, by path.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, LedgerError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT path, version, problem, at_ms FROM quarantine ORDER BY path")
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| {
                Ok(Quarantined {
                    path: row.get(0)?,
                    version: row.get(1)?,
                    problem: row.get(2)?,
                    at_ms: row.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(self.error())?;
        rows.collect::<Result<_, _>>().map_err(self.error())
    }

    pub fn trash(&self) -> Result<Vec<TrashEntry>, LedgerError> {
        let mut statement = self
            .conn
            .prepare("SELECT id, path, file, reason, size, at_ms FROM trash ORDER BY id")
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| {
                Ok(TrashEntry {
                    id: row.get::<_, i64>(0)? as u64,
                    path: row.get(1)?,
                    file: row.get(2)?,
                    reason: row.get(3)?,
                    size: row.get::<_, i64>(4)? as u64,
                    at_ms: row.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(self.error())?;
        rows.collect::<Result<_, _>>().map_err(self.error())
    }

    /// The watches for late writes, oldest first, each with when it began
    /// (unix ms).
    pub(crate) fn late_watches(&self) -> Result<Vec<(u64, Displaced)>, LedgerError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT since_ms, path, file, taken, deleted FROM late_watch ORDER BY since_ms",
            )
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)? as u64,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, bool>(4)?,
                ))
            })
            .map_err(self.error())?;
        let mut watches = Vec::new();
        for row in rows {
            let (since_ms, path, file, taken, deleted) = row.map_err(self.error())?;
            let Some(key) = key_of_path(&path) else {
                tracing::error!(%path, "skipping a late-write watch with an unknown path");
                continue;
            };
            let displaced = Displaced {
                key,
                file,
                taken,
                deleted,
            };
            watches.push((since_ms, displaced));
        }
        Ok(watches)
    }
}

fn select_pending(
    conn: &Connection,
    path: &Path,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<Pending>, LedgerError> {
    let error = sqlite_error(path);
    let mut statement = conn.prepare_cached(sql).map_err(&error)?;
    let rows = statement
        .query_map(parameters, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<Vec<u8>>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, bool>(5)?,
            ))
        })
        .map_err(&error)?;
    let mut entries = Vec::new();
    for row in rows {
        let (seq, path, op, content, hash, attempted) = row.map_err(&error)?;
        let Some(key) = key_of_path(&path) else {
            tracing::error!(%path, seq, "skipping an outbox entry with an unknown path");
            continue;
        };
        let op = match (op.as_str(), content) {
            ("put", Some(content)) => Op::Put(content),
            ("remove", _) => Op::Remove,
            _ => {
                tracing::error!(%path, seq, "skipping a damaged outbox entry");
                continue;
            }
        };
        entries.push(Pending {
            seq: seq as u64,
            key,
            op,
            hash,
            attempted,
        });
    }
    Ok(entries)
}

/// One write transaction of the ledger.
pub struct LedgerTx<'a> {
    tx: &'a Transaction<'a>,
    path: &'a Path,
    bases: &'a BTreeMap<Key, Base>,
    /// Base changes, applied to the cache once the transaction commits.
    changes: &'a std::cell::RefCell<BTreeMap<Key, Option<Base>>>,
}

impl LedgerTx<'_> {
    fn error(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        sqlite_error(self.path)
    }

    fn run(&self, sql: &str, parameters: impl rusqlite::Params) -> Result<usize, LedgerError> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(parameters))
            .map_err(self.error())
    }

    pub fn set_meta(&self, name: MetaName, value: Option<&str>) -> Result<(), LedgerError> {
        match value {
            Some(value) => self.run(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name.as_str(), value],
            ),
            None => self.run("DELETE FROM meta WHERE name = ?1", [name.as_str()]),
        }?;
        Ok(())
    }

    /// The base as this transaction sees it.
    pub fn base(&self, key: &Key) -> Option<Base> {
        match self.changes.borrow().get(key) {
            Some(base) => base.clone(),
            None => self.bases.get(key).cloned(),
        }
    }

    /// A document's outbox entries, oldest first.
    pub fn pending_for(&self, key: &Key) -> Result<Vec<Pending>, LedgerError> {
        select_pending(
            self.tx,
            self.path,
            "SELECT seq, path, op, content, hash, attempted FROM outbox WHERE path = ?1 ORDER BY seq",
            params![path_key(key)],
        )
    }

    /// Records a refused backend document (replacing an earlier refusal).
    pub fn quarantine(&self, path: &str, version: &str, problem: &str) -> Result<(), LedgerError> {
        self.run(
            "INSERT INTO quarantine (path, version, problem, at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (path) DO UPDATE SET version = excluded.version,
                 problem = excluded.problem, at_ms = excluded.at_ms",
            params![path, version, problem, super::now_ms() as i64],
        )?;
        Ok(())
    }

    /// The backend's document at `path` passed the checks again.
    pub fn release(&self, path: &str) -> Result<(), LedgerError> {
        self.run("DELETE FROM quarantine WHERE path = ?1", [path])?;
        Ok(())
    }

    pub fn set_base(&self, key: &Key, base: Option<&Base>) -> Result<(), LedgerError> {
        self.changes.borrow_mut().insert(key.clone(), base.cloned());
        match base {
            Some(base) => self.run(
                "INSERT INTO documents (path, version, hash) VALUES (?1, ?2, ?3)
                 ON CONFLICT (path) DO UPDATE SET version = excluded.version, hash = excluded.hash",
                params![path_key(key), base.version, base.hash],
            ),
            None => self.run("DELETE FROM documents WHERE path = ?1", [path_key(key)]),
        }?;
        Ok(())
    }

    /// Appends an acknowledged change. Entries of the same document not yet
    /// sent are superseded by it (only the newest content matters); sent
    /// ones stay, so a push whose reply was lost is still recognised.
    pub fn enqueue(&self, key: &Key, op: &Op) -> Result<u64, LedgerError> {
        self.run(
            "DELETE FROM outbox WHERE path = ?1 AND attempted = 0",
            [path_key(key)],
        )?;
        self.insert_pending(key, op)
    }

    /// Inserts an entry as it is (a migration keeps every old entry).
    fn insert_pending(&self, key: &Key, op: &Op) -> Result<u64, LedgerError> {
        let (name, content, hash) = match op {
            Op::Put(content) => (
                "put",
                Some(content.as_slice()),
                Some(doc_hash(key, content)),
            ),
            Op::Remove => ("remove", None, None),
        };
        self.run(
            "INSERT INTO outbox (path, op, content, hash, queued_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![path_key(key), name, content, hash, super::now_ms() as i64],
        )?;
        Ok(self.tx.last_insert_rowid() as u64)
    }

    pub fn mark_attempted(&self, seq: u64) -> Result<(), LedgerError> {
        self.run(
            "UPDATE outbox SET attempted = 1 WHERE seq = ?1",
            [seq as i64],
        )?;
        Ok(())
    }

    pub fn remove_pending(&self, seq: u64) -> Result<(), LedgerError> {
        self.run("DELETE FROM outbox WHERE seq = ?1", [seq as i64])?;
        Ok(())
    }

    pub fn record_pull_intents(&self, intents: &[PullIntent]) -> Result<(), LedgerError> {
        for intent in intents {
            let (version, hash) = match &intent.base {
                Some(base) => (Some(&base.version), Some(&base.hash)),
                None => (None, None),
            };
            self.run(
                "INSERT OR REPLACE INTO pulling (path, version, hash, drop_through)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    path_key(&intent.key),
                    version,
                    hash,
                    intent.drop_through.map(|seq| seq as i64)
                ],
            )?;
        }
        Ok(())
    }

    /// The intents of pulls whose ledger step has not been recorded.
    pub fn pull_intents(&self) -> Result<Vec<PullIntent>, LedgerError> {
        let mut statement = self
            .tx
            .prepare_cached("SELECT path, version, hash, drop_through FROM pulling")
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(self.error())?;
        let mut intents = Vec::new();
        for row in rows {
            let (path, version, hash, drop_through) = row.map_err(self.error())?;
            let Some(key) = key_of_path(&path) else {
                continue;
            };
            intents.push(PullIntent {
                key,
                base: version
                    .zip(hash)
                    .map(|(version, hash)| Base { version, hash }),
                drop_through: drop_through.map(|seq| seq as u64),
            });
        }
        Ok(intents)
    }

    pub fn clear_pull_intents(&self) -> Result<(), LedgerError> {
        self.run("DELETE FROM pulling", [])?;
        Ok(())
    }

    /// Removes a document's entries up to and including `seq`.
    pub fn remove_pending_through(&self, key: &Key, seq: u64) -> Result<(), LedgerError> {
        self.run(
            "DELETE FROM outbox WHERE path = ?1 AND seq <= ?2",
            params![path_key(key), seq as i64],
        )?;
        Ok(())
    }

    pub fn add_conflict(&self, copy: &str) -> Result<(), LedgerError> {
        self.run(
            "INSERT INTO conflicts (copy, at_ms) VALUES (?1, ?2)",
            params![copy, super::now_ms() as i64],
        )?;
        Ok(())
    }

    pub fn add_trash(
        &self,
        path: &str,
        file: &str,
        reason: &str,
        size: u64,
    ) -> Result<u64, LedgerError> {
        self.run(
            "INSERT INTO trash (path, file, reason, size, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![path, file, reason, size as i64, super::now_ms() as i64],
        )?;
        Ok(self.tx.last_insert_rowid() as u64)
    }

    /// Says anew what trash file `file` holds, after it changed.
    pub fn update_trash(&self, file: &str, reason: &str, size: u64) -> Result<(), LedgerError> {
        self.run(
            "UPDATE trash SET reason = ?2, size = ?3 WHERE file = ?1",
            params![file, reason, size as i64],
        )?;
        Ok(())
    }

    /// Forgets the entry of trash file `file`, which left the trash, and
    /// its watch for late writes.
    pub fn forget_trash(&self, file: &str) -> Result<(), LedgerError> {
        self.run("DELETE FROM trash WHERE file = ?1", params![file])?;
        self.unwatch_late(file)
    }

    /// Keeps a watch for late writes into a trash file across restarts.
    pub(crate) fn watch_late(&self, displaced: &Displaced) -> Result<(), LedgerError> {
        self.run(
            "INSERT OR REPLACE INTO late_watch (file, path, taken, deleted, since_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                displaced.file,
                path_key(&displaced.key),
                displaced.taken,
                displaced.deleted,
                super::now_ms() as i64
            ],
        )?;
        Ok(())
    }

    /// A late write with content hash `taken` was dealt with.
    pub(crate) fn late_write_taken(&self, file: &str, taken: &str) -> Result<(), LedgerError> {
        self.run(
            "UPDATE late_watch SET taken = ?2 WHERE file = ?1",
            params![file, taken],
        )?;
        Ok(())
    }

    pub(crate) fn unwatch_late(&self, file: &str) -> Result<(), LedgerError> {
        self.run("DELETE FROM late_watch WHERE file = ?1", params![file])?;
        Ok(())
    }

    /// Lets go of every watch.
    pub(crate) fn clear_late_watches(&self) -> Result<(), LedgerError> {
        self.run("DELETE FROM late_watch", [])?;
        Ok(())
    }

    /// Lets go of watches begun before `cutoff_ms`.
    pub(crate) fn expire_late_watches(&self, cutoff_ms: u64) -> Result<(), LedgerError> {
        self.run(
            "DELETE FROM late_watch WHERE since_ms < ?1",
            params![cutoff_ms as i64],
        )?;
        Ok(())
    }

    /// Forgets trash entries older than `cutoff_ms`; returns their files.
    pub fn expire_trash(&self, cutoff_ms: u64) -> Result<Vec<String>, LedgerError> {
        let mut statement = self
            .tx
            .prepare_cached("DELETE FROM trash WHERE at_ms < ?1 RETURNING file")
            .map_err(self.error())?;
        let rows = statement
            .query_map([cutoff_ms as i64], |row| row.get(0))
            .map_err(self.error())?;
        rows.collect::<Result<_, _>>().map_err(self.error())
    }
}

fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// The database holds tokens: 0600 like every other file of the host.
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(crate::fsutil::FILE_MODE),
    );
}

/// Imports the state of an older host (`state.json` and `outbox/`), once.
/// The old files are renamed `*.migrated`, never deleted.
pub mod migrate {
    use super::*;
    use crate::fsutil::beneath::{BeneathError, Dir, is_link_error};
    use crate::mirror::workspace::Workspace;
    use serde::Deserialize;
    use std::io;

    #[derive(Deserialize)]
    struct OldSeen {
        local: String,
        remote: String,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct OldState {
        backend: String,
        lineage: Option<String>,
        cursor: Option<String>,
        last_sync_ms: Option<u64>,
        documents: BTreeMap<String, OldSeen>,
        conflicts: Vec<String>,
    }

    #[derive(Deserialize)]
    struct OldEntry {
        path: String,
        op: String,
        content: Option<String>,
    }

    /// True when there was something to migrate. The old files are read
    /// through the state directory's handle: a link in place of one is
    /// refused (`state.json`) or skipped (an outbox entry), never followed.
    pub fn from_json(ledger: &mut Ledger, workspace: &Workspace) -> Result<bool, LedgerError> {
        let state_dir = workspace.state_dir();
        let ledger_path = ledger.path().display().to_string();
        let failed = |message: String| LedgerError::Migration {
            path: ledger_path.clone(),
            message,
        };
        let Some(old) = OldFiles::open(&state_dir).map_err(|e| failed(e.to_string()))? else {
            return Ok(false);
        };
        let state: OldState = match &old.state {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
                failed(format!(
                    "{} is damaged: {e}",
                    state_dir.join(STATE).display()
                ))
            })?,
            None => OldState::default(),
        };
        let entries = old.outbox_entries().map_err(|e| failed(e.to_string()))?;
        ledger.write(|tx| import(tx, workspace, &state, &entries))?;
        for name in [STATE, OUTBOX] {
            let path = state_dir.join(name);
            if path.symlink_metadata().is_ok() {
                let mut kept = path.clone().into_os_string();
                kept.push(".migrated");
                std::fs::rename(&path, &kept).map_err(|e| failed(e.to_string()))?;
            }
        }
        tracing::info!(
            documents = state.documents.len(),
            outbox = entries.len(),
            "migrated the sync state of an older storehost into the ledger"
        );
        Ok(true)
    }

    const STATE: &str = "state.json";
    const OUTBOX: &str = "outbox";

    /// What an older host left: its state file's bytes and its outbox
    /// directory, each opened without following a link.
    struct OldFiles {
        state: Option<Vec<u8>>,
        outbox: Option<Dir>,
    }

    /// Why the old files could not be read.
    #[derive(Debug, thiserror::Error)]
    enum OldFilesError {
        #[error("cannot read {path}: {source}")]
        Io { path: String, source: io::Error },
        /// A FIFO, device or directory where a file belongs; the message
        /// names it.
        #[error("{0}")]
        NotAFile(io::Error),
        #[error(transparent)]
        Beneath(#[from] BeneathError),
    }

    impl OldFiles {
        /// None when there is neither a state file nor an outbox.
        fn open(state_dir: &Path) -> Result<Option<OldFiles>, OldFilesError> {
            let dir = match Dir::open_root(state_dir) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(source) => {
                    let path = state_dir.display().to_string();
                    return Err(OldFilesError::Io { path, source });
                }
            };
            let state = read_old(&dir, STATE)?;
            let outbox = match dir.open_beneath(Path::new(OUTBOX), false) {
                Ok(outbox) => Some(outbox),
                Err(BeneathError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => return Err(e.into()),
            };
            Ok((state.is_some() || outbox.is_some()).then_some(OldFiles { state, outbox }))
        }

        /// The outbox's entries in sequence order. A damaged entry, or one
        /// that is not a regular file, is logged and skipped (it stays in
        /// `outbox.migrated`).
        fn outbox_entries(&self) -> Result<Vec<OldEntry>, OldFilesError> {
            let Some(outbox) = &self.outbox else {
                return Ok(Vec::new());
            };
            let names = outbox.entry_names().map_err(|source| OldFilesError::Io {
                path: outbox.path_of("").display().to_string(),
                source,
            })?;
            let mut files: Vec<(u64, String)> = names
                .into_iter()
                .filter_map(|name| {
                    let seq = Path::new(&name).file_stem()?.to_str()?.parse().ok()?;
                    Some((seq, name))
                })
                .collect();
            files.sort();
            let mut entries = Vec::new();
            for (_, name) in files {
                let parsed = match read_old(outbox, &name) {
                    Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
                    Ok(None) => continue,
                    Err(e) => Err(e.to_string()),
                };
                match parsed {
                    Ok(entry) => entries.push(entry),
                    Err(e) => {
                        let path = outbox.path_of(&name);
                        tracing::error!(path = %path.display(), "skipping an outbox entry: {e}")
                    }
                }
            }
            Ok(entries)
        }
    }

    /// One old file's bytes, None if it is gone; a link or a non-file
    /// there is an error that names it.
    fn read_old(dir: &Dir, name: &str) -> Result<Option<Vec<u8>>, OldFilesError> {
        match dir.read(name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if is_link_error(&e) => {
                let path = dir.path_of(name).display().to_string();
                Err(BeneathError::Symlink { path }.into())
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(OldFilesError::NotAFile(e)),
            Err(source) => Err(OldFilesError::Io {
                path: dir.path_of(name).display().to_string(),
                source,
            }),
        }
    }

    /// Writes the old state and outbox into the ledger, in one transaction.
    fn import(
        tx: &LedgerTx<'_>,
        workspace: &Workspace,
        state: &OldState,
        entries: &[OldEntry],
    ) -> Result<(), LedgerError> {
        tx.set_meta(
            MetaName::Backend,
            Some(state.backend.as_str()).filter(|b| !b.is_empty()),
        )?;
        tx.set_meta(MetaName::Lineage, state.lineage.as_deref())?;
        tx.set_meta(MetaName::Cursor, state.cursor.as_deref())?;
        let last_sync = state.last_sync_ms.map(|ms| ms.to_string());
        tx.set_meta(MetaName::LastSyncMs, last_sync.as_deref())?;
        for (path, seen) in &state.documents {
            let Some(key) = key_of_path(path) else {
                continue;
            };
            let base = Base {
                version: seen.remote.clone(),
                hash: migrated_hash(workspace, &key, &seen.local),
            };
            tx.set_base(&key, Some(&base))?;
        }
        for copy in &state.conflicts {
            tx.add_conflict(copy)?;
        }
        for entry in entries {
            let Some(key) = key_of_path(&entry.path) else {
                continue;
            };
            let op = match (entry.op.as_str(), &entry.content) {
                ("put", Some(content)) => Op::Put(content.clone().into_bytes()),
                ("remove", _) => Op::Remove,
                _ => continue,
            };
            tx.insert_pending(&key, &op)?;
        }
        Ok(())
    }

    /// The old state kept a hash of the raw bytes. Where the file is still
    /// those bytes, its content hash is the base; otherwise the base is
    /// unknown, which counts as a local change (pushed with the old
    /// version as precondition, so nothing remote is overwritten unseen).
    fn migrated_hash(workspace: &Workspace, key: &Key, old_local: &str) -> String {
        match workspace.read(key) {
            Ok(Some(content)) if super::super::hash::raw_hash(&content) == old_local => {
                doc_hash(key, &content)
            }
            _ => format!("unknown:{old_local}"),
        }
    }
}
