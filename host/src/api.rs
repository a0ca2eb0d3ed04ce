//! The embedding API: what a proxy written in Rust calls.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), storehost::StorehostError> {
//! use storehost::{Storehost, StorehostOptions};
//!
//! // `Storehost::from_env` picks the backend from the environment (DESIGN
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
use crate::mirror::workspace::{Workspace, normalize_config, validate_auth};
use crate::model::{Change, Entry, Info, Key, Kind, Precondition};
use crate::runtime::plugin::GUEST_STORE_DIR;
use crate::runtime::{Limits, Plugin, PluginSpec, Runtime};
use crate::selection::{BackendChoice, Environment, Selection, select};
use std::path::{Path, PathBuf};

/// Options that do not come from the environment.
#[derive(Debug, Clone, Default)]
pub struct StorehostOptions {
    /// Seeds a missing config.
    pub example_config: Option<PathBuf>,
    pub limits: Limits,
    /// Overrides the selected workspace directory.
    pub workspace: Option<PathBuf>,
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
    plugin: Plugin,
    mode: Mode,
    backend: String,
    example_config: Option<PathBuf>,
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
        let workspace = Workspace::new(options.workspace.clone().unwrap_or(selection.workspace));
        let kind = selection.backend.kind();
        let wasm = builtin::component(kind).ok_or(StorehostError::PluginUnavailable(kind))?;
        let (grants, settings, mode) = match &selection.backend {
            BackendChoice::Local => (
                Grants::minimal().with_directory(workspace.root()),
                vec![("root".to_string(), GUEST_STORE_DIR.to_string())],
                Mode::Direct,
            ),
            _ => return Err(StorehostError::PluginUnavailable(kind)),
        };
        let spec = PluginSpec {
            name: kind.name().into(),
            grants,
            limits: options.limits,
            settings,
        };
        Storehost::open(spec, wasm, workspace, mode, options.example_config).await
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
        let workspace = Workspace::new(workspace);
        Storehost::open(
            spec,
            &plugin.wasm,
            workspace,
            Mode::Mirrored,
            options.example_config,
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
        };
        Storehost::from_selection(selection, options).await
    }

    async fn open(
        spec: PluginSpec,
        wasm: &[u8],
        workspace: Workspace,
        mode: Mode,
        example_config: Option<PathBuf>,
    ) -> Result<Storehost, StorehostError> {
        // The directory must exist before it can be preopened.
        workspace.create()?;
        let backend = spec.name.clone();
        let runtime = Runtime::shared()?;
        let plugin = Plugin::load(&runtime, spec, wasm)?;
        plugin.start().await?;
        Ok(Storehost {
            workspace,
            plugin,
            mode,
            backend,
            example_config,
        })
    }

    /// Brings the workspace and the backend in step; call once at start.
    pub async fn bootstrap(&self) -> Result<BootstrapReport, StorehostError> {
        let example = self.example_config.as_deref();
        match self.mode {
            Mode::Direct => bootstrap::direct(&self.plugin, &self.workspace, example).await,
            Mode::Mirrored => bootstrap::mirrored(&self.plugin, &self.workspace, example).await,
        }
    }

    pub fn backend_name(&self) -> &str {
        &self.backend
    }

    pub fn mode(&self) -> Mode {
        self.mode
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

    /// Validates and stores an auth document: the workspace file first, then
    /// the backend.
    pub async fn save_auth(&self, id: &str, json: &[u8]) -> Result<Entry, StorehostError> {
        let key = Key::auth(id);
        self.workspace.path_of(&key)?;
        validate_auth(id, json)?;
        if self.mode == Mode::Mirrored {
            self.workspace.write(&key, json)?;
        }
        let entry = self
            .put(key.clone(), json.to_vec(), &format!("Update auth {id}"))
            .await?;
        self.secure_if_direct(&key)?;
        Ok(entry)
    }

    /// Every auth document the backend holds.
    pub async fn list_auths(&self) -> Result<Vec<Entry>, StorehostError> {
        let entries = self.plugin.list().await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.key.kind == Kind::Auth)
            .collect())
    }

    /// Deletes an auth: the backend first, so a failure leaves both sides
    /// as they were.
    pub async fn delete_auth(&self, id: &str) -> Result<(), StorehostError> {
        let key = Key::auth(id);
        self.workspace.path_of(&key)?;
        let change = Change::Remove {
            key: key.clone(),
            precondition: Precondition::Any,
        };
        self.plugin
            .apply(vec![change], &format!("Delete auth {id}"))
            .await?;
        if self.mode == Mode::Mirrored {
            self.workspace.remove(&key)?;
        }
        Ok(())
    }

    /// Validates the workspace config and writes it to the backend. An
    /// invalid config is refused and the backend keeps its last good one.
    pub async fn persist_config(&self) -> Result<(), StorehostError> {
        let key = Key::config();
        let Some(content) = self.workspace.read(&key)? else {
            // A missing file is never taken as "delete the remote config".
            tracing::warn!(
                "no config at {}; nothing persisted",
                self.config_path().display()
            );
            return Ok(());
        };
        let normalized = normalize_config(&content)?;
        if self.mode == Mode::Mirrored || normalized != content {
            self.put(key.clone(), normalized, "Update config").await?;
            self.secure_if_direct(&key)?;
        }
        Ok(())
    }

    /// Persists auth files changed in the workspace (paths absolute or
    /// relative to the auth dir). A missing file is deleted on the backend.
    pub async fn persist_auth_files<P: AsRef<Path>>(
        &self,
        paths: &[P],
    ) -> Result<(), StorehostError> {
        let mut changes = Vec::new();
        for path in paths {
            let id = self.workspace.auth_id_of(path.as_ref())?;
            let key = Key::auth(&id);
            match self.workspace.read(&key)? {
                Some(content) => {
                    validate_auth(&id, &content)?;
                    if self.mode == Mode::Mirrored {
                        changes.push(Change::Put {
                            key,
                            content,
                            precondition: Precondition::Any,
                        });
                    } else {
                        self.workspace.secure(&key)?;
                    }
                }
                None if self.mode == Mode::Mirrored => changes.push(Change::Remove {
                    key,
                    precondition: Precondition::Any,
                }),
                None => {}
            }
        }
        if !changes.is_empty() {
            self.plugin.apply(changes, "Sync auth files").await?;
        }
        Ok(())
    }

    async fn put(
        &self,
        key: Key,
        content: Vec<u8>,
        message: &str,
    ) -> Result<Entry, StorehostError> {
        let change = Change::Put {
            key,
            content,
            precondition: Precondition::Any,
        };
        let entry = self
            .plugin
            .apply(vec![change], message)
            .await?
            .pop()
            .flatten();
        entry.ok_or_else(|| {
            StorehostError::Plugin(crate::runtime::PluginError::Contract {
                plugin: self.backend.clone(),
                call: "apply",
                message: "a put returned no entry".into(),
            })
        })
    }

    fn secure_if_direct(&self, key: &Key) -> Result<(), StorehostError> {
        if self.mode == Mode::Direct {
            self.workspace.secure(key)?;
        }
        Ok(())
    }
}
