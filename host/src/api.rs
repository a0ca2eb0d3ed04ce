//! The embedding API: what a proxy written in Rust calls.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), storehost::StorehostError> {
//! use storehost::{Storehost, StorehostOptions};
//!
//! // `Storehost::from_env` picks the backend from the environment (docs/design.md
//! // §5); here the local backend on an explicit workspace.
//! let dir = tempfile::tempdir().unwrap();
//! let host = Storehost::local(dir.path().join("ws"), StorehostOptions::default()).await?;
//! host.bootstrap().await?;
//! host.save_auth("claude-a@b.com.json", br#"{"type":"claude","refresh_token":"rt"}"#).await?;
//! let ids: Vec<String> = host.list_auths().await?.into_iter().map(|e| e.key.id).collect();
//! assert_eq!(ids, ["claude-a@b.com.json"]);
//! assert!(host.auth_dir().join("claude-a@b.com.json").is_file());
//! host.delete_auth("claude-a@b.com.json").await?;
//! assert!(host.list_auths().await?.is_empty());
//! # Ok(()) }
//! ```

use crate::builtin;
use crate::capabilities::Grants;
use crate::error::StorehostError;
use crate::mirror::bootstrap::{self, BootstrapReport};
use crate::mirror::sync::{self, SyncHandle};
use crate::mirror::workspace::{Workspace, normalize_config, validate_auth};
use crate::mirror::{Mirror, MirrorOptions, Saved};
use crate::model::{Change, Entry, Info, Key, Kind, Precondition};
use crate::runtime::{Limits, Plugin, PluginSpec, Runtime};
use crate::selection::{BackendChoice, Environment, Selection, select};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options that do not come from the environment.
#[derive(Debug, Clone, Default)]
pub struct StorehostOptions {
    /// Seeds a missing config.
    pub example_config: Option<PathBuf>,
    pub limits: Limits,
    /// Overrides the selected workspace directory.
    pub workspace: Option<PathBuf>,
    pub mirror: MirrorOptions,
}

/// A backend plugin chosen explicitly, which beats the environment.
#[derive(Debug, Clone)]
pub struct CustomPlugin {
    pub name: String,
    pub wasm: Vec<u8>,
    pub settings: Vec<(String, String)>,
    pub grants: Grants,
}

/// How the workspace relates to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The plugin's directory is the workspace (local backend): nothing to
    /// mirror.
    Direct,
    /// The backend is elsewhere; the workspace mirrors it.
    Mirrored,
}

pub struct Storehost {
    workspace: Workspace,
    plugin: Arc<Plugin>,
    /// Present in mirrored mode.
    mirror: Option<Arc<Mirror>>,
    /// The task that pushes the outbox, from bootstrap on; stopped on drop.
    replay: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The workspace lock of a mirrored host.
    _lock: Option<std::fs::File>,
    backend: String,
    example_config: Option<PathBuf>,
}

impl Drop for Storehost {
    fn drop(&mut self) {
        if let Some(replay) = self.replay.lock().unwrap_or_else(|e| e.into_inner()).take() {
            replay.abort();
        }
    }
}

impl Storehost {
    /// Selects the backend from the process environment.
    pub async fn from_env(options: StorehostOptions) -> Result<Storehost, StorehostError> {
        let cwd = std::env::current_dir().map_err(|source| StorehostError::Io {
            path: ".".into(),
            source,
        })?;
        let selection = select(&Environment::from_process(), &cwd)?;
        Storehost::from_selection(selection, options).await
    }

    /// Opens the backend a [`Selection`] names.
    pub async fn from_selection(
        selection: Selection,
        options: StorehostOptions,
    ) -> Result<Storehost, StorehostError> {
        tracing::info!("{}", selection.explain());
        let mut options = options;
        if options.mirror.migrate_from.is_none() {
            options.mirror.migrate_from = selection.migrate_from.clone();
        }
        let workspace = Workspace::new(options.workspace.clone().unwrap_or(selection.workspace));
        let kind = selection.backend.kind();
        let wasm = builtin::component(kind).ok_or(StorehostError::PluginUnavailable(kind))?;
        let git_cache = workspace.state_dir().join("git");
        let places = builtin::Places {
            store: workspace.root(),
            git_cache: &git_cache,
        };
        let mut spec = builtin::spec(&selection.backend, places);
        spec.limits = options.limits;
        let mode = match selection.backend {
            BackendChoice::Local => Mode::Direct,
            _ => Mode::Mirrored,
        };
        Storehost::open(spec, wasm, workspace, mode, options).await
    }

