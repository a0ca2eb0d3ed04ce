//! `storehost status`: what a running or stopped host has recorded.

use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use storehost::mirror::ledger::{Ledger, MetaName};
use storehost::mirror::{Workspace, trash};
use storehost::selection::{Environment, select};

#[derive(Args)]
pub struct StatusArgs {
    /// Workspace directory (default: the one the environment selects).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

/// Present in `.storehost/` while `serve` runs.
#[derive(Serialize, Deserialize)]
pub struct RunningMarker {
    pid: u32,
    backend: String,
    /// Set while `serve` waits for a backend that did not answer at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waiting_since_ms: Option<u64>,
    #[serde(skip)]
    path: PathBuf,
}

impl RunningMarker {
    pub fn write(workspace: &Path, backend: &str) -> Option<RunningMarker> {
        Self::write_as(workspace, backend, None)
    }

    /// Says `serve` runs but waits for its backend; `None` where the
    /// workspace does not exist yet.
    pub fn waiting(workspace: &Path, since_ms: u64) -> Option<RunningMarker> {
        if !workspace.join(".storehost").is_dir() {
            return None;
        }
        Self::write_as(workspace, "", Some(since_ms))
    }

    fn write_as(
        workspace: &Path,
        backend: &str,
        waiting_since_ms: Option<u64>,
    ) -> Option<RunningMarker> {
        let path = workspace.join(".storehost").join("serve.json");
        let marker = RunningMarker {
            pid: std::process::id(),
            backend: backend.to_string(),
            waiting_since_ms,
            path,
        };
        let bytes = serde_json::to_vec(&marker).ok()?;
        storehost::fsutil::write_atomic(&marker.path, &bytes).ok()?;
        Some(marker)
    }

    fn read(workspace: &Path) -> Option<RunningMarker> {
        let bytes = std::fs::read(workspace.join(".storehost").join("serve.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Drop for RunningMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn run(args: StatusArgs) -> ExitCode {
    super::print_or_fail(status(args))
}

/// The workspace `--workspace` names, or the one the environment selects.
pub fn workspace_dir(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, String)> {
    let selection = select(&Environment::from_process(), &std::env::current_dir()?)?;
    let workspace = given.unwrap_or(selection.workspace);
    anyhow::ensure!(
        workspace.is_dir(),
        "no workspace at {}",
        workspace.display()
    );
    Ok((workspace, selection.backend.kind().name().to_string()))
}

/// What the ledger says; all empty for a workspace never mirrored.
#[derive(Default)]
struct Recorded {
    backend: Option<String>,
    lineage: Option<String>,
    last_sync_ms: Option<u64>,
    documents: u64,
    outbox: u64,
    conflicts: Vec<String>,
    trash: usize,
    /// Files in the trash directory that no entry lists.
    unlisted_trash: usize,
    remote_deletions_refused: Option<String>,
    quarantined: Vec<storehost::mirror::ledger::Quarantined>,
}

fn recorded(workspace: &Path) -> anyhow::Result<Recorded> {
    let state_dir = workspace.join(".storehost");
    if !Ledger::exists(&state_dir) {
        return Ok(Recorded::default());
    }
    let ledger = Ledger::open(&state_dir)?;
    Ok(Recorded {
        backend: ledger.meta(MetaName::Backend)?,
        lineage: ledger.meta(MetaName::Lineage)?,
        last_sync_ms: ledger
            .meta(MetaName::LastSyncMs)?
            .and_then(|ms| ms.parse().ok()),
        documents: ledger.document_count(),
        outbox: ledger.outbox_len()?,
        conflicts: ledger.conflicts()?,
        trash: ledger.trash()?.len(),
        unlisted_trash: trash::unlisted_in(&Workspace::new(workspace.to_path_buf()), &ledger)?
            .len(),
        remote_deletions_refused: ledger.meta(MetaName::RemoteDeletionsRefused)?,
        quarantined: ledger.quarantined()?,
    })
}

fn status(args: StatusArgs) -> anyhow::Result<String> {
    let (workspace, selected) = workspace_dir(args.workspace)?;
    let state = recorded(&workspace)?;
    let running =
        RunningMarker::read(&workspace).filter(|m| Path::new(&format!("/proc/{}", m.pid)).exists());
    let backend = match (&running, &state.backend) {
        (Some(marker), _) if !marker.backend.is_empty() => marker.backend.clone(),
        (_, Some(backend)) => backend.clone(),
        (_, None) => selected,
    };
    let mut text = String::new();
    text.push_str(&format!("backend: {backend}\n"));
    text.push_str(&format!("workspace: {}\n", workspace.display()));
    text.push_str(&format!(
        "running: {}\n",
        running.map_or("no".to_string(), |m| match m.waiting_since_ms {
            Some(since) => format!(
                "waiting for the backend to answer (pid {}) since {}",
                m.pid,
                format_ms(since)
            ),
            None => format!("yes (pid {})", m.pid),
        })
    ));
    text.push_str(&format!(
        "lineage: {}\n",
        state
            .lineage
            .as_deref()
            .unwrap_or("none (direct mode or never synced)")
    ));
    text.push_str(&format!(
        "last sync: {}\n",
        state.last_sync_ms.map_or("never".to_string(), format_ms)
    ));
    text.push_str(&format!("documents in step: {}\n", state.documents));
    text.push_str(&format!("outbox: {}\n", state.outbox));
    text.push_str(&format!("conflicts: {}\n", state.conflicts.len()));
    for conflict in &state.conflicts {
        text.push_str(&format!("  {conflict}\n"));
    }
    let unlisted = match state.unlisted_trash {
        0 => String::new(),
        1 => ", and 1 file with no entry".to_string(),
        n => format!(", and {n} files with no entry"),
    };
    text.push_str(&format!(
        "trash: {}{unlisted} (storehost restore --list)\n",
        state.trash
    ));
    text.push_str(&format!(
        "quarantined backend documents: {}\n",
        state.quarantined.len()
    ));
    for q in &state.quarantined {
        text.push_str(&format!(
            "  {:?} (version {:?}, {}): {}\n",
            q.path,
            q.version,
            format_ms(q.at_ms),
            q.problem
        ));
    }
    if let Some(refused) = &state.remote_deletions_refused {
        let mut parts = refused.split(' ');
        let count = parts.next().unwrap_or("?");
        let at = parts.next().and_then(|ms| ms.parse().ok()).map(format_ms);
        text.push_str(&format!(
            "remote deletions refused: {count} documents at once ({}); the workspace kept them and wrote them back \
             (storehost accept-remote-deletions if the backend was emptied on purpose)\n",
            at.unwrap_or_default()
        ));
    }
    Ok(text)
}

pub fn format_ms(ms: u64) -> String {
    let now = storehost::mirror::now_ms();
    format!("{ms} (unix ms, {}s ago)", now.saturating_sub(ms) / 1000)
}
