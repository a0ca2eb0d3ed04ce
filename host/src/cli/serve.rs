use super::status::RunningMarker;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use storehost::capabilities::Grants;
use storehost::runtime::Limits;
use storehost::{CustomPlugin, MirrorOptions, Storehost, StorehostOptions};

#[derive(Args)]
pub struct ServeArgs {
    /// Seed a missing config from this file (else an empty config is created).
    #[arg(long, value_name = "PATH")]
    example_config: Option<PathBuf>,
    /// Use this plugin component instead of the backend the environment selects.
    #[arg(long, value_name = "FILE.wasm")]
    plugin: Option<PathBuf>,
    /// A non-secret setting for --plugin, as NAME=VALUE (repeatable).
    #[arg(long = "setting", value_name = "NAME=VALUE", requires = "plugin", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Grant --plugin this one directory (seen inside as /store).
    #[arg(long, value_name = "DIR", requires = "plugin")]
    plugin_dir: Option<PathBuf>,
    /// Workspace directory (default: from the environment, see README).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Memory cap per plugin instance, in MiB.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 256,
        env = "STOREHOST_PLUGIN_MEMORY_MIB"
    )]
    plugin_memory_mib: usize,
    /// Deadline of one plugin call, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 60_000,
        env = "STOREHOST_PLUGIN_DEADLINE_MS"
    )]
    plugin_deadline_ms: u64,
    /// How often to ask the backend for changes made by other instances.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 5_000,
        env = "STOREHOST_POLL_INTERVAL_MS"
    )]
    poll_interval_ms: u64,
    /// Refuse remote deletion when more than this share of the auth files
    /// disappears at once (a single file is always fine).
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.25,
        env = "STOREHOST_MAX_DELETE_SHARE"
    )]
    max_delete_share: f64,
    /// How long shutdown may spend pushing queued changes.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 10_000,
        env = "STOREHOST_SHUTDOWN_FLUSH_MS"
    )]
    shutdown_flush_ms: u64,
    /// How often a poll asks the backend for everything, compared by
    /// content, instead of only what changed.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 600_000,
        env = "STOREHOST_COMPLETE_PULL_MS"
    )]
    complete_pull_ms: u64,
    /// How many days replaced or deleted workspace files stay in the trash.
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = storehost::mirror::engine::DEFAULT_TRASH_DAYS,
        env = "STOREHOST_TRASH_DAYS"
    )]
    trash_days: u64,
    /// Exit after bootstrap instead of serving (for scripts and timing).
    #[arg(long, hide = true)]
    once: bool,
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
    let options = StorehostOptions {
        example_config: args.example_config.clone(),
        limits: Limits {
            memory_bytes: args.plugin_memory_mib.saturating_mul(1024 * 1024),
            call_deadline: Duration::from_millis(args.plugin_deadline_ms),
        },
        workspace: args.workspace.clone(),
        mirror: MirrorOptions {
            poll_interval: Duration::from_millis(args.poll_interval_ms.max(10)),
            max_delete_share: args.max_delete_share.clamp(0.0, 1.0),
            shutdown_flush: Duration::from_millis(args.shutdown_flush_ms),
            // Chosen by selection from the environment.
            migrate_from: None,
            trash_retention: Duration::from_secs(args.trash_days.saturating_mul(24 * 3600)),
            complete_pull_interval: Duration::from_millis(args.complete_pull_ms.max(1000)),
        },
    };
    let host = match &args.plugin {
        Some(path) => open_custom(path, &args, options).await?,
        None => Storehost::from_env(options).await?,
    };
    let report = host.bootstrap().await.context("bootstrap failed")?;
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
        host.flush(Duration::from_millis(args.shutdown_flush_ms))
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
    let workspace = args
        .workspace
        .clone()
        .unwrap_or_else(|| PathBuf::from("storehost-workspace"));
    tracing::info!(plugin = %path.display(), "backend chosen explicitly with --plugin; the environment's backend is ignored");
    let grants = match &args.plugin_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Grants::minimal().with_directory(dir)
        }
        None => Grants::minimal(),
    };
    let plugin = CustomPlugin {
        name,
        wasm,
        settings: args.settings.clone(),
        grants,
    };
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