    /// Opens an explicitly chosen plugin, mirrored into `workspace`.
    pub async fn with_plugin(
        plugin: CustomPlugin,
        workspace: impl Into<PathBuf>,
        options: StorehostOptions,
    ) -> Result<Storehost, StorehostError> {
        let spec = PluginSpec {
            name: plugin.name,
            grants: plugin.grants,
            limits: options.limits,
            settings: plugin.settings,
        };
        Storehost::open(
            spec,
            &plugin.wasm,
            Workspace::new(workspace),
            Mode::Mirrored,
            options,
        )
        .await
    }

    /// The local plugin on `workspace` (direct mode), whatever the environment.
    pub async fn local(
        workspace: impl Into<PathBuf>,
        options: StorehostOptions,
    ) -> Result<Storehost, StorehostError> {
        let selection = Selection {
            backend: BackendChoice::Local,
            workspace: workspace.into(),
            ignored: Vec::new(),
            migrate_from: None,
        };
        Storehost::from_selection(selection, options).await
    }

    /// The local plugin on `remote_dir` as a full remote (a shared or backup
    /// disk), mirrored into `workspace`.
    pub async fn local_remote(
        remote_dir: impl Into<PathBuf>,
        workspace: impl Into<PathBuf>,
        options: StorehostOptions,
    ) -> Result<Storehost, StorehostError> {
        let remote_dir = remote_dir.into();
        crate::fsutil::create_private_root(&remote_dir).map_err(|source| StorehostError::Io {
            path: remote_dir.display().to_string(),
            source,
        })?;
        let places = builtin::Places {
            store: &remote_dir,
            git_cache: Path::new(""),
        };
        let spec = builtin::spec(&BackendChoice::Local, places);
        let plugin = CustomPlugin {
            name: spec.name,
            wasm: builtin::local().to_vec(),
            settings: spec.settings,
            grants: spec.grants,
        };
        Storehost::with_plugin(plugin, workspace, options).await
    }

    async fn open(
        spec: PluginSpec,
        wasm: &[u8],
        workspace: Workspace,
        mode: Mode,
        options: StorehostOptions,
    ) -> Result<Storehost, StorehostError> {
        // The directory must exist before it can be preopened.
        workspace.create()?;
        let backend = spec.name.clone();
        let runtime = Runtime::shared()?;
        let plugin = Arc::new(Plugin::load(&runtime, spec, wasm)?);
        plugin.start().await?;
        let lock = match mode {
            Mode::Direct => None,
            Mode::Mirrored => Some(crate::mirror::engine::lock_workspace(&workspace)?),
        };
        let mirror = match mode {
            Mode::Direct => None,
            Mode::Mirrored => Some(Arc::new(Mirror::open(
                plugin.clone(),
                workspace.clone(),
                options.mirror.clone(),
            )?)),
        };
        Ok(Storehost {
            workspace,
            plugin,
            mirror,
            replay: std::sync::Mutex::new(None),
            _lock: lock,
            backend,
            example_config: options.example_config,
        })
    }

    /// Brings the workspace and the backend in step; call once at start.
    pub async fn bootstrap(&self) -> Result<BootstrapReport, StorehostError> {
        let example = self.example_config.as_deref();
        match &self.mirror {
            None => bootstrap::direct(&self.plugin, &self.workspace, example).await,
            Some(mirror) => {
                let report = bootstrap::mirrored(mirror, example).await?;
                let mut replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
                if replay.is_none() {
                    *replay = Some(sync::start_replay(mirror.clone()));
                }
                Ok(report)
            }
        }
    }

    /// Starts the background work of a mirrored host: outbox replay, the
    /// remote change feed and the workspace watcher. `None` in direct mode,
    /// where there is nothing to mirror.
    pub async fn start_sync(&self) -> Result<Option<SyncHandle>, StorehostError> {
        let Some(mirror) = &self.mirror else {
            return Ok(None);
        };
        let watch_plugin = if self.plugin.info().await?.features.watch {
            Some(Arc::new(self.plugin.fork()))
        } else {
            None
        };
        Ok(Some(sync::start(mirror.clone(), watch_plugin)))
    }

    /// Picks up files changed in the workspace by other processes and pushes
    /// them (the watcher does this by itself while syncing).
    pub async fn sync_workspace(&self) -> Result<(), StorehostError> {
        if let Some(mirror) = &self.mirror {
            mirror.scan(None).await?;
            mirror.drain().await?;
        }
        Ok(())
    }

    /// Applies changes made on the backend by others to the workspace now.
    pub async fn pull_remote(&self) -> Result<usize, StorehostError> {
        match &self.mirror {
            Some(mirror) => mirror.poll().await,
            None => Ok(0),
        }
    }

    /// Pushes queued changes until none is left or `bound` passes; returns
    /// how many are still queued.
    pub async fn flush(&self, bound: std::time::Duration) -> Result<usize, StorehostError> {
        match &self.mirror {
            Some(mirror) => mirror.flush(bound).await,
            None => Ok(0),
        }
    }

