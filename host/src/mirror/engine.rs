//! The mirror engine.
//!
//! Two paths meet here. The write path (the API, the workspace watcher)
//! only enqueues: it takes the ledger lock for one short transaction and
//! never waits for the backend or a plugin call. The sync path (drain,
//! poll, scan, bootstrap) is serialised by one lock, so exactly one task
//! makes sync decisions at a time; it calls the backend without holding
//! the ledger lock, and takes the ledger lock only to decide and act on a
//! document, so a decision and the file operation it leads to see the same
//! workspace and ledger as the write path does.

use super::decide::{Local, Remote as RemoteState};
use super::hash::doc_hash;
use super::ledger::{Base, Ledger, MetaName, Op, Pending};
use super::paths::path_key;
use super::remote::{Remote, read_one};
use super::scan::DeletionGuard;
use super::settle::{Item, Policy};
use super::workspace::{Workspace, WorkspaceError, validate_document};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::{Change, Key, Kind, Precondition, Snapshot};
use crate::runtime::{BackendError, PluginError};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// A write the host took: durable in the ledger, pushed by the sync task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// Direct mode: the store is the workspace, and has it.
    Stored(Option<crate::model::Entry>),
    /// Mirrored mode: acknowledged as outbox entry `seq`.
    Queued(u64),
}

/// What one drain of the outbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    pub applied: usize,
    /// Conflicts met and settled by the decision function.
    pub resolved: usize,
    /// The backend was unavailable (or kept refusing); entries remain.
    pub blocked: bool,
}

#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub poll_interval: Duration,
    /// Deletions larger than this share of the tracked auths, seen at once,
    /// are refused (a single deletion is always allowed).
    pub max_delete_share: f64,
    pub shutdown_flush: Duration,
    /// A local store whose auths seed an empty remote on the first sync
    /// (see [`crate::selection::Selection::migrate_from`]).
    pub migrate_from: Option<PathBuf>,
    /// How long replaced and deleted workspace files stay in the trash.
    pub trash_retention: Duration,
    /// How often a poll asks for everything instead of a delta.
    pub complete_pull_interval: Duration,
    /// Largest document taken from the backend.
    pub max_document_bytes: usize,
}

pub const DEFAULT_TRASH_DAYS: u64 = 7;

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            poll_interval: Duration::from_secs(5),
            max_delete_share: 0.25,
            shutdown_flush: Duration::from_secs(10),
            migrate_from: None,
            trash_retention: Duration::from_secs(DEFAULT_TRASH_DAYS * 24 * 3600),
            complete_pull_interval: Duration::from_secs(600),
            max_document_bytes: super::intake::DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

pub struct Mirror {
    pub(crate) remote: Arc<dyn Remote>,
    pub(crate) workspace: Workspace,
    pub(crate) options: MirrorOptions,
    ledger: std::sync::Mutex<Ledger>,
    /// Held by whoever makes sync decisions (drain, poll, scan, bootstrap).
    owner: tokio::sync::Mutex<()>,
    /// Wakes the replay task: something was queued.
    pub(crate) wake: Notify,
    /// Told after every drain, for writers waiting for their push.
    progress: Notify,
    /// Set while the backend is unavailable.
    backend_down: AtomicBool,
    /// When the last complete pull was (bootstrap is one).
    last_complete_pull: std::sync::Mutex<Option<std::time::Instant>>,
    pub(crate) not_mirrored: super::scan::NotMirrored,
    /// Files swaps took out, looked at again for the proxy's late writes.
    pub(crate) late_writes: super::late_writes::LateWrites,
}

/// What [`Mirror::note_local_change`] does with a file that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    /// Report it (ERROR) and leave it for the user.
    Report,
    /// Say nothing: it may be a write still under way.
    Defer,
}

/// What noting a workspace change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    Queued(u64),
    /// Unchanged, absent, or invalid and reported.
    Nothing,
    /// Invalid, not reported ([`OnInvalid::Defer`]).
    Deferred,
}

/// A workspace document's state and content, or why it does not parse.
type LocalRead = Result<(Local, Option<Vec<u8>>), WorkspaceError>;

fn report_invalid(problem: &WorkspaceError) {
    tracing::error!("{problem}; not pushed, the remote keeps its last good version");
}

/// Most changes one `apply` carries.
const MAX_BATCH: usize = 256;

