//! Errors of the embedding API.

use crate::mirror::WorkspaceError;
use crate::runtime::{PluginError, RuntimeError};
use crate::selection::{BackendKind, SelectionError};

#[derive(Debug, thiserror::Error)]
pub enum StorehostError {
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(
        "the {0} backend plugin is not built into this version of storehost; use the local backend or pass a plugin with --plugin"
    )]
    PluginUnavailable(BackendKind),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Ledger(#[from] crate::mirror::ledger::LedgerError),
    #[error("the workspace {workspace} is in use by another storehost (pid {pid}); stop it first")]
    WorkspaceInUse { workspace: String, pid: String },
    #[error("no trash entry {0}; `storehost restore --list` shows them")]
    NoSuchTrashEntry(u64),
    #[error(
        "workspace {workspace} was synced with another remote (lineage {known}); this remote has lineage {remote}. Point storehost at the right remote, or move the workspace away to start fresh from this one"
    )]
    LineageMismatch {
        workspace: String,
        known: String,
        remote: String,
    },
    #[error("cannot read the example config {path}: {source}")]
    ExampleConfig {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl StorehostError {
    /// The backend did not answer (or not in time): worth waiting for,
    /// unlike a refusal, a misconfiguration or a plugin's fault.
    pub fn is_backend_unavailable(&self) -> bool {
        match self {
            StorehostError::Plugin(error) => matches!(
                error,
                PluginError::Deadline { .. }
                    | PluginError::Backend {
                        error: crate::runtime::BackendError::Unavailable(_),
                        ..
                    }
            ),
            _ => false,
        }
    }
}