    /// True once the write `saved` acknowledged has reached the backend
    /// (or was settled against it), waiting up to `bound`.
    pub async fn wait_pushed(
        &self,
        saved: &Saved,
        bound: std::time::Duration,
    ) -> Result<bool, StorehostError> {
        match (saved, &self.mirror) {
            (Saved::Queued(seq), Some(mirror)) => mirror.wait_pushed(*seq, bound).await,
            _ => Ok(true),
        }
    }

    pub async fn outbox_len(&self) -> usize {
        match &self.mirror {
            Some(mirror) => mirror.outbox_len().await,
            None => 0,
        }
    }

    pub fn backend_name(&self) -> &str {
        &self.backend
    }

    pub fn mode(&self) -> Mode {
        if self.mirror.is_some() {
            Mode::Mirrored
        } else {
            Mode::Direct
        }
    }

    pub async fn info(&self) -> Result<Info, StorehostError> {
        Ok(self.plugin.info().await?)
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    pub fn workspace(&self) -> &Path {
        self.workspace.root()
    }

    pub fn config_path(&self) -> PathBuf {
        self.workspace.config_path()
    }

    pub fn auth_dir(&self) -> PathBuf {
        self.workspace.auth_dir()
    }

    /// Validates and stores an auth document. Mirrored, it returns once the
    /// workspace file and its outbox entry are durable ([`Saved::Queued`]),
    /// whatever the backend is doing; the sync task pushes it (see
    /// [`Storehost::wait_pushed`]).
    pub async fn save_auth(&self, id: &str, json: &[u8]) -> Result<Saved, StorehostError> {
        let key = Key::auth(id);
        self.workspace.path_of(&key)?;
        validate_auth(id, json)?;
        self.write(key, json.to_vec(), &format!("Update auth {id}"))
            .await
    }

    /// Every auth document the backend holds.
    pub async fn list_auths(&self) -> Result<Vec<Entry>, StorehostError> {
        let entries = self.plugin.list().await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.key.kind == Kind::Auth)
            .collect())
    }

    /// Deletes an auth, locally and (now or after an outage) remotely.
    pub async fn delete_auth(&self, id: &str) -> Result<Saved, StorehostError> {
        let key = Key::auth(id);
        self.workspace.path_of(&key)?;
        match &self.mirror {
            Some(mirror) => mirror.enqueue_remove(&key),
            None => {
                let change = Change::Remove {
                    key,
                    precondition: Precondition::Any,
                };
                self.plugin
                    .apply(vec![change], &format!("Delete auth {id}"))
                    .await?;
                Ok(Saved::Stored(None))
            }
        }
    }

    /// Validates the workspace config and writes it to the backend. An
    /// invalid config is refused and the backend keeps its last good one.
    pub async fn persist_config(&self) -> Result<Option<Saved>, StorehostError> {
        let key = Key::config();
        let Some(content) = self.workspace.read(&key)? else {
            // A missing file is never taken as "delete the remote config".
            tracing::warn!(
                "no config at {}; nothing persisted",
                self.config_path().display()
            );
            return Ok(None);
        };
        let normalized = normalize_config(&content)?;
        match &self.mirror {
            Some(mirror) => Ok(mirror.note_local_write(&key)?.map(Saved::Queued)),
            None if normalized == content => Ok(None),
            None => self.write(key, normalized, "Update config").await.map(Some),
        }
    }

    /// Persists auth files changed in the workspace (paths absolute or
    /// relative to the auth dir). A missing file is an explicit delete.
    pub async fn persist_auth_files<P: AsRef<Path>>(
        &self,
        paths: &[P],
    ) -> Result<(), StorehostError> {
        for path in paths {
            let id = self.workspace.auth_id_of(path.as_ref())?;
            let key = Key::auth(&id);
            match (self.workspace.read(&key)?, &self.mirror) {
                (Some(content), Some(mirror)) => {
                    validate_auth(&id, &content)?;
                    mirror.note_local_write(&key)?;
                }
                (None, Some(mirror)) => {
                    mirror.enqueue_remove(&key)?;
                }
                (Some(content), None) => {
                    validate_auth(&id, &content)?;
                    self.workspace.secure(&key)?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    async fn write(
        &self,
        key: Key,
        content: Vec<u8>,
        message: &str,
    ) -> Result<Saved, StorehostError> {
        match &self.mirror {
            Some(mirror) => mirror.enqueue_put(&key, content),
            None => {
                let change = Change::Put {
                    key: key.clone(),
                    content,
                    precondition: Precondition::Any,
                };
                let entry = self
                    .plugin
                    .apply(vec![change], message)
                    .await?
                    .pop()
                    .flatten();
                self.workspace.secure(&key)?;
                Ok(Saved::Stored(entry))
            }
        }
    }
}
