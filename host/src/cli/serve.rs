use super::status::RunningMarker;
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use storehost::capabilities::{Capability, Grants};
use storehost::manifest::{DEFAULT_MANIFEST, Manifest};
use storehost::mirror::Workspace;
use storehost::runtime::Limits;
use storehost::{
    BootstrapReport, CustomPlugin, MirrorOptions, Storehost, StorehostError, StorehostOptions,
};

#[derive(Args)]
pub struct ServeArgs {
    /// Seed a missing config from this file (else an empty config is created).
    #[arg(long, value_name = "PATH")]
    example_config: Option<PathBuf>,
    /// Use this plugin component instead of the backend the environment selects.
    #[arg(long, value_name = "FILE.wasm")]
    plugin: Option<PathBuf>,
    /// Load the backend a plugin manifest describes: component, pin, settings,
    /// grants and secrets; beats the environment's backend
    /// [env: STOREHOST_MANIFEST; default ./storehost.yaml when it exists].
    #[arg(long, value_name = "FILE", conflicts_with = "plugin")]
    manifest: Option<PathBuf>,
    /// A non-secret setting for --plugin, as NAME=VALUE (repeatable).
    #[arg(long = "setting", value_name = "NAME=VALUE", requires = "plugin", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Grant --plugin this one directory (seen inside as /store).
    #[arg(long, value_name = "DIR", requires = "plugin")]
    plugin_dir: Option<PathBuf>,
    /// Workspace directory (default: from the environment, see README).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Memory cap per plugin instance, in MiB, 1 to 65536 [env: STOREHOST_PLUGIN_MEMORY_MIB; default 256].
    #[arg(long, value_name = "MIB")]
    plugin_memory_mib: Option<String>,
    /// Deadline of one plugin call, in milliseconds [env: STOREHOST_PLUGIN_DEADLINE_MS; default 60000].
    #[arg(long, value_name = "MS")]
    plugin_deadline_ms: Option<String>,
    /// How often to ask the backend for changes made by other instances, 10 ms or more
    /// [env: STOREHOST_POLL_INTERVAL_MS; default 5000].
    #[arg(long, value_name = "MS")]
    poll_interval_ms: Option<String>,
    /// Refuse mirroring deletions when more than this share (0 to 1) of the auths
    /// disappears at once, locally or on the backend; a single one is always fine
    /// [env: STOREHOST_MAX_DELETE_SHARE; default 0.25].
    #[arg(long, value_name = "SHARE")]
    max_delete_share: Option<String>,
    /// How long shutdown may spend pushing queued changes [env: STOREHOST_SHUTDOWN_FLUSH_MS; default 10000].
    #[arg(long, value_name = "MS")]
    shutdown_flush_ms: Option<String>,
    /// How often a poll asks the backend for everything, compared by content, instead of
    /// only what changed, 1000 ms or more [env: STOREHOST_COMPLETE_PULL_MS; default 600000].
    #[arg(long, value_name = "MS")]
    complete_pull_ms: Option<String>,
    /// How many days replaced or deleted workspace files stay in the trash
    /// [env: STOREHOST_TRASH_DAYS; default 7].
    #[arg(long, value_name = "DAYS")]
    trash_days: Option<String>,
    /// Largest document taken from the backend, in bytes; a larger one is skipped and
    /// quarantined [env: STOREHOST_MAX_DOCUMENT_BYTES; default 4 MiB].
    #[arg(long, value_name = "BYTES")]
    max_document_bytes: Option<String>,
    /// Exit after bootstrap instead of serving (for scripts and timing).
    #[arg(long, hide = true)]
    once: bool,
}

/// The numeric settings, checked.
struct Settings {
    plugin_memory_mib: usize,
    plugin_deadline_ms: u64,
    poll_interval_ms: u64,
    max_delete_share: f64,
    shutdown_flush_ms: u64,
    complete_pull_ms: u64,
    trash_days: u64,
    max_document_bytes: usize,
}

impl Settings {
    fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        use super::numbers::*;
        Ok(Settings {
            plugin_memory_mib: PLUGIN_MEMORY_MIB.resolve(args.plugin_memory_mib.as_deref())?,
            plugin_deadline_ms: PLUGIN_DEADLINE_MS.resolve(args.plugin_deadline_ms.as_deref())?,
            poll_interval_ms: POLL_INTERVAL_MS.resolve(args.poll_interval_ms.as_deref())?,
            max_delete_share: MAX_DELETE_SHARE.resolve(args.max_delete_share.as_deref())?,
            shutdown_flush_ms: SHUTDOWN_FLUSH_MS.resolve(args.shutdown_flush_ms.as_deref())?,
            complete_pull_ms: COMPLETE_PULL_MS.resolve(args.complete_pull_ms.as_deref())?,
            trash_days: TRASH_DAYS.resolve(args.trash_days.as_deref())?,
            max_document_bytes: MAX_DOCUMENT_BYTES.resolve(args.max_document_bytes.as_deref())?,
        })
    }
}

