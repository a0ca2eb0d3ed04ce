//! Errors of the runtime and of plugin calls.

use crate::model::Key;
use std::time::Duration;

/// Loading or compiling a component failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    #[error("plugin `{plugin}` is not a valid component: {message}")]
    Compile { plugin: String, message: String },
    #[error("plugin `{plugin}` cannot be linked against this host: {message}")]
    Link { plugin: String, message: String },
    #[error("component cache at {path}: {message}")]
    Cache { path: String, message: String },
}

/// An error a backend returned through the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("{0} not found")]
    NotFound(Key),
    #[error("conflict on {0}: it changed since it was last seen")]
    Conflict(Key),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("internal backend error: {0}")]
    Internal(String),
}

/// A call into a plugin failed. Only `Backend` came from the plugin's own
/// logic; the others are the host stopping a misbehaving plugin, which is
/// then re-instantiated for the next call.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{plugin}`: `{call}` failed: {error}")]
    Backend {
        plugin: String,
        call: &'static str,
        error: BackendError,
    },
    #[error("plugin `{plugin}`: `{call}` ran past its deadline of {deadline:?} and was stopped")]
    Deadline {
        plugin: String,
        call: &'static str,
        deadline: Duration,
    },
    #[error(
        "plugin `{plugin}`: `{call}` exceeded the memory limit of {limit_bytes} bytes and was stopped"
    )]
    MemoryLimit {
        plugin: String,
        call: &'static str,
        limit_bytes: usize,
    },
    #[error("plugin `{plugin}`: `{call}` trapped: {message}")]
    Trap {
        plugin: String,
        call: &'static str,
        message: String,
    },
    #[error("plugin `{plugin}` could not be instantiated: {message}")]
    Instantiate { plugin: String, message: String },
    #[error("plugin `{plugin}` broke the contract in `{call}`: {message}")]
    Contract {
        plugin: String,
        call: &'static str,
        message: String,
    },
}

impl PluginError {
    /// The backend's own error, if that is what this is.
    pub fn backend(&self) -> Option<&BackendError> {
        match self {
            PluginError::Backend { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Worth retrying later: the backend is unavailable, or the plugin was
    /// stopped and will be re-instantiated.
    pub fn is_transient(&self) -> bool {
        match self {
            PluginError::Backend { error, .. } => matches!(error, BackendError::Unavailable(_)),
            PluginError::Deadline { .. } | PluginError::Trap { .. } => true,
            _ => false,
        }
    }
}