impl Mirror {
    pub fn open(
        remote: Arc<dyn Remote>,
        workspace: Workspace,
        options: MirrorOptions,
    ) -> Result<Mirror, StorehostError> {
        workspace.create()?;
        let mut ledger = Ledger::open(&workspace.state_dir())?;
        super::ledger::migrate::from_json(&mut ledger, &workspace)?;
        let late_writes = super::late_writes::LateWrites::resume(&mut ledger)?;
        let mirror = Mirror {
            remote,
            workspace,
            options,
            ledger: std::sync::Mutex::new(ledger),
            owner: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            progress: Notify::new(),
            backend_down: AtomicBool::new(false),
            last_complete_pull: std::sync::Mutex::new(Some(std::time::Instant::now())),
            not_mirrored: Default::default(),
            late_writes,
        };
        mirror.expire_trash()?;
        super::trash::adopt_unlisted(&mirror.workspace, &mut mirror.ledger(), |tx, adopted| {
            mirror.watch_adopted(tx, adopted)
        })?;
        Ok(mirror)
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    pub fn options(&self) -> &MirrorOptions {
        &self.options
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding it left no half-done transaction (SQLite
        // rolled it back), so the ledger is still consistent.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn outbox_len(&self) -> usize {
        self.ledger().outbox_len().unwrap_or_default() as usize
    }

    /// Takes the owner's role for a sync step.
    pub(crate) async fn own(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.owner.lock().await
    }

    // ---- the write path: enqueue only -------------------------------

    /// Writes a validated document into the workspace and acknowledges it:
    /// both happen under the ledger lock, so the watcher never mistakes the
    /// host's own write for the proxy's.
    pub fn enqueue_put(&self, key: &Key, content: Vec<u8>) -> Result<Saved, StorehostError> {
        let mut ledger = self.ledger();
        self.workspace.write(key, &content)?;
        let seq = ledger.write(|tx| tx.enqueue(key, &Op::Put(content)))?;
        drop(ledger);
        self.wake.notify_one();
        Ok(Saved::Queued(seq))
    }

    /// Deletes a document's file and acknowledges the deletion.
    pub fn enqueue_remove(&self, key: &Key) -> Result<Saved, StorehostError> {
        let mut ledger = self.ledger();
        self.workspace.remove(key)?;
        let seq = ledger.write(|tx| tx.enqueue(key, &Op::Remove))?;
        drop(ledger);
        self.wake.notify_one();
        Ok(Saved::Queued(seq))
    }

    /// A file the proxy wrote: queued when it differs from what the host
    /// knows of it. Returns the entry, or None when there was nothing new
    /// (unchanged, absent, or invalid and left for the user).
    pub fn note_local_write(&self, key: &Key) -> Result<Option<u64>, StorehostError> {
        Ok(match self.note_local_change(key, OnInvalid::Report)? {
            Noted::Queued(seq) => Some(seq),
            Noted::Nothing | Noted::Deferred => None,
        })
    }

    /// [`Mirror::note_local_write`], telling what happened; with
    /// [`OnInvalid::Defer`] a file that does not parse (a write still under
    /// way) is not reported, for the caller to look again.
    pub fn note_local_change(
        &self,
        key: &Key,
        on_invalid: OnInvalid,
    ) -> Result<Noted, StorehostError> {
        let mut ledger = self.ledger();
        let (local, content) = match self.read_local(key)? {
            Ok(read) => read,
            Err(_) if on_invalid == OnInvalid::Defer => return Ok(Noted::Deferred),
            Err(problem) => {
                report_invalid(&problem);
                return Ok(Noted::Nothing);
            }
        };
        let Local::Present(hash) = local else {
            return Ok(Noted::Nothing);
        };
        let known = match ledger.pending_for(key)?.last() {
            Some(last) => last.hash.clone(),
            None => ledger.base(key).map(|b| b.hash.clone()),
        };
        if known.as_ref() == Some(&hash) {
            return Ok(Noted::Nothing);
        }
        let content = content.expect("a present document has content");
        let seq = ledger.write(|tx| tx.enqueue(key, &Op::Put(content)))?;
        drop(ledger);
        tracing::debug!(%key, seq, "workspace change queued");
        self.wake.notify_one();
        Ok(Noted::Queued(seq))
    }

    /// True once entry `seq` has left the outbox (pushed, or settled by a
    /// conflict), waiting up to `bound`.
    pub async fn wait_pushed(&self, seq: u64, bound: Duration) -> Result<bool, StorehostError> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let progressed = self.progress.notified();
            if !self.ledger().is_pending(seq)? {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                return Ok(!self.ledger().is_pending(seq)?);
            }
        }
    }

