//! `storehost status`: what a running or stopped host has recorded.

use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use storehost::mirror::outbox::Outbox;
use storehost::mirror::state::SyncState;
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
    #[serde(skip)]
    path: PathBuf,
}

impl RunningMarker {
    pub fn write(workspace: &Path, backend: &str) -> Option<RunningMarker> {
        let path = workspace.join(".storehost").join("serve.json");
        let marker = RunningMarker {
            pid: std::process::id(),
            backend: backend.to_string(),
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
    match status(args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn status(args: StatusArgs) -> anyhow::Result<String> {
    let selection = select(&Environment::from_process(), &std::env::current_dir()?)?;
    let workspace = args.workspace.unwrap_or(selection.workspace);
    anyhow::ensure!(
        workspace.is_dir(),
        "no workspace at {}",
        workspace.display()
    );
    let state_dir = workspace.join(".storehost");
    let state = SyncState::load(&state_dir)?;
    let running =
        RunningMarker::read(&workspace).filter(|m| Path::new(&format!("/proc/{}", m.pid)).exists());
    let outbox = if state_dir.join("outbox").is_dir() {
        Outbox::open(&state_dir)?.len()
    } else {
        0
    };
    let backend = match (&running, state.backend.is_empty()) {
        (Some(marker), _) => marker.backend.clone(),
        (None, false) => state.backend.clone(),
        (None, true) => selection.backend.kind().name().to_string(),
    };
    let mut text = String::new();
    text.push_str(&format!("backend: {backend}\n"));
    text.push_str(&format!("workspace: {}\n", workspace.display()));
    text.push_str(&format!(
        "running: {}\n",
        running.map_or("no".to_string(), |m| format!("yes (pid {})", m.pid))
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
    text.push_str(&format!("documents in step: {}\n", state.documents.len()));
    text.push_str(&format!("outbox: {outbox}\n"));
    text.push_str(&format!("conflicts: {}\n", state.conflicts.len()));
    for conflict in &state.conflicts {
        text.push_str(&format!("  {conflict}\n"));
    }
    Ok(text)
}

fn format_ms(ms: u64) -> String {
    let now = storehost::mirror::state::now_ms();
    format!("{ms} (unix ms, {}s ago)", now.saturating_sub(ms) / 1000)
}
