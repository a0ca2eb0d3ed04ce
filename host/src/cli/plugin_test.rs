//! `storehost plugin test FILE.wasm`: the conformance kit against a
//! component, granted a temporary directory, what a manifest names, or a
//! test server started for it (`--service`). Exit 0 when every check passes, 1 when one fails, 2 for bad
//! input (an unreadable or foreign file, a bad manifest, a store that is not
//! empty).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use storehost::capabilities::{Capability, Grants};
use storehost::conformance;
use storehost::manifest::Manifest;
use storehost::runtime::plugin::GUEST_STORE_DIR;
use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime, inspect};
use storehost::test_servers::{self, RunningService, ServiceKind};

#[derive(Args)]
pub struct TestArgs {
    /// The component to test (wasm32-wasip2).
    file: PathBuf,
    /// Grant what this manifest grants (settings, directory, capabilities,
    /// endpoints, secrets) instead of a temporary directory.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Without a manifest: the directory to grant (default: a temporary one).
    #[arg(long, conflicts_with = "manifest")]
    dir: Option<PathBuf>,
    /// Start a throwaway server of this kind on loopback (PostgreSQL,
    /// s3s-fs, or `git http-backend` behind basic auth) and grant the
    /// plugin what the built-in of that kind gets: the capability, the
    /// server, its credentials as secrets and the settings naming it.
    #[arg(long, value_enum, conflicts_with_all = ["manifest", "dir"])]
    service: Option<ServiceKind>,
    /// An extra setting, NAME=VALUE (repeatable).
    #[arg(long = "setting", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// The kit removes every document of the store it is given; without
    /// this flag a store that is not empty is refused.
    #[arg(long)]
    allow_wipe: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: a setting is NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

pub fn run(args: TestArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(test(&args)) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Everything that is bad input is an `Err`; a failing check is in the report.
async fn test(args: &TestArgs) -> anyhow::Result<conformance::Report> {
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let name = args.file.display().to_string();
    let runtime = Runtime::new(None)?;
    let inspection = inspect::inspect(&runtime, &name, &wasm)?;
    // Declared before the plugin, so the server outlives it.
    let service = start_service(args.service, temp.path())?;
    let (grants, mut settings) = match (&args.manifest, &service) {
        (Some(path), _) => manifest_grants(path, &args.file, temp.path())?,
        (None, Some(service)) => {
            let spec = service.spec();
            (spec.grants, spec.settings)
        }
        (None, None) => {
            let dir = args
                .dir
                .clone()
                .unwrap_or_else(|| temp.path().join("store"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let settings = vec![("root".to_string(), GUEST_STORE_DIR.to_string())];
            (Grants::minimal().with_directory(dir), settings)
        }
    };
    settings.extend(args.settings.iter().cloned());
    let spec = PluginSpec {
        name,
        grants,
        limits: Limits::default(),
        settings,
    };
    let plugin = Plugin::load(&runtime, spec, &wasm)?;
    if !args.allow_wipe {
        refuse_a_store_in_use(&plugin).await?;
    }
    let traits = args
        .service
        .map(ServiceKind::store_traits)
        .unwrap_or_default();
    Ok(conformance::run_component(&plugin, &inspection, traits).await)
}

/// Starts the server `--service` names; its programs missing is bad input
/// whose message says how to install them.
fn start_service(
    kind: Option<ServiceKind>,
    scratch: &std::path::Path,
) -> anyhow::Result<Option<RunningService>> {
    let Some(kind) = kind else {
        return Ok(None);
    };
    let service = tokio::task::block_in_place(|| test_servers::start_service(kind, scratch))
        .with_context(|| format!("starting the {} test server", kind.name()))?;
    Ok(Some(service))
}

/// The manifest's grants and settings, for `file` instead of the
/// manifest's own component (its pin still applies).
pub(super) fn manifest_grants(
    path: &std::path::Path,
    file: &std::path::Path,
    scratch: &std::path::Path,
) -> anyhow::Result<(Grants, Vec<(String, String)>)> {
    let mut manifest = Manifest::read(path)?;
    manifest.plugin_file = file.to_path_buf();
    let loaded = manifest.load_plugin()?;
    let mut grants = loaded.grants;
    if manifest.capabilities.contains(&Capability::Git) {
        grants = grants.with_git_dir(scratch.join("git"));
    }
    Ok((grants, loaded.settings))
}

/// The kit wipes the store before each case; a store with documents in it
/// is someone's data until the caller says otherwise.
async fn refuse_a_store_in_use(plugin: &Plugin) -> anyhow::Result<()> {
    // A plugin that cannot even prepare or list fails in the report, not here.
    if plugin.prepare().await.is_err() {
        return Ok(());
    }
    match plugin.list().await {
        Ok(entries) if !entries.is_empty() => anyhow::bail!(
            "the store already holds {} documents and `plugin test` removes every document \
             of the store it is given: point it at an empty store, or pass --allow-wipe",
            entries.len()
        ),
        _ => Ok(()),
    }
}