    /// The workspace document now, checked as the proxy's input: its state
    /// for the decision, and the content to push (configs with `\n` line
    /// endings). A file that does not parse is [`Local::Invalid`], not yet
    /// reported: see [`Mirror::look_again_at_invalid`].
    pub(crate) fn local_now(&self, key: &Key) -> Result<(Local, Option<Vec<u8>>), StorehostError> {
        Ok(self.read_local(key)?.unwrap_or((Local::Invalid, None)))
    }

    /// Documents whose file did not parse when they were settled. The proxy
    /// rewrites some files in place, so a scan can catch one half-written:
    /// each is read again after a moment, queued if it parses now, and
    /// reported only if it still does not. Returns how many were queued.
    pub(crate) async fn look_again_at_invalid(
        &self,
        keys: BTreeSet<Key>,
    ) -> Result<usize, StorehostError> {
        if keys.is_empty() {
            return Ok(0);
        }
        tokio::time::sleep(super::sync::PARTIAL_WRITE_SETTLE).await;
        self.report_or_queue(keys)
    }

    /// Reads each document again: queued if it parses now, reported if not.
    fn report_or_queue(&self, keys: BTreeSet<Key>) -> Result<usize, StorehostError> {
        let mut queued = 0;
        for key in &keys {
            if self.note_local_write(key)?.is_some() {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// [`Mirror::local_now`], with a file that does not parse as the
    /// problem instead of a report.
    fn read_local(&self, key: &Key) -> Result<LocalRead, StorehostError> {
        let Some(content) = self.workspace.read(key)? else {
            return Ok(Ok((Local::Absent, None)));
        };
        let checked = validate_document(key, content);
        Ok(checked.map(|content| (Local::Present(doc_hash(key, &content)), Some(content))))
    }

    // ---- the sync path: one owner ----------------------------------

    /// Pushes queued changes in order, in batches, until the outbox is
    /// empty or the backend is unavailable.
    pub async fn drain(&self) -> Result<Drained, StorehostError> {
        let _owner = self.own().await;
        let drained = self.drain_owned().await;
        self.progress.notify_waiters();
        drained
    }

    pub(crate) async fn drain_owned(&self) -> Result<Drained, StorehostError> {
        let mut drained = Drained::default();
        // After a batch is refused, its entries go one by one to find the
        // culprit.
        let mut singles = 0usize;
        let mut conflicts_seen = 0usize;
        loop {
            let limit = if singles > 0 { 1 } else { MAX_BATCH };
            let batch = self.next_batch(limit)?;
            if batch.is_empty() {
                break;
            }
            singles = singles.saturating_sub(batch.len());
            tracing::debug!(
                entries = ?batch.iter().map(|s| (s.seq, s.key.to_string())).collect::<Vec<_>>(),
                "pushing"
            );
            let changes = batch.iter().map(|sent| sent.change.clone()).collect();
            match self.remote.apply(changes, &batch_message(&batch)).await {
                Ok(entries) => {
                    self.record_pushed(&batch, entries)?;
                    drained.applied += batch.len();
                }
                Err(error) => match PushFailure::from_plugin(error) {
                    PushFailure::Unavailable(e) => {
                        let queued = self.outbox_len().await;
                        tracing::warn!(
                            queued,
                            "backend unavailable, changes kept in the outbox: {e}"
                        );
                        drained.blocked = true;
                        break;
                    }
                    PushFailure::Violation(e) => {
                        tracing::error!(
                            entries = batch.len(),
                            "contract violation by the plugin; the changes stay in the outbox and are tried again later: {e}"
                        );
                        drained.blocked = true;
                        break;
                    }
                    PushFailure::Conflict(key) if batch.iter().any(|s| s.key == key) => {
                        conflicts_seen += 1;
                        if conflicts_seen > 4 * MAX_BATCH {
                            tracing::warn!(
                                "the backend keeps changing under this drain; retrying later"
                            );
                            drained.blocked = true;
                            break;
                        }
                        self.resolve(&key).await?;
                        drained.resolved += 1;
                    }
                    PushFailure::Conflict(_) | PushFailure::Refused(_) if batch.len() > 1 => {
                        singles = batch.len();
                    }
                    PushFailure::Conflict(key) => {
                        self.refuse(
                            &batch[0],
                            &format!("conflict reported on another key {key}"),
                        )?;
                    }
                    PushFailure::Refused(e) => self.refuse(&batch[0], &e)?,
                },
            }
        }
        self.backend_down.store(drained.blocked, Ordering::Relaxed);
        Ok(drained)
    }

    /// The next entries to push: consecutive, one per document so each
    /// document's changes stay in order, each with the precondition of the
    /// version last agreed on. They are marked as sent first, so a push
    /// whose reply is lost is recognised later. Removals of documents the
    /// backend never had are settled here.
    fn next_batch(&self, limit: usize) -> Result<Vec<Sent>, StorehostError> {
        let mut ledger = self.ledger();
        loop {
            let window = ledger.pending(limit + 16)?;
            let mut batch: Vec<Pending> = Vec::new();
            for entry in window {
                if batch.len() == limit || batch.iter().any(|e| e.key == entry.key) {
                    break;
                }
                batch.push(entry);
            }
            let (skip, send): (Vec<Pending>, Vec<Pending>) = batch
                .into_iter()
                .partition(|e| e.op == Op::Remove && ledger.base(&e.key).is_none());
            let sent: Vec<Sent> = send
                .into_iter()
                .map(|entry| {
                    let base = ledger.base(&entry.key).cloned();
                    Sent::new(entry, base)
                })
                .collect();
            ledger.write(|tx| {
                for entry in &skip {
                    tx.remove_pending(entry.seq)?;
                }
                for sent in sent.iter().filter(|s| !s.attempted) {
                    tx.mark_attempted(sent.seq)?;
                }
                Ok(())
            })?;
            if !sent.is_empty() || skip.is_empty() {
                return Ok(sent);
            }
        }
    }

    /// The backend took a batch: its new versions become the bases and the
    /// entries leave the outbox, in one transaction.
    fn record_pushed(
        &self,
        batch: &[Sent],
        entries: Vec<Option<crate::model::Entry>>,
    ) -> Result<(), StorehostError> {
        let mut ledger = self.ledger();
        ledger.write(|tx| {
            for (sent, entry) in batch.iter().zip(entries) {
                let base = sent.hash.as_ref().map(|hash| Base {
                    version: entry.map(|e| e.version).unwrap_or_default(),
                    hash: hash.clone(),
                });
                tx.set_base(&sent.key, base.as_ref())?;
                tx.remove_pending(sent.seq)?;
            }
            tx.set_meta(MetaName::LastSyncMs, Some(&super::now_ms().to_string()))
        })?;
        Ok(())
    }

    /// The backend refused an entry for good: it leaves the outbox (the
    /// workspace file stays as it is).
    fn refuse(&self, sent: &Sent, why: &str) -> Result<(), StorehostError> {
        tracing::error!(key = %sent.key, "the backend refused a change; it is dropped from the outbox, the workspace file is kept: {why}");
        self.ledger().write(|tx| tx.remove_pending(sent.seq))?;
        Ok(())
    }

    /// A push met a precondition failure: read what the backend has and
    /// let the decision function settle it.
    async fn resolve(&self, key: &Key) -> Result<(), StorehostError> {
        let document = read_one(self.remote.as_ref(), key).await?;
        let version = document.as_ref().map(|d| d.entry.version.clone());
        let checked = self.intake(document.into_iter().collect())?;
        let item = match (checked.items.into_iter().next(), version) {
            (Some(item), _) => item,
            (None, None) => (key.clone(), RemoteState::Absent, None),
            // The backend holds something that is not a valid document:
            // our change replaces it (pushed against its version).
            (None, Some(version)) => {
                tracing::warn!(%key, "the backend holds an invalid document; the local version replaces it");
                let base = Base {
                    version,
                    hash: "invalid".into(),
                };
                self.ledger().write(|tx| tx.set_base(key, Some(&base)))?;
                return Ok(());
            }
        };
        let guard = DeletionGuard::never();
        let policy = Policy {
            guard: &guard,
            durability: Durability::Now,
            listed: None,
        };
        let settled = self.settle(vec![item], &policy)?;
        // The push waits on this: no time to look again.
        self.report_or_queue(settled.invalid)?;
        Ok(())
    }

    /// Fetches what changed on the backend and brings it into the
    /// workspace; returns how many documents changed locally.
    pub async fn poll(&self) -> Result<usize, StorehostError> {
        let owner = self.own().await;
        self.take_late_writes_owned();
        // Now and then everything, compared by content: a feed that missed
        // a change, or a server whose versions lie, cannot keep a stale
        // document in the workspace for long.
        let complete_due = {
            let mut last = self
                .last_complete_pull
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= self.options.complete_pull_interval);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        let cursor = match complete_due {
            true => None,
            false => self.ledger().meta(MetaName::Cursor)?,
        };
        let snapshot = self.pull_settled(cursor.as_deref()).await?;
        let cursor = snapshot.cursor.clone();
        let items = self.guard_remote_deletions(self.changed_items(snapshot, complete_due)?)?;
        let guard = DeletionGuard::never();
        let policy = Policy {
            guard: &guard,
            durability: Durability::Now,
            listed: None,
        };
        let settled = self.settle(items, &policy)?;
        self.ledger().write(|tx| {
            if !cursor.is_empty() {
                tx.set_meta(MetaName::Cursor, Some(&cursor))?;
            }
            tx.set_meta(MetaName::LastSyncMs, Some(&super::now_ms().to_string()))
        })?;
        if settled.queued_puts + settled.queued_removes > 0 {
            self.wake.notify_one();
        }
        drop(owner);
        self.look_again_at_invalid(settled.invalid).await?;
        Ok(settled.pulled + settled.deleted_locally)
    }

    /// The documents of a snapshot that differ from their bases (checked;
    /// bad ones are skipped and reported), and the tracked ones a complete
    /// snapshot or the removals no longer have.
    /// Unless `compare_content`, a document whose version is the one last
    /// agreed on is taken as unchanged without being read again (it would
    /// not touch the workspace); the periodic complete pull compares
    /// everything.
    pub(crate) fn changed_items(
        &self,
        snapshot: Snapshot,
        compare_content: bool,
    ) -> Result<Vec<Item>, StorehostError> {
        let queued = self.ledger().pending_paths()?;
        let (documents, unchanged) = match compare_content {
            true => (snapshot.documents, Vec::new()),
            false => self.set_aside_unchanged(snapshot.documents, &queued),
        };
        let checked = self.intake(documents)?;
        // A key sent but refused is neither present nor gone there: the
        // local file is left alone.
        let mut present = checked.sent_keys();
        present.extend(unchanged);
        let ledger = self.ledger();
        let mut items = Vec::new();
        for item in checked.items {
            let (key, state, _) = &item;
            let unchanged = match (ledger.base(key), state) {
                (Some(base), RemoteState::Present { version, hash }) => {
                    &base.version == version && &base.hash == hash
                }
                _ => false,
            };
            if !unchanged || queued.contains(&path_key(key)) {
                items.push(item);
            }
        }
        let mut gone: BTreeSet<Key> = snapshot
            .removed
            .into_iter()
            .filter(|k| k.kind != Kind::Meta && !present.contains(k))
            .collect();
        if snapshot.complete {
            gone.extend(
                ledger
                    .bases()
                    .keys()
                    .filter(|k| !present.contains(*k))
                    .cloned(),
            );
        }
        items.extend(
            gone.into_iter()
                .filter(|k| ledger.base(k).is_some() || queued.contains(&path_key(k)))
                .map(|k| (k, RemoteState::Absent, None)),
        );
        Ok(items)
    }

    /// Splits off the documents at the version last agreed on (with nothing
    /// queued); returns the rest and the keys set aside. An answer with a
    /// key twice is left whole, for the intake to refuse.
    fn set_aside_unchanged(
        &self,
        documents: Vec<crate::model::Document>,
        queued: &BTreeSet<String>,
    ) -> (Vec<crate::model::Document>, Vec<Key>) {
        let keys: BTreeSet<&Key> = documents.iter().map(|d| &d.entry.key).collect();
        if keys.len() != documents.len() {
            return (documents, Vec::new());
        }
        let ledger = self.ledger();
        // A quarantined key goes through the intake, which releases it.
        let quarantined: BTreeSet<String> = match ledger.quarantined() {
            Ok(list) => list.into_iter().map(|q| q.path).collect(),
            Err(_) => return (documents, Vec::new()),
        };
        let (same, rest): (Vec<_>, Vec<_>) = documents.into_iter().partition(|d| {
            let key = &d.entry.key;
            let path = path_key(key);
            ledger
                .base(key)
                .is_some_and(|base| base.version == d.entry.version)
                && !queued.contains(&path)
                && !quarantined.contains(&path)
        });
        (rest, same.into_iter().map(|d| d.entry.key).collect())
    }

    /// Pushes the outbox until it is empty or `bound` passes; returns how
    /// many entries are left.
    pub async fn flush(&self, bound: Duration) -> Result<usize, StorehostError> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let drained = self.drain().await?;
            let left = self.outbox_len().await;
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(left);
            }
            if drained.blocked {
                tokio::time::sleep(
                    Duration::from_millis(200).min(deadline - tokio::time::Instant::now()),
                )
                .await;
            }
        }
    }

