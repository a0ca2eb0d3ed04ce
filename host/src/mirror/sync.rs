//! The background work of a running host: replaying the outbox with
//! backoff, following remote changes, and watching the workspace.

use super::engine::{Mirror, Noted, OnInvalid};
use crate::model::Key;
use backon::BackoffBuilder;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use storehost_sdk::layout::TEMP_PREFIX;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

/// How long deletions wait for the rest of their burst, so the deletion
/// guard sees a mass disappearance whole.
const DELETION_SETTLE: Duration = Duration::from_millis(200);
/// How long a watched file that does not parse is given to be completed.
pub(super) const PARTIAL_WRITE_SETTLE: Duration = Duration::from_millis(300);
/// A full scan of the workspace every this many polls, for events the
/// watcher may have missed.
const POLLS_PER_FULL_SCAN: u32 = 12;

/// The running background tasks. Dropping it without `shutdown` aborts
/// them; queued changes stay in the outbox for the next start.
pub struct SyncHandle {
    mirror: Arc<Mirror>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl SyncHandle {
    /// Stops the tasks and pushes what is queued, within the configured
    /// bound. Returns how many changes are still queued (kept on disk).
    pub async fn shutdown(self) -> usize {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
        let bound = self.mirror.options().shutdown_flush;
        match self.mirror.flush(bound).await {
            Ok(0) => 0,
            Ok(left) => {
                tracing::warn!(
                    left,
                    "outbox not empty at shutdown; the changes are kept and replayed on the next start"
                );
                left
            }
            Err(e) => {
                tracing::error!("flushing the outbox at shutdown failed: {e}");
                self.mirror.outbox_len().await
            }
        }
    }
}

/// Starts replay, the change feed and the workspace watcher.
pub fn start(mirror: Arc<Mirror>, watch_plugin: Option<Arc<crate::runtime::Plugin>>) -> SyncHandle {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(feed_loop(
        mirror.clone(),
        watch_plugin,
        stopped.clone(),
    ))];
    let (events, receiver) = mpsc::unbounded_channel();
    let watcher = match watch_workspace(mirror.workspace(), events) {
        Ok(watcher) => {
            let (deletions, deleted) = mpsc::unbounded_channel();
            let trash_changed = Arc::new(Notify::new());
            tasks.push(tokio::spawn(watcher_loop(
                mirror.clone(),
                receiver,
                deletions,
                trash_changed.clone(),
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(late_write_loop(
                mirror.clone(),
                trash_changed,
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(deletion_loop(
                mirror.clone(),
                deleted,
                stopped,
            )));
            Some(watcher)
        }
        Err(e) => {
            tracing::error!(
                "cannot watch the workspace; files changed by other processes are picked up at the next start: {e}"
            );
            None
        }
    };
    SyncHandle {
        mirror,
        stop,
        tasks,
        _watcher: watcher,
    }
}

/// Starts the task that pushes the outbox whenever something is queued,
/// and retries with backoff while the backend is down.
pub fn start_replay(mirror: Arc<Mirror>) -> JoinHandle<()> {
    tokio::spawn(replay_loop(mirror))
}

/// Waits between attempts at something the backend must answer: from
/// `first`, doubling to `longest`, jittered so instances that failed
/// together do not come back together; never giving up.
pub fn backoff(first: Duration, longest: Duration) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(longest)
        .with_jitter()
        .without_max_times()
        .build()
}

async fn replay_loop(mirror: Arc<Mirror>) {
    let new_backoff = || backoff(Duration::from_millis(100), Duration::from_secs(30));
    let mut backoff = new_backoff();
    let mut delay: Option<Duration> = None;
    loop {
        let wait = async {
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => mirror.wake.notified().await,
            }
        };
        wait.await;
        match mirror.drain().await {
            Ok(drained) if drained.blocked => delay = backoff.next(),
            Ok(_) => {
                backoff = new_backoff();
                delay = None;
            }
            Err(e) => {
                tracing::error!("replaying the outbox failed: {e}");
                delay = backoff.next();
            }
        }
    }
}

async fn feed_loop(
    mirror: Arc<Mirror>,
    watch_plugin: Option<Arc<crate::runtime::Plugin>>,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = mirror.options().poll_interval;
    let mut polls = 0u32;
    loop {
        let wait = async {
            match &watch_plugin {
                Some(plugin) => match plugin.wait_for_change(interval).await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("waiting for remote changes failed: {e}");
                        tokio::time::sleep(interval).await;
                    }
                },
                None => tokio::time::sleep(interval).await,
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = stopped.changed() => return,
        }
        match mirror.poll().await {
            Ok(0) => {}
            Ok(changed) => tracing::info!(changed, "remote changes applied to the workspace"),
            Err(e) => tracing::warn!("following remote changes failed, will retry: {e}"),
        }
        polls += 1;
        if polls.is_multiple_of(POLLS_PER_FULL_SCAN)
            && let Err(e) = mirror.scan(None).await
        {
            tracing::error!("scanning the workspace failed: {e}");
        }
    }
}

/// Takes every file the proxy writes into the ledger at once (that is the
/// acknowledgement); deletions go to [`deletion_loop`], changes in the
/// trash to [`late_write_loop`].
async fn watcher_loop(
    mirror: Arc<Mirror>,
    mut events: mpsc::UnboundedReceiver<WorkspaceEvent>,
    deletions: mpsc::UnboundedSender<Option<Key>>,
    trash_changed: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            event = events.recv() => match event { Some(event) => event, None => return },
            _ = stopped.changed() => return,
        };
        let key = match event {
            WorkspaceEvent::Path(path) => match document_key(mirror.workspace(), &path) {
                Some(key) => key,
                None => continue,
            },
            WorkspaceEvent::Rescan => {
                let _ = deletions.send(None);
                continue;
            }
            WorkspaceEvent::Trash => {
                trash_changed.notify_one();
                continue;
            }
        };
        match mirror.note_local_change(&key, OnInvalid::Defer) {
            Ok(Noted::Deferred) => look_again_later(mirror.clone(), key.clone()),
            Ok(_) => {}
            Err(e) => tracing::error!(%key, "taking a workspace change failed: {e}"),
        }
        if !mirror.workspace().path_of(&key).is_ok_and(|p| p.exists()) {
            let _ = deletions.send(Some(key));
        }
    }
}

