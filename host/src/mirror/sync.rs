//! The background work of a running host: replaying the outbox with
//! backoff, following remote changes, and watching the workspace.

use super::engine::Mirror;
use super::scan::queue_local_changes;
use backon::BackoffBuilder;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use storehost_sdk::layout::TEMP_PREFIX;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long the watcher waits for a burst of file events to settle.
const DEBOUNCE: Duration = Duration::from_millis(200);

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
    let mut tasks = vec![
        tokio::spawn(replay_loop(mirror.clone(), stopped.clone())),
        tokio::spawn(feed_loop(mirror.clone(), watch_plugin, stopped.clone())),
    ];
    let (events, receiver) = mpsc::unbounded_channel();
    let watcher = match watch_workspace(mirror.workspace().root(), events) {
        Ok(watcher) => {
            tasks.push(tokio::spawn(watcher_loop(
                mirror.clone(),
                receiver,
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

async fn replay_loop(mirror: Arc<Mirror>, mut stopped: watch::Receiver<bool>) {
    let new_backoff = || {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut backoff = new_backoff();
    let mut delay: Option<Duration> = None;
    loop {
        let wait = async {
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => mirror.wake.notified().await,
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = stopped.changed() => return,
        }
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
    }
}

async fn watcher_loop(
    mirror: Arc<Mirror>,
    mut events: mpsc::UnboundedReceiver<PathBuf>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            _ = stopped.changed() => return,
        }
        tokio::time::sleep(DEBOUNCE).await;
        while events.try_recv().is_ok() {}
        match queue_local_changes(&mirror).await {
            Ok(0) => {}
            Ok(_) => mirror.wake.notify_one(),
            Err(e) => tracing::error!("scanning the workspace failed: {e}"),
        }
    }
}

fn watch_workspace(
    root: &Path,
    events: mpsc::UnboundedSender<PathBuf>,
) -> notify::Result<notify::RecommendedWatcher> {
    let state_dir = root.join(".storehost");
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else { return };
        for path in event.paths {
            let temp = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX));
            if !temp && !path.starts_with(&state_dir) {
                let _ = events.send(path);
            }
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}
