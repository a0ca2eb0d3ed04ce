//! Late writes: a proxy that opened a document before the host replaced or
//! removed it may write through that handle long after the swap's own
//! checks, into the file now in the trash. For a while after each swap
//! ([`WATCH_FOR`]) the host looks at those files again (at every poll, and
//! when the watcher sees the trash change). A late write is a local change
//! made against the version the host took out, so it is treated as any
//! such change meeting the backend's: after a replacement it is a conflict
//! (the backend's version stays live, the proxy's is kept beside it as a
//! conflict copy); after a deletion the file comes back live (the handle
//! with it) and goes out again.

use super::engine::Mirror;
use super::hash::doc_hash;
use super::paths::path_key;
use super::workspace::validate_document;
use crate::error::StorehostError;
use crate::model::Key;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a file the host took out is looked at again.
const WATCH_FOR: Duration = Duration::from_secs(600);
/// Most files looked at again; past it the oldest are let go (their
/// versions stay in the trash either way).
const MAX_WATCHED: usize = 1024;

/// A file a swap moved into the trash, as the host took it out.
#[derive(Debug, Clone)]
pub(crate) struct Displaced {
    pub key: Key,
    /// Its name in the trash directory.
    pub file: String,
    /// Its content hash when the host took it out (or at the last late
    /// write taken).
    pub taken: String,
    /// Removed because the backend deleted the document (otherwise
    /// replaced by the backend's version).
    pub deleted: bool,
}

#[derive(Default)]
pub(crate) struct LateWrites {
    watched: Mutex<VecDeque<(Instant, Displaced)>>,
}

impl LateWrites {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Displaced)>> {
        // A panic elsewhere leaves the list whole: it only names files.
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn watch(&self, displaced: Displaced) {
        let mut watched = self.lock();
        watched.push_back((Instant::now(), displaced));
        while watched.len() > MAX_WATCHED {
            watched.pop_front();
        }
    }

    /// The files still to look at, after letting go of those watched long
    /// enough.
    fn current(&self) -> Vec<Displaced> {
        let mut watched = self.lock();
        watched.retain(|(since, _)| since.elapsed() < WATCH_FOR);
        watched.iter().map(|(_, d)| d.clone()).collect()
    }

    fn forget(&self, file: &str) {
        self.lock().retain(|(_, d)| d.file != file);
    }

    /// The late write with content hash `taken` has been dealt with; a
    /// later one through the same handle is looked for next.
    fn took(&self, file: &str, taken: String) {
        for (_, displaced) in self.lock().iter_mut() {
            if displaced.file == file {
                displaced.taken = taken.clone();
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Mirror {
    /// Looks for late writes and deals with them; returns how many were
    /// found.
    pub async fn take_late_writes(&self) -> usize {
        // The watcher calls on every trash change, the host's own included.
        if self.late_writes.is_empty() {
            return 0;
        }
        let _owner = self.own().await;
        self.take_late_writes_owned()
    }

    /// [`Mirror::take_late_writes`] for the sync owner. A file that cannot
    /// be dealt with is reported and looked at again; the rest go on.
    pub(crate) fn take_late_writes_owned(&self) -> usize {
        let mut found = 0;
        for displaced in self.late_writes.current() {
            match self.take_late_write(&displaced) {
                Ok(true) => found += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(key = %displaced.key, "taking a late write of the proxy failed: {e}")
                }
            }
        }
        found
    }

    fn take_late_write(&self, displaced: &Displaced) -> Result<bool, StorehostError> {
        let key = &displaced.key;
        // Gone (restored, expired) or no longer a plain file: nothing of
        // the proxy's can arrive there any more.
        let Ok(content) = self.workspace.read_trashed(&displaced.file) else {
            self.late_writes.forget(&displaced.file);
            return Ok(false);
        };
        let hash = doc_hash(key, &content);
        // A write still under way parses only once it is whole.
        if hash == displaced.taken || validate_document(key, content.clone()).is_err() {
            return Ok(false);
        }
        if displaced.deleted && self.workspace.untrash_if_absent(key, &displaced.file)? {
            tracing::warn!(%key, "the proxy wrote to a file after the backend deleted it, through a handle it held; its version is live again and goes out");
            self.late_writes.forget(&displaced.file);
            self.ledger().write(|tx| tx.forget_trash(&displaced.file))?;
            self.note_local_write(key)?;
            return Ok(true);
        }
        // The same content as the live file is agreement, not a conflict.
        let live = self.workspace.read(key)?;
        if live.is_some_and(|live| doc_hash(key, &live) == hash) {
            self.late_writes.took(&displaced.file, hash);
            return Ok(false);
        }
        self.keep_late_write_as_conflict(displaced, &content)?;
        self.late_writes.took(&displaced.file, hash);
        Ok(true)
    }

    /// The live version stays; the proxy's late write is kept beside it,
    /// and the trash entry says what its file holds now.
    fn keep_late_write_as_conflict(
        &self,
        displaced: &Displaced,
        content: &[u8],
    ) -> Result<(), StorehostError> {
        let key = &displaced.key;
        let copy = self.workspace.keep_conflict_copy(key, content)?;
        tracing::warn!(%key, kept = %copy, "conflict: the proxy wrote to a file after the host replaced it, through a handle it held; the live version stays, the proxy's is kept beside it");
        let reason = format!(
            "taken out of {}, then written by the proxy through a handle it held: kept as conflict copy {copy}",
            path_key(key)
        );
        self.ledger().write(|tx| {
            tx.add_conflict(&copy)?;
            tx.update_trash(&displaced.file, &reason, content.len() as u64)
        })?;
        Ok(())
    }
}
