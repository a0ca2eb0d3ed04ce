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
