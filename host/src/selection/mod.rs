//! Selection: which backend the environment asks for (docs/design.md §5).
//!
//! Variable names, lowercase aliases, trimming and priority are a
//! compatibility contract with existing deployments. Everything is checked
//! before anything is created; a missing or malformed required variable is
//! one error naming it.

mod env;
mod validate;

pub use env::Environment;

use crate::capabilities::secrets::SecretValue;
use std::fmt;
use std::path::{Path, PathBuf};

/// The backends storehost knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Object,
    Git,
    Local,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Object => "object",
            BackendKind::Git => "git",
            BackendKind::Local => "local",
        }
    }

    /// The variable whose presence selects this backend.
    pub fn trigger(self) -> &'static str {
        match self {
            BackendKind::Postgres => "PGSTORE_DSN",
            BackendKind::Object => "OBJECTSTORE_ENDPOINT",
            BackendKind::Git => "GITSTORE_GIT_URL",
            BackendKind::Local => "LOCALSTORE_PATH",
        }
    }

    fn default_dir(self) -> &'static str {
        match self {
            BackendKind::Postgres => "pgstore",
            BackendKind::Object => "objectstore",
            BackendKind::Git => "gitstore",
            BackendKind::Local => "localstore",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone)]
pub struct PostgresSettings {
    pub dsn: SecretValue,
    pub schema: String,
}

/// Whether the object endpoint uses TLS follows from its scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEndpoint {
    pub tls: bool,
    /// `host[:port]`, no scheme, no trailing slash.
    pub authority: String,
}

impl ObjectEndpoint {
    /// As `OBJECTSTORE_ENDPOINT` is read: the scheme decides TLS.
    pub fn parse(value: &str) -> Result<ObjectEndpoint, SelectionError> {
        validate::parse_endpoint(value)
    }

    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }
}

#[derive(Debug, Clone)]
pub struct ObjectSettings {
    pub endpoint: ObjectEndpoint,
    pub bucket: String,
    pub region: String,
    pub access_key: SecretValue,
    pub secret_key: SecretValue,
}

#[derive(Debug, Clone)]
pub struct GitSettings {
    pub url: String,
    pub username: String,
    pub token: SecretValue,
    /// `None` follows the remote's default branch.
    pub branch: Option<String>,
    /// One commit instead of history (`GITSTORE_SQUASH`).
    pub squash: bool,
}

/// The chosen backend with its validated settings. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    Postgres(PostgresSettings),
    Object(ObjectSettings),
    Git(GitSettings),
    Local,
}

impl BackendChoice {
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendChoice::Postgres(_) => BackendKind::Postgres,
            BackendChoice::Object(_) => BackendKind::Object,
            BackendChoice::Git(_) => BackendKind::Git,
            BackendChoice::Local => BackendKind::Local,
        }
    }
}

/// The outcome of selection.
#[derive(Debug, Clone)]
pub struct Selection {
    pub backend: BackendChoice,
    /// The local workspace directory.
    pub workspace: PathBuf,
    /// Backends that were configured too but lost on priority.
    pub ignored: Vec<BackendKind>,
    /// The local store used before another backend was chosen: its auths
    /// seed an empty remote on the first sync.
    pub migrate_from: Option<PathBuf>,
}

impl Selection {
    /// One line for the log: what won and why, and what was ignored.
    pub fn explain(&self) -> String {
        let kind = self.backend.kind();
        let mut line = match kind {
            BackendKind::Local => format!(
                "backend local: none of PGSTORE_DSN, OBJECTSTORE_ENDPOINT, GITSTORE_GIT_URL is set; workspace {}",
                self.workspace.display()
            ),
            _ => format!(
                "backend {kind}: {} is set; workspace {}",
                kind.trigger(),
                self.workspace.display()
            ),
        };
        if !self.ignored.is_empty() {
            let ignored: Vec<String> = self
                .ignored
                .iter()
                .map(|k| format!("{k} ({})", k.trigger()))
                .collect();
            line.push_str(&format!("; ignored by priority: {}", ignored.join(", ")));
        }
        line
    }
}

/// A required variable is missing or malformed. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("{variable} is required when {because} is set")]
    Missing {
        variable: &'static str,
        because: &'static str,
    },
    #[error("{variable} is malformed: {reason}")]
    Malformed {
        variable: &'static str,
        reason: String,
    },
}

/// Selects a backend from the environment; `cwd` anchors relative defaults.
pub fn select(env: &Environment, cwd: &Path) -> Result<Selection, SelectionError> {
    let configured: Vec<BackendKind> =
        [BackendKind::Postgres, BackendKind::Object, BackendKind::Git]
            .into_iter()
            .filter(|kind| env.get(kind.trigger()).is_some())
            .collect();
    let kind = configured.first().copied().unwrap_or(BackendKind::Local);
    let mut ignored: Vec<BackendKind> = configured.iter().skip(1).copied().collect();
    if kind != BackendKind::Local && env.get("LOCALSTORE_PATH").is_some() {
        ignored.push(BackendKind::Local);
    }
    let backend = match kind {
        BackendKind::Postgres => BackendChoice::Postgres(validate::postgres(env)?),
        BackendKind::Object => BackendChoice::Object(validate::object(env)?),
        BackendKind::Git => BackendChoice::Git(validate::git(env)?),
        BackendKind::Local => BackendChoice::Local,
    };
    let workspace = workspace_dir(env, kind, cwd)?;
    // A malformed LOCALSTORE_PATH is ignored with the local backend.
    let migrate_from = (kind != BackendKind::Local)
        .then(|| workspace_dir(env, BackendKind::Local, cwd).ok())
        .flatten();
    Ok(Selection {
        backend,
        workspace,
        ignored,
        migrate_from,
    })
}

fn workspace_dir(
    env: &Environment,
    kind: BackendKind,
    cwd: &Path,
) -> Result<PathBuf, SelectionError> {
    let variable = match kind {
        BackendKind::Postgres => "PGSTORE_LOCAL_PATH",
        BackendKind::Object => "OBJECTSTORE_LOCAL_PATH",
        BackendKind::Git => "GITSTORE_LOCAL_PATH",
        BackendKind::Local => "LOCALSTORE_PATH",
    };
    if let Some(path) = env.get(variable) {
        return Ok(cwd.join(validate::path(variable, &path)?));
    }
    let parent = match env.get("WRITABLE_PATH") {
        Some(path) => cwd.join(validate::path("WRITABLE_PATH", &path)?),
        None => cwd.to_path_buf(),
    };
    Ok(parent.join(kind.default_dir()))
}

#[cfg(test)]
mod tests;
