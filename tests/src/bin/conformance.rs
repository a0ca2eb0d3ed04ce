//! Runs the conformance kit against a backend component:
//!
//! ```text
//! storehost-conformance FILE.wasm [--dir DIR] [--setting NAME=VALUE]...
//! ```
//!
//! `--dir` grants the plugin one directory (as the local backend needs);
//! without it a temporary one is granted. Exit code 0 when every case passes.

use anyhow::{Context, bail};
use std::process::ExitCode;
use storehost::capabilities::Grants;
use storehost::runtime::plugin::GUEST_STORE_DIR;
use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime};
use storehost_tests::conformance;

fn main() -> ExitCode {
    match tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(run())
    {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .context("usage: storehost-conformance FILE.wasm [--dir DIR] [--setting NAME=VALUE]...")?;
    let temp = tempfile::tempdir()?;
    let mut dir = temp.path().to_path_buf();
    let mut settings = vec![("root".to_string(), GUEST_STORE_DIR.to_string())];
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = value.into(),
            "--setting" => {
                let (name, value) = value
                    .split_once('=')
                    .context("--setting takes NAME=VALUE")?;
                settings.push((name.into(), value.into()));
            }
            other => bail!("unknown flag {other}"),
        }
    }
    let wasm = std::fs::read(&file).with_context(|| format!("reading {file}"))?;
    let spec = PluginSpec {
        name: file.clone(),
        grants: Grants::minimal().with_directory(dir),
        limits: Limits::default(),
        settings,
    };
    let plugin = Plugin::load(&Runtime::shared()?, spec, &wasm)?;
    let report = conformance::run(&plugin).await;
    for name in &report.passed {
        println!("pass  {name}");
    }
    for (name, why) in &report.failed {
        println!("FAIL  {name}: {why}");
    }
    println!(
        "{} passed, {} failed",
        report.passed.len(),
        report.failed.len()
    );
    Ok(report.failed.is_empty())
}
