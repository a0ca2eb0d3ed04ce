//! The mirror engine: write-through via the durable outbox, remote changes
//! in, three-way decisions and the conflict policy (remote wins; the local
//! copy is kept beside it and logged).

use super::outbox::{Op, Outbox, Pending};
use super::state::{SyncState, content_hash, now_ms, path_key};
use super::workspace::{Workspace, same_document};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::{Change, Document, Entry, Key, Kind, Precondition, Snapshot};
use crate::runtime::{BackendError, Plugin, PluginError};
use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

/// How a write ended for the caller: taken by the backend, or durably
/// queued for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Pushed(Option<Entry>),
    Queued,
}

/// What one drain of the outbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    pub applied: usize,
    /// The backend was unavailable; entries remain.
    pub blocked: bool,
    /// Sequence numbers still queued when the drain stopped.
    pub left: Vec<u64>,
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
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            poll_interval: Duration::from_secs(5),
            max_delete_share: 0.25,
            shutdown_flush: Duration::from_secs(10),
            migrate_from: None,
        }
    }
}

pub struct Mirror {
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) workspace: Workspace,
    pub(crate) options: MirrorOptions,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) wake: Notify,
    /// Set while the backend is unavailable: writes then only queue, and
    /// the replay loop retries with backoff.
    backend_down: AtomicBool,
}

pub(crate) struct Inner {
    pub state: SyncState,
    pub outbox: Outbox,
}