    fn expire_trash(&self) -> Result<(), StorehostError> {
        let cutoff =
            super::now_ms().saturating_sub(self.options.trash_retention.as_millis() as u64);
        let files = self.ledger().write(|tx| tx.expire_trash(cutoff))?;
        for file in &files {
            let _ = std::fs::remove_file(self.workspace.trash_dir().join(file));
        }
        if !files.is_empty() {
            tracing::info!(
                expired = files.len(),
                "trash entries past their retention removed"
            );
        }
        Ok(())
    }
}

/// Takes `.storehost/lock` (an advisory lock the kernel drops with the
/// process, `kill -9` included) and writes our pid into it. Held while a
/// host mirrors the workspace: two hosts on one workspace would each take
/// the other's writes for the proxy's.
pub fn lock_workspace(workspace: &Workspace) -> Result<std::fs::File, StorehostError> {
    use std::io::{Seek, Write};
    let path = workspace.state_dir().join("lock");
    let io_error = |source| StorehostError::Io {
        path: path.display().to_string(),
        source,
    };
    let Some(mut file) = crate::fsutil::try_lock_exclusive(&path).map_err(io_error)? else {
        let pid = std::fs::read_to_string(&path).unwrap_or_default();
        return Err(StorehostError::WorkspaceInUse {
            workspace: workspace.root().display().to_string(),
            pid: pid.trim().to_string(),
        });
    };
    file.set_len(0).map_err(io_error)?;
    file.rewind().map_err(io_error)?;
    write!(file, "{}", std::process::id()).map_err(io_error)?;
    Ok(file)
}

