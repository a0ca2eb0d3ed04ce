//! `storehost plugin inspect FILE [--manifest FILE]`: the contract version,
//! every import and export, and with a manifest which imports it grants.

use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use storehost::conformance::imports;
use storehost::runtime::inspect::Inspection;
use storehost::runtime::{Runtime, inspect};

#[derive(Args)]
pub struct InspectArgs {
    /// The component to inspect (wasm32-wasip2).
    file: PathBuf,
    /// Also say which imports this manifest grants and which would answer
    /// `denied`.
    #[arg(long)]
    manifest: Option<PathBuf>,
}

pub fn run(args: InspectArgs) -> ExitCode {
    match inspect_file(&args.file) {
        Ok(inspection) => {
            print!("{inspection}");
            let granted = match &args.manifest {
                Some(manifest) => print_grants(&inspection, manifest, &args.file),
                None => true,
            };
            match (inspection.loadable.is_ok(), granted) {
                (true, true) => ExitCode::SUCCESS,
                (true, false) => ExitCode::FAILURE,
                (false, _) => ExitCode::from(2),
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn inspect_file(file: &Path) -> anyhow::Result<Inspection> {
    let wasm =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let runtime = Runtime::new(None)?;
    Ok(inspect::inspect(
        &runtime,
        &file.display().to_string(),
        &wasm,
    )?)
}

/// One line per contract import: granted, or what it would answer. False
/// when one would answer `denied` (or the manifest is bad, said on stderr).
fn print_grants(inspection: &Inspection, manifest: &Path, file: &Path) -> bool {
    let scratch = std::env::temp_dir();
    let grants = match super::plugin_test::manifest_grants(manifest, file, &scratch) {
        Ok((grants, _)) => grants,
        Err(e) => {
            eprintln!("error: {e:#}");
            return false;
        }
    };
    println!("grants ({}):", manifest.display());
    let outcomes = imports::check(inspection, &grants);
    for outcome in outcomes.iter().filter(|o| {
        o.name.starts_with("import storehost:") || o.name.starts_with("import wasi:http/")
    }) {
        let import = outcome.name.trim_start_matches("import ");
        match (outcome.passed, outcome.detail.as_str()) {
            (true, "granted") => println!("  granted  {import}"),
            (true, detail) => println!("  granted  {import} ({detail})"),
            (false, detail) => println!("  denied   {import}: {detail}"),
        }
    }
    outcomes.iter().all(|o| o.passed)
}
