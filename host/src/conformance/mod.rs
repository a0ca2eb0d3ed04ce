//! The conformance kit: one suite that any backend component must pass,
//! run by `storehost plugin test FILE.wasm`. One file per operation; each
//! behaviour case starts from an empty store. Besides behaviour it checks
//! two instances contending on one key, a workload within the memory cap
//! and deadline, and (given the component) that every import is granted.

mod apply;
mod contention;
mod ids;
pub mod imports;
mod info;
mod limits;
mod list;
mod pull;
mod read;
mod report;
mod sizes;

pub use report::{Outcome, Report};

use crate::runtime::inspect::Inspection;
use crate::runtime::{BackendError, Plugin, PluginError};
use crate::{Change, Entry, Key, Precondition};
use std::future::Future;
use std::pin::Pin;

pub type CaseResult = Result<(), String>;
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + 'a>>;
pub type Case = for<'a> fn(&'a Plugin) -> CaseFuture<'a>;

/// Every behaviour case of one instance, by name.
pub fn single_instance_cases() -> Vec<(&'static str, Case)> {
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

/// What the kit may assume of the store behind a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreTraits {
    /// False for a server that checks a write's condition and then writes
    /// without holding the object (the s3s-fs test server): two writes
    /// with one precondition can then both succeed now and again, through
    /// no fault of the plugin.
    pub atomic_conditional_writes: bool,
}

impl Default for StoreTraits {
    fn default() -> StoreTraits {
        StoreTraits {
            atomic_conditional_writes: true,
        }
    }
}

/// Every behaviour case, by name, for a store with `traits`.
pub fn cases(traits: StoreTraits) -> Vec<(&'static str, Case)> {
    [single_instance_cases(), contention::cases(traits)].concat()
}

/// Runs every behaviour case against `plugin`, wiping the store before
/// each, then the workload within the limits.
pub async fn run(plugin: &Plugin) -> Report {
    run_on(plugin, StoreTraits::default()).await
}

/// [`run`] on a store with `traits`.
pub async fn run_on(plugin: &Plugin, traits: StoreTraits) -> Report {
    run_cases(plugin, cases(traits)).await
}

/// [`run`] without the two-instance case, for a backend whose instances
/// do not share one store (the in-memory test backend).
pub async fn run_single_instance(plugin: &Plugin) -> Report {
    run_cases(plugin, single_instance_cases()).await
}

async fn run_cases(plugin: &Plugin, cases: Vec<(&'static str, Case)>) -> Report {
    let mut report = Report::default();
    for (name, case) in cases {
        let outcome = match wipe(plugin).await {
            Ok(()) => case(plugin).await,
            Err(e) => Err(format!("wiping the store before the case failed: {e}")),
        };
        report.push(match outcome {
            Ok(()) => Outcome::pass("behaviour", name, String::new()),
            Err(message) => Outcome::fail("behaviour", name, message),
        });
    }
    report.push(limits::check(plugin).await);
    report
}

/// [`run_on`], preceded by a line per import saying whether it is granted.
pub async fn run_component(
    plugin: &Plugin,
    inspection: &Inspection,
    traits: StoreTraits,
) -> Report {
    let mut report = Report::default();
    for outcome in imports::check(inspection, plugin.grants()) {
        report.push(outcome);
    }
    report.extend(run_on(plugin, traits).await);
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
    crate::mirror::workspace::same_document(key, a, b)
}

fn err(e: PluginError) -> String {
    e.to_string()
}
