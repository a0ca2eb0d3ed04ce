//! The conformance kit: one suite that any backend component must pass.
//! One file per operation; each case starts from an empty store.
//!
//! Run it against a component with
//! `cargo run --release -p storehost-tests --bin storehost-conformance -- FILE.wasm`.

mod apply;
mod ids;
mod info;
mod list;
mod pull;
mod read;
mod sizes;

use std::future::Future;
use std::pin::Pin;
use storehost::runtime::{BackendError, Plugin, PluginError};
use storehost::{Change, Entry, Key, Precondition};

pub type CaseResult = Result<(), String>;
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + 'a>>;
pub type Case = for<'a> fn(&'a Plugin) -> CaseFuture<'a>;

/// Every case, by name.
pub fn cases() -> Vec<(&'static str, Case)> {
    [
        info::CASES,
        list::CASES,
        read::CASES,
        apply::CASES,
        ids::CASES,
        sizes::CASES,
        pull::CASES,
    ]
    .concat()
}

#[derive(Debug, Default)]
pub struct Report {
    pub passed: Vec<&'static str>,
    pub failed: Vec<(&'static str, String)>,
}

impl Report {
    pub fn assert_all_passed(&self) {
        assert!(
            self.failed.is_empty(),
            "conformance failures: {:#?}",
            self.failed
        );
        assert!(!self.passed.is_empty(), "no conformance case ran");
    }
}

/// Runs every case against `plugin`, wiping the store before each.
pub async fn run(plugin: &Plugin) -> Report {
    let mut report = Report::default();
    for (name, case) in cases() {
        let outcome = match wipe(plugin).await {
            Ok(()) => case(plugin).await,
            Err(e) => Err(format!("wiping the store before the case failed: {e}")),
        };
        match outcome {
            Ok(()) => report.passed.push(name),
            Err(message) => report.failed.push((name, message)),
        }
    }
    report
}

/// Removes every document, so a case starts from an empty store.
pub async fn wipe(plugin: &Plugin) -> Result<(), PluginError> {
    plugin.prepare().await?;
    let removes: Vec<Change> = plugin
        .list()
        .await?
        .into_iter()
        .map(|entry| Change::Remove {
            key: entry.key,
            precondition: Precondition::Any,
        })
        .collect();
    if !removes.is_empty() {
        plugin.apply(removes, "conformance: wipe").await?;
    }
    Ok(())
}

fn fail(message: impl Into<String>) -> CaseResult {
    Err(message.into())
}

fn check(condition: bool, message: impl FnOnce() -> String) -> CaseResult {
    if condition { Ok(()) } else { Err(message()) }
}

async fn put(
    plugin: &Plugin,
    key: &Key,
    content: &[u8],
    precondition: Precondition,
) -> Result<Entry, PluginError> {
    let change = Change::Put {
        key: key.clone(),
        content: content.to_vec(),
        precondition,
    };
    let mut entries = plugin.apply(vec![change], "conformance: put").await?;
    entries
        .pop()
        .flatten()
        .ok_or_else(|| PluginError::Contract {
            plugin: plugin.name().into(),
            call: "apply",
            message: "put answered no entry".into(),
        })
}

async fn remove(plugin: &Plugin, key: &Key, precondition: Precondition) -> Result<(), PluginError> {
    let change = Change::Remove {
        key: key.clone(),
        precondition,
    };
    plugin
        .apply(vec![change], "conformance: remove")
        .await
        .map(|_| ())
}

/// Expects a backend error of the given shape.
fn expect_backend_error<T: std::fmt::Debug>(
    result: Result<T, PluginError>,
    what: &str,
    matches: impl FnOnce(&BackendError) -> bool,
) -> CaseResult {
    match result {
        Err(PluginError::Backend { error, .. }) if matches(&error) => Ok(()),
        other => fail(format!(
            "{what}: expected a specific backend error, got {other:?}"
        )),
    }
}

/// Auth content is JSON and may come back in the backend's canonical form
/// (PostgreSQL JSONB); everything else must round-trip byte for byte.
fn same(key: &Key, a: &[u8], b: &[u8]) -> bool {
    storehost::mirror::workspace::same_document(key, a, b)
}

fn err(e: PluginError) -> String {
    e.to_string()
}
