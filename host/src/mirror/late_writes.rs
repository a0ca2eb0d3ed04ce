//! Late writes: a proxy that opened a document before the host replaced or
//! removed it may write through that handle long after the swap's own
//! checks, into the file now in the trash. For a while after each swap
//! ([`WATCH_FOR`], across restarts) the host looks at those files again
//! (at every poll, and when the watcher sees the trash change). A late
//! write is a local change made against the version the host took out, so
//! it is treated as any such change meeting the backend's: after a
//! replacement it is a conflict (the backend's version stays live, the
//! proxy's is kept beside it as a conflict copy); after a deletion the
//! file comes back live (the handle with it) and goes out again. A file an
//! interrupted run took out is watched from the next open on.

use super::engine::Mirror;
use super::hash::doc_hash;
use super::ledger::{Ledger, LedgerError, LedgerTx};
use super::paths::{key_of_path, path_key};
use super::trash::Adopted;
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

/// The files looked at again, as a list in memory (a poll goes through it
/// without a query) kept in the ledger too: a restart of the host does not
/// end the watch, and a late write made while it was down is found at its
/// first poll.
pub(crate) struct LateWrites {
    watched: Mutex<VecDeque<(Instant, Displaced)>>,
}

impl LateWrites {
    /// The watches a previous run left in `ledger` that are still within
    /// [`WATCH_FOR`]; the older ones are let go.
    pub fn resume(ledger: &mut Ledger) -> Result<LateWrites, LedgerError> {
        let now_ms = super::now_ms();
        let cutoff = now_ms.saturating_sub(WATCH_FOR.as_millis() as u64);
        ledger.write(|tx| tx.expire_late_watches(cutoff))?;
        let watches = match ledger.late_watches() {
            Ok(watches) => watches,
            // Only late writes depend on them: the host starts without
            // them rather than not at all, and says so once.
            Err(e) => {
                tracing::error!("the late-write watches in the ledger are damaged and let go: {e}");
                ledger.write(|tx| tx.clear_late_watches())?;
                Vec::new()
            }
        };
        let now = Instant::now();
        let mut watched: VecDeque<_> = watches
            .into_iter()
            .map(|(since_ms, displaced)| {
                let age = Duration::from_millis(now_ms.saturating_sub(since_ms));
                (now.checked_sub(age).unwrap_or(now), displaced)
            })
            .collect();
        while watched.len() > MAX_WATCHED {
            watched.pop_front();
        }
        Ok(LateWrites {
            watched: Mutex::new(watched),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Displaced)>> {
        // A panic elsewhere leaves the list whole: it only names files.
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `displaced`, recorded in `tx` (the pull's own transaction).
    pub fn watch(&self, tx: &LedgerTx<'_>, displaced: Displaced) -> Result<(), LedgerError> {
        tx.watch_late(&displaced)?;
        let mut watched = self.lock();
        watched.push_back((Instant::now(), displaced));
        while watched.len() > MAX_WATCHED {
            if let Some((_, oldest)) = watched.pop_front() {
                tx.unwatch_late(&oldest.file)?;
            }
        }
        Ok(())
    }

    /// The files still to look at, and the trash files of those watched
    /// long enough, now let go.
    fn current(&self) -> (Vec<Displaced>, Vec<String>) {
        let mut watched = self.lock();
        let mut expired = Vec::new();
        watched.retain(|(since, displaced)| {
            let keep = since.elapsed() < WATCH_FOR;
            if !keep {
                expired.push(displaced.file.clone());
            }
            keep
        });
        let current = watched.iter().map(|(_, d)| d.clone()).collect();
        (current, expired)
    }

    fn forget(&self, file: &str) {
        self.lock().retain(|(_, d)| d.file != file);
    }

    /// The late write with content hash `taken` has been dealt with; a
    /// later one through the same handle is looked for next.
    fn took(&self, file: &str, taken: &str) {
        for (_, displaced) in self.lock().iter_mut() {
            if displaced.file == file {
                displaced.taken = taken.to_string();
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
    /// Watches a file an interrupted run left in the trash, which that run
    /// was stopped before watching; written with its trash entry. The run
    /// was stopped before its ledger step, so the document's base is still
    /// what the pull found in the file when nothing local was pending; a
    /// file that holds anything else now was written while no host ran (or
    /// held a local change the pull was to keep) and is found as a late
    /// write. Without a base, what it holds now counts as taken. Only late
    /// writes depend on it: a file that cannot be read is reported, not
    /// watched, and the host starts.
    pub(crate) fn watch_adopted(
        &self,
        tx: &LedgerTx<'_>,
        adopted: &Adopted,
    ) -> Result<(), LedgerError> {
        match self.adopted_as_displaced(tx, adopted) {
            Ok(Some(displaced)) => self.late_writes.watch(tx, displaced),
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::error!(file = %adopted.file, "a file an interrupted run left in the trash is not watched for late writes: {e}");
                Ok(())
            }
        }
    }

    fn adopted_as_displaced(
        &self,
        tx: &LedgerTx<'_>,
        Adopted { path, file }: &Adopted,
    ) -> Result<Option<Displaced>, StorehostError> {
        let Some(key) = key_of_path(path) else {
            return Ok(None);
        };
        let content = self.workspace.read_trashed(file)?;
        let taken = match tx.base(&key) {
            Some(base) => base.hash,
            None => doc_hash(&key, &content),
        };
        Ok(Some(Displaced {
            taken,
            // Taken out with nothing put in its place: the backend deleted
            // it, and a late write brings it back.
            deleted: self.workspace.read(&key)?.is_none(),
            key,
            file: file.clone(),
        }))
    }

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
        let (current, expired) = self.late_writes.current();
        if !expired.is_empty() {
            let unwatched = self
                .ledger()
                .write(|tx| expired.iter().try_for_each(|file| tx.unwatch_late(file)));
            if let Err(e) = unwatched {
                tracing::error!("letting go of late-write watches in the ledger failed: {e}");
            }
        }
        let mut found = 0;
        for displaced in current {
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
            self.ledger().write(|tx| tx.unwatch_late(&displaced.file))?;
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
            self.ledger()
                .write(|tx| tx.late_write_taken(&displaced.file, &hash))?;
            self.late_writes.took(&displaced.file, &hash);
            return Ok(false);
        }
        self.keep_late_write_as_conflict(displaced, &content, &hash)?;
        self.late_writes.took(&displaced.file, &hash);
        Ok(true)
    }

    /// The live version stays; the proxy's late write is kept beside it,
    /// and the trash entry says what its file holds now.
    fn keep_late_write_as_conflict(
        &self,
        displaced: &Displaced,
        content: &[u8],
        hash: &str,
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
            tx.update_trash(&displaced.file, &reason, content.len() as u64)?;
            tx.late_write_taken(&displaced.file, hash)
        })?;
        Ok(())
    }
}
