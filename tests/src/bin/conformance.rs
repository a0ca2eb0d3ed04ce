//! Runs the conformance kit against a backend component:
//!
//! ```text
//! storehost-conformance FILE.wasm [--dir DIR | --service postgres|object|git] [--setting NAME=VALUE]...
//! ```
//!
//! `--dir` grants the plugin one directory (as the local backend needs);
//! without it a temporary one is granted. `--service` instead starts the
//! test server of that kind on loopback (PostgreSQL, s3s-fs, or
//! `git http-backend` behind basic auth) and grants the plugin what the
//! built-in plugin of that kind gets: the capability, the server and its
//! credentials as secrets (`dsn`; `access_key`, `secret_key`; `token`) and
//! the settings naming it. Exit code 0 when every case passes.

use anyhow::{Context, bail};
use std::process::ExitCode;
use storehost::capabilities::Grants;
use storehost::runtime::plugin::GUEST_STORE_DIR;
use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime};
use storehost_tests::conformance;
use storehost_tests::git::{self, GitServer};
use storehost_tests::postgres::{self, PostgresServer};
use storehost_tests::s3::{self, S3Server};

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
    let file = args.next().context(
        "usage: storehost-conformance FILE.wasm [--dir DIR | --service postgres|object|git] [--setting NAME=VALUE]...",
    )?;
    let temp = tempfile::tempdir()?;
    let mut dir = temp.path().to_path_buf();
    let mut service = None;
    let mut settings = Vec::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = value.into(),
            "--service" => service = Some(value),
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
    // Kept until the run ends.
    let mut servers: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut spec = match service.as_deref() {
        None => PluginSpec {
            name: file.clone(),
            grants: Grants::minimal().with_directory(dir),
            limits: Limits::default(),
            settings: vec![("root".to_string(), GUEST_STORE_DIR.to_string())],
        },
        Some("postgres") => {
            let server = PostgresServer::start();
            let spec = postgres::spec(&server.dsn(), "conformance");
            servers.push(Box::new(server));
            spec
        }
        Some("object") => {
            let server = S3Server::start();
            let spec = s3::spec(&server.endpoint(), "conformance");
            servers.push(Box::new(server));
            spec
        }
        Some("git") => {
            let server = GitServer::start();
            let url = server.create_repo("conformance");
            let spec = git::spec(&url, &temp.path().join("git"), git::TOKEN);
            servers.push(Box::new(server));
            spec
        }
        Some(other) => bail!("unknown service {other}: postgres, object or git"),
    };
    spec.name = file.clone();
    spec.settings.extend(settings);
    let plugin = Plugin::load(&Runtime::shared()?, spec, &wasm)?;
    let report = conformance::run(&plugin).await;
    print!("{}", report.to_text());
    Ok(report.all_passed())
}