/// An outbox entry on its way to the backend.
struct Sent {
    seq: u64,
    key: Key,
    hash: Option<String>,
    attempted: bool,
    change: Change,
}

impl Sent {
    fn new(entry: Pending, base: Option<Base>) -> Sent {
        let precondition = base.map_or(Precondition::Absent, |b| Precondition::Matches(b.version));
        let change = match entry.op {
            Op::Put(content) => Change::Put {
                key: entry.key.clone(),
                content,
                precondition,
            },
            Op::Remove => Change::Remove {
                key: entry.key.clone(),
                precondition,
            },
        };
        Sent {
            seq: entry.seq,
            key: entry.key,
            hash: entry.hash,
            attempted: entry.attempted,
            change,
        }
    }
}

fn batch_message(batch: &[Sent]) -> String {
    match batch {
        [sent] => match sent.change {
            Change::Put { .. } => format!("Update {}", sent.key),
            Change::Remove { .. } => format!("Delete {}", sent.key),
        },
        _ => format!("Sync {} documents", batch.len()),
    }
}

enum PushFailure {
    Unavailable(String),
    /// The plugin answered outside the contract: whether the batch was
    /// applied is unknown, so it stays queued and is tried again later.
    Violation(String),
    Conflict(Key),
    Refused(String),
}

impl PushFailure {
    fn from_plugin(error: PluginError) -> PushFailure {
        match error.backend() {
            Some(BackendError::Conflict(key)) => PushFailure::Conflict(key.clone()),
            _ if matches!(error, PluginError::Contract { .. }) => {
                PushFailure::Violation(error.to_string())
            }
            _ if error.is_transient() => PushFailure::Unavailable(error.to_string()),
            _ => PushFailure::Refused(error.to_string()),
        }
    }
}