/// A watched file that does not parse may be a write still under way: it
/// is looked at again after a moment, and reported only if it still does
/// not parse (a complete write in between raises its own event).
fn look_again_later(mirror: Arc<Mirror>, key: Key) {
    tokio::spawn(async move {
        tokio::time::sleep(PARTIAL_WRITE_SETTLE).await;
        if let Err(e) = mirror.note_local_write(&key) {
            tracing::error!(%key, "taking a workspace change failed: {e}");
        }
    });
}

/// Looks for late writes of the proxy (see [`super::late_writes`]) when
/// the trash changed, once a burst of changes has passed.
async fn late_write_loop(
    mirror: Arc<Mirror>,
    trash_changed: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = trash_changed.notified() => {}
            _ = stopped.changed() => return,
        }
        tokio::time::sleep(PARTIAL_WRITE_SETTLE).await;
        mirror.take_late_writes().await;
    }
}

/// Collects a burst of deletions and hands it to the sync owner as one
/// scan, so the deletion guard judges the burst whole. `None` asks for a
/// full scan.
async fn deletion_loop(
    mirror: Arc<Mirror>,
    mut deleted: mpsc::UnboundedReceiver<Option<Key>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            first = deleted.recv() => match first { Some(first) => first, None => return },
            _ = stopped.changed() => return,
        };
        tokio::time::sleep(DELETION_SETTLE).await;
        let mut keys: Option<BTreeSet<Key>> = first.map(|k| BTreeSet::from([k]));
        while let Ok(more) = deleted.try_recv() {
            match (&mut keys, more) {
                (Some(keys), Some(key)) => {
                    keys.insert(key);
                }
                (_, _) => keys = None,
            }
        }
        match mirror.scan(keys).await {
            Ok(0) => {}
            Ok(_) => mirror.wake.notify_one(),
            Err(e) => tracing::error!("scanning the workspace failed: {e}"),
        }
    }
}

/// The document a workspace path is, if any.
fn document_key(workspace: &crate::mirror::Workspace, path: &Path) -> Option<Key> {
    if path == workspace.config_path() {
        return Some(Key::config());
    }
    let id = workspace.auth_id_of(path).ok()?;
    super::scan::document_key_of(id)
}

enum WorkspaceEvent {
    Path(PathBuf),
    /// Events were missed, or a directory appeared: look at everything.
    Rescan,
    /// A file in the trash changed.
    Trash,
}

fn watch_workspace(
    workspace: &crate::mirror::Workspace,
    events: mpsc::UnboundedSender<WorkspaceEvent>,
) -> notify::Result<notify::RecommendedWatcher> {
    let state_dir = workspace.state_dir();
    let trash_dir = workspace.trash_dir();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else {
            let _ = events.send(WorkspaceEvent::Rescan);
            return;
        };
        // Files written into a new directory before its watch was added
        // raise no event of their own.
        let new_dir = matches!(
            event.kind,
            notify::EventKind::Create(notify::event::CreateKind::Folder)
        );
        if event.need_rescan() || new_dir {
            let _ = events.send(WorkspaceEvent::Rescan);
        }
        if !changes_content(&event.kind) {
            return;
        }
        for path in event.paths {
            let temp = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX));
            if path.starts_with(&trash_dir) {
                let _ = events.send(WorkspaceEvent::Trash);
            } else if !temp && !path.starts_with(&state_dir) {
                let _ = events.send(WorkspaceEvent::Path(path));
            }
        }
    })?;
    watcher.watch(workspace.root(), RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Whether an event can mean a file's content or existence changed. Opens,
/// reads and closes without writing (the host's own reads among them) and
/// mode changes do not, and reacting to them would make the host re-read
/// files in a loop.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}