fn parse_setting(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .ok_or_else(|| "expected NAME=VALUE".to_string())
}

pub fn run(args: ServeArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // Installed first, so a signal during start-up is a clean shutdown too.
    let mut shutdown = ShutdownSignals::install()?;
    let settings = Settings::resolve(&args)?;
    let options = StorehostOptions {
        example_config: args.example_config.clone(),
        limits: Limits {
            memory_bytes: settings.plugin_memory_mib.saturating_mul(1024 * 1024),
            call_deadline: Duration::from_millis(settings.plugin_deadline_ms),
        },
        workspace: args.workspace.clone(),
        mirror: MirrorOptions {
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            max_delete_share: settings.max_delete_share,
            shutdown_flush: Duration::from_millis(settings.shutdown_flush_ms),
            // Chosen by selection from the environment.
            migrate_from: None,
            trash_retention: Duration::from_secs(settings.trash_days.saturating_mul(24 * 3600)),
            complete_pull_interval: Duration::from_millis(settings.complete_pull_ms),
            max_document_bytes: settings.max_document_bytes,
        },
    };
    let Some((host, report)) = open_when_available(&args, options, &mut shutdown).await? else {
        tracing::info!("shutting down before the backend answered");
        return Ok(());
    };
    let info = host.info().await?;
    // Written before "ready" is logged, so whoever waits for that line sees it.
    let _running =
        (!args.once).then(|| RunningMarker::write(host.workspace(), host.backend_name()));
    tracing::info!(
        plugin = %info.name,
        version = %info.version,
        features = %info.features,
        workspace = %host.workspace().display(),
        config_seeded = report.config_seeded,
        pulled = report.pulled,
        uploaded = report.uploaded,
        migrated = report.migrated,
        ready_ms = started.elapsed().as_millis() as u64,
        "storehost ready"
    );
    if args.once {
        host.flush(Duration::from_millis(settings.shutdown_flush_ms))
            .await?;
        return Ok(());
    }
    let sync = host.start_sync().await?;
    shutdown.wait().await;
    tracing::info!("shutting down");
    if let Some(sync) = sync {
        let left = sync.shutdown().await;
        tracing::info!(left, "outbox flushed");
    }
    Ok(())
}

/// Opens the backend and bootstraps. A backend unavailable at start is
/// waited for with backoff, as the outbox waits one out later: the proxy
/// keeps reading the workspace, and what it writes meanwhile is taken once
/// the backend answers. Anything else (refused credentials, another
/// lineage), and any failure with --once, ends the run. None: stopped
/// while waiting.
async fn open_when_available(
    args: &ServeArgs,
    options: StorehostOptions,
    shutdown: &mut ShutdownSignals,
) -> anyhow::Result<Option<(Storehost, BootstrapReport)>> {
    let mut backoff = storehost::mirror::sync::backoff(Duration::from_secs(1), START_RETRY_MAX);
    // For `status` while this waits; removed when it ends.
    let mut waiting_marker = None;
    loop {
        let error = match open_and_bootstrap(args, options.clone()).await {
            Ok(ready) => return Ok(Some(ready)),
            Err(e) if args.once || !is_backend_unavailable(&e) => return Err(e),
            Err(e) => e,
        };
        if waiting_marker.is_none() && !args.once {
            waiting_marker = intended_workspace(args).and_then(|workspace| {
                RunningMarker::waiting(&workspace, storehost::mirror::now_ms())
            });
        }
        let delay = backoff.next().unwrap_or(START_RETRY_MAX);
        tracing::warn!(
            retry_in_ms = delay.as_millis() as u64,
            "the backend is unavailable at start; the workspace is left as it is and storehost tries again: {error:#}"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait() => return Ok(None),
        }
    }
}

async fn open_and_bootstrap(
    args: &ServeArgs,
    options: StorehostOptions,
) -> anyhow::Result<(Storehost, BootstrapReport)> {
    let host = match (&args.plugin, chosen_manifest(args)?) {
        (Some(path), _) => open_custom(path, args, options).await?,
        (None, Some(manifest)) => open_manifest(&manifest, args, options).await?,
        (None, None) => Storehost::from_env(options).await?,
    };
    let report = host.bootstrap().await.context("bootstrap failed")?;
    Ok((host, report))
}