impl Inner {
    /// Pending outbox entries, oldest first.
    pub fn queued(&self) -> Result<Vec<Pending>, StorehostError> {
        self.outbox.pending().map_err(io_err(self.outbox.dir()))
    }
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StorehostError + '_ {
    move |source| StorehostError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Mirror {
    pub fn open(
        plugin: Arc<Plugin>,
        workspace: Workspace,
        options: MirrorOptions,
    ) -> Result<Mirror, StorehostError> {
        workspace.create()?;
        let state_dir = workspace.state_dir();
        let state = SyncState::load(&state_dir)?;
        let outbox = Outbox::open(&state_dir).map_err(io_err(&state_dir))?;
        Ok(Mirror {
            plugin,
            workspace,
            options,
            inner: Mutex::new(Inner { state, outbox }),
            wake: Notify::new(),
            backend_down: AtomicBool::new(false),
        })
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    pub fn options(&self) -> &MirrorOptions {
        &self.options
    }

    pub async fn outbox_len(&self) -> usize {
        self.inner.lock().await.outbox.len()
    }

    /// Queues a change durably, then tries to push it at once.
    pub async fn record(&self, key: &Key, op: Op) -> Result<Saved, StorehostError> {
        let seq = {
            let mut inner = self.inner.lock().await;
            let dir = self.workspace.state_dir();
            inner.outbox.push(key, op).map_err(io_err(&dir))?
        };
        if self.backend_down.load(Ordering::Relaxed) {
            self.wake.notify_one();
            return Ok(Saved::Queued);
        }
        let drained = self.drain().await?;
        if drained.left.contains(&seq) {
            if drained.blocked {
                self.wake.notify_one();
            }
            return Ok(Saved::Queued);
        }
        let entry = self.remote_entry_of(key).await;
        Ok(Saved::Pushed(entry))
    }

    async fn remote_entry_of(&self, key: &Key) -> Option<Entry> {
        let inner = self.inner.lock().await;
        inner.state.seen(key).map(|seen| Entry {
            key: key.clone(),
            version: seen.remote.clone(),
            size: 0,
            modified_ms: None,
        })
    }

    /// Pushes queued changes in order, in batches, until the outbox is
    /// empty or the backend is unavailable.
    pub async fn drain(&self) -> Result<Drained, StorehostError> {
        let mut inner = self.inner.lock().await;
        let mut drained = Drained::default();
        let mut pending: VecDeque<Pending> = inner.queued()?.into();
        // After a batch is refused, its entries go one by one to find the
        // culprit.
        let mut singles_left = 0usize;
        // Entries the backend took; removed only after the state that
        // records them is saved, so a crash in between replays them
        // harmlessly instead of leaving the state behind the remote.
        let mut done = Vec::new();
        // A resolved conflict changes the state without applying anything.
        let mut resolved = false;
        while !pending.is_empty() {
            let limit = if singles_left > 0 { 1 } else { MAX_BATCH };
            let batch = take_batch(&mut pending, limit);
            singles_left = singles_left.saturating_sub(batch.len());
            match self.push_batch(&mut inner, &batch, &mut done).await {
                Ok(applied) => drained.applied += applied,
                Err(PushFailure::Unavailable(e)) => {
                    tracing::warn!(
                        "backend unavailable, {} change(s) kept in the outbox: {e}",
                        inner.outbox.len()
                    );
                    drained.blocked = true;
                    requeue_front(&mut pending, batch.into_iter());
                    break;
                }
                Err(PushFailure::Conflict(key)) => {
                    self.resolve_conflict(&mut inner, &key).await?;
                    resolved = true;
                    let path = path_key(&key);
                    for entry in batch
                        .iter()
                        .chain(pending.iter())
                        .filter(|e| e.path == path)
                    {
                        inner
                            .outbox
                            .remove(entry.seq)
                            .map_err(io_err(&self.workspace.state_dir()))?;
                    }
                    pending.retain(|e| e.path != path);
                    requeue_front(&mut pending, batch.into_iter().filter(|e| e.path != path));
                }
                Err(PushFailure::Refused(e)) if batch.len() == 1 => {
                    tracing::error!(path = %batch[0].path, "the backend refused a change; it is dropped from the outbox: {e}");
                    inner
                        .outbox
                        .remove(batch[0].seq)
                        .map_err(io_err(&self.workspace.state_dir()))?;
                }
                Err(PushFailure::Refused(_)) => {
                    singles_left = batch.len();
                    requeue_front(&mut pending, batch.into_iter());
                }
            }
        }
        drained.left = pending.iter().map(|entry| entry.seq).collect();
        self.backend_down.store(drained.blocked, Ordering::Relaxed);
        if drained.applied > 0 || resolved {
            inner.state.last_sync_ms = Some(now_ms());
            inner.state.save(&self.workspace.state_dir())?;
        }
        for seq in done {
            inner
                .outbox
                .remove(seq)
                .map_err(io_err(&self.workspace.state_dir()))?;
        }
        Ok(drained)
    }

    /// Applies one batch (distinct keys) in one call and records the
    /// outcome; returns how many entries it settled.
    async fn push_batch(
        &self,
        inner: &mut Inner,
        batch: &[Pending],
        done: &mut Vec<u64>,
    ) -> Result<usize, PushFailure> {
        let mut changes = Vec::new();
        let mut sent = Vec::new();
        for entry in batch {
            let Some(key) = entry.key() else {
                return Err(PushFailure::Refused(format!(
                    "unknown document path {}",
                    entry.path
                )));
            };
            let seen = inner.state.seen(&key).map(|seen| seen.remote.clone());
            let precondition = seen
                .clone()
                .map_or(Precondition::Absent, Precondition::Matches);
            match &entry.op {
                Op::Put { content } => changes.push(Change::Put {
                    key: key.clone(),
                    content: content.clone().into_bytes(),
                    precondition,
                }),
                // Never reached the backend: nothing to delete there.
                Op::Remove if seen.is_none() => {}
                Op::Remove => changes.push(Change::Remove {
                    key: key.clone(),
                    precondition,
                }),
            }
            sent.push((key, entry));
        }
        if !changes.is_empty() {
            let message = batch_message(&sent);
            let entries = self
                .plugin
                .apply(changes, &message)
                .await
                .map_err(PushFailure::from_plugin)?;
            let mut entries = entries.into_iter();
            for (key, entry) in &sent {
                match &entry.op {
                    Op::Put { content } => {
                        let version = entries
                            .next()
                            .flatten()
                            .map(|e| e.version)
                            .unwrap_or_default();
                        inner
                            .state
                            .mark(key, content_hash(content.as_bytes()), version);
                    }
                    Op::Remove if inner.state.seen(key).is_none() => {}
                    Op::Remove => {
                        entries.next();
                        inner.state.forget(key);
                    }
                }
            }
        }
        done.extend(sent.iter().map(|(_, entry)| entry.seq));
        Ok(sent.len())
    }

    /// Remote wins: its content goes to the workspace and the local copy is
    /// kept beside it as a conflict file.
    async fn resolve_conflict(&self, inner: &mut Inner, key: &Key) -> Result<(), StorehostError> {
        let remote = self.plugin.read_one(key).await?;
        let local = self.workspace.read(key)?;
        if let Some(local) = &local
            && remote
                .as_ref()
                .is_none_or(|r| !same_document(key, &r.content, local))
        {
            let copy = self.workspace.keep_conflict_copy(key, local)?;
            tracing::warn!(%key, kept = %copy, "conflict: the backend changed too; remote wins, local copy kept");
            inner.state.conflicts.push(copy);
        }
        self.adopt_remote(inner, key, remote.as_ref())
    }

    /// Writes (or deletes) the workspace copy to match the backend and
    /// records both sides as in step.
    pub(crate) fn adopt_remote(
        &self,
        inner: &mut Inner,
        key: &Key,
        remote: Option<&Document>,
    ) -> Result<(), StorehostError> {
        self.adopt_remote_with(inner, key, remote, Durability::Now)
    }

    /// [`Mirror::adopt_remote`]; with `Batched`, durable after
    /// [`Workspace::sync`].
    pub(crate) fn adopt_remote_with(
        &self,
        inner: &mut Inner,
        key: &Key,
        remote: Option<&Document>,
        durability: Durability,
    ) -> Result<(), StorehostError> {
        match remote {
            Some(document) => {
                self.workspace
                    .write_with(key, &document.content, durability)?;
                inner.state.mark(
                    key,
                    content_hash(&document.content),
                    document.entry.version.clone(),
                );
            }
            None => {
                self.workspace.remove(key)?;
                inner.state.forget(key);
            }
        }
        Ok(())
    }

    /// Fetches what changed on the backend and brings it into the
    /// workspace.
    pub async fn poll(&self) -> Result<usize, StorehostError> {
        let cursor = self.inner.lock().await.state.cursor.clone();
        let snapshot = self.plugin.pull(cursor.as_deref()).await?;
        let mut inner = self.inner.lock().await;
        let changed = self.apply_snapshot(&mut inner, snapshot)?;
        inner.state.last_sync_ms = Some(now_ms());
        inner.state.save(&self.workspace.state_dir())?;
        Ok(changed)
    }

    fn apply_snapshot(
        &self,
        inner: &mut Inner,
        snapshot: Snapshot,
    ) -> Result<usize, StorehostError> {
        let queued: BTreeSet<String> = inner.queued()?.into_iter().map(|p| p.path).collect();
        let mut changed = 0;
        let mut present = BTreeSet::new();
        for document in snapshot
            .documents
            .iter()
            .filter(|d| d.entry.key.kind != Kind::Meta)
        {
            let key = &document.entry.key;
            present.insert(path_key(key));
            if inner
                .state
                .seen(key)
                .is_some_and(|seen| seen.remote == document.entry.version)
            {
                continue;
            }
            // A local change still queued for this key is pushed with a
            // precondition and will meet the conflict policy there.
            if queued.contains(&path_key(key)) {
                continue;
            }
            changed += usize::from(self.take_remote(inner, key, Some(document))?);
        }
        let mut gone: Vec<Key> = snapshot
            .removed
            .into_iter()
            .filter(|k| k.kind != Kind::Meta)
            .collect();
        if snapshot.complete {
            gone.extend(
                inner
                    .state
                    .tracked_keys()
                    .into_iter()
                    .filter(|k| !present.contains(&path_key(k))),
            );
        }
        for key in gone {
            if inner.state.seen(&key).is_some() && !queued.contains(&path_key(&key)) {
                changed += usize::from(self.take_remote(inner, &key, None)?);
            }
        }
        if !snapshot.cursor.is_empty() {
            inner.state.cursor = Some(snapshot.cursor);
        }
        Ok(changed)
    }

    /// One remote change against the workspace: pulled when the local copy
    /// is unchanged since the last sync, else the conflict policy.
    fn take_remote(
        &self,
        inner: &mut Inner,
        key: &Key,
        remote: Option<&Document>,
    ) -> Result<bool, StorehostError> {
        let local = self.workspace.read(key)?;
        let local_hash = local.as_deref().map(content_hash);
        let seen_local = inner.state.seen(key).map(|s| s.local.clone());
        let unchanged_locally = local_hash == seen_local;
        let same_content = match (local.as_deref(), remote) {
            (Some(local), Some(remote)) => same_document(key, local, &remote.content),
            (None, None) => true,
            _ => false,
        };
        if !unchanged_locally
            && !same_content
            && let Some(local) = &local
        {
            let copy = self.workspace.keep_conflict_copy(key, local)?;
            tracing::warn!(%key, kept = %copy, "both sides changed; remote wins, local copy kept");
            inner.state.conflicts.push(copy);
        }
        self.adopt_remote(inner, key, remote)?;
        Ok(!same_content)
    }

    /// Pushes the outbox until it is empty or `bound` passes.
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
}

/// Most changes one `apply` carries.
const MAX_BATCH: usize = 256;

/// Consecutive entries with distinct keys, so each key's changes stay in
/// order across batches.
fn take_batch(pending: &mut VecDeque<Pending>, limit: usize) -> Vec<Pending> {
    let mut batch: Vec<Pending> = Vec::new();
    while batch.len() < limit {
        let Some(next) = pending.front() else { break };
        if batch.iter().any(|e| e.path == next.path) {
            break;
        }
        batch.extend(pending.pop_front());
    }
    batch
}

fn requeue_front(
    pending: &mut VecDeque<Pending>,
    entries: impl DoubleEndedIterator<Item = Pending>,
) {
    for entry in entries.rev() {
        pending.push_front(entry);
    }
}

fn batch_message(sent: &[(Key, &Pending)]) -> String {
    match sent {
        [(key, entry)] => match entry.op {
            Op::Put { .. } => format!("Update {}", path_key(key)),
            Op::Remove => format!("Delete {}", path_key(key)),
        },
        _ => format!("Sync {} documents", sent.len()),
    }
}

enum PushFailure {
    Unavailable(String),
    Conflict(Key),
    Refused(String),
}

impl PushFailure {
    fn from_plugin(error: PluginError) -> PushFailure {
        match error.backend() {
            Some(BackendError::Conflict(key)) => PushFailure::Conflict(key.clone()),
            _ if error.is_transient() => PushFailure::Unavailable(error.to_string()),
            _ => PushFailure::Refused(error.to_string()),
        }
    }
}