/// The workspace `serve` will use, as opening it would choose.
fn intended_workspace(args: &ServeArgs) -> Option<PathBuf> {
    if let Some(workspace) = &args.workspace {
        return Some(workspace.clone());
    }
    if args.plugin.is_some() {
        return Some(workspace_or_default(None));
    }
    if let Some(manifest) = chosen_manifest(args).ok()? {
        return Some(workspace_or_default(
            Manifest::read(&manifest).ok()?.workspace,
        ));
    }
    let cwd = std::env::current_dir().ok()?;
    let selection =
        storehost::selection::select(&storehost::selection::Environment::from_process(), &cwd);
    Some(selection.ok()?.workspace)
}

fn is_backend_unavailable(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<StorehostError>()
        .is_some_and(StorehostError::is_backend_unavailable)
}

/// The longest wait between two attempts to start.
const START_RETRY_MAX: Duration = Duration::from_secs(30);

async fn open_custom(
    path: &PathBuf,
    args: &ServeArgs,
    options: StorehostOptions,
) -> anyhow::Result<Storehost> {
    let wasm =
        std::fs::read(path).with_context(|| format!("cannot read plugin {}", path.display()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "custom".into());
    tracing::info!(plugin = %path.display(), "backend chosen explicitly with --plugin; the environment's backend is ignored");
    let grants = match &args.plugin_dir {
        Some(dir) => Grants::minimal().with_directory(dir),
        None => Grants::minimal(),
    };
    let plugin = CustomPlugin {
        name,
        wasm,
        settings: args.settings.clone(),
        grants,
    };
    open_plugin(plugin, args.workspace.clone(), options).await
}

/// The manifest to use: `--manifest`, else `STOREHOST_MANIFEST`, else
/// `./storehost.yaml` when it exists (unless `--plugin` was given).
fn chosen_manifest(args: &ServeArgs) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = &args.manifest {
        return Ok(Some(path.clone()));
    }
    if args.plugin.is_some() {
        return Ok(None);
    }
    match std::env::var_os("STOREHOST_MANIFEST") {
        Some(value) if value.to_string_lossy().trim().is_empty() => {
            anyhow::bail!("STOREHOST_MANIFEST is set but empty: unset it or name a manifest file")
        }
        Some(value) => Ok(Some(PathBuf::from(value))),
        None => {
            let default = PathBuf::from(DEFAULT_MANIFEST);
            Ok(default.is_file().then_some(default))
        }
    }
}

async fn open_manifest(
    path: &Path,
    args: &ServeArgs,
    options: StorehostOptions,
) -> anyhow::Result<Storehost> {
    // Everything is read and checked (pin, secrets) before anything exists.
    let manifest = Manifest::read(path)?;
    let loaded = manifest.load_plugin()?;
    let workspace = args.workspace.clone().or(manifest.workspace.clone());
    let mut grants = loaded.grants;
    if manifest.capabilities.contains(&Capability::Git) {
        let state = Workspace::new(workspace_or_default(workspace.clone())).state_dir();
        grants = grants.with_git_dir(state.join("git"));
    }
    tracing::info!(
        manifest = %path.display(),
        plugin = %manifest.plugin_file.display(),
        pinned = manifest.sha256.is_some(),
        capabilities = ?manifest.capabilities,
        endpoints = ?manifest.endpoints,
        secrets = ?grants.secret_names().collect::<Vec<_>>(),
        "backend chosen by a plugin manifest; the environment's backend is ignored"
    );
    let plugin = CustomPlugin {
        name: loaded.name,
        wasm: loaded.wasm,
        settings: loaded.settings,
        grants,
    };
    open_plugin(plugin, workspace, options).await
}

fn workspace_or_default(workspace: Option<PathBuf>) -> PathBuf {
    workspace.unwrap_or_else(|| PathBuf::from("storehost-workspace"))
}

/// Creates the granted directory if missing and opens the plugin mirrored
/// into the workspace.
async fn open_plugin(
    plugin: CustomPlugin,
    workspace: Option<PathBuf>,
    options: StorehostOptions,
) -> anyhow::Result<Storehost> {
    if let Some(dir) = plugin.grants.directory() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let workspace = workspace_or_default(workspace);
    Ok(Storehost::with_plugin(plugin, workspace, options).await?)
}

struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
