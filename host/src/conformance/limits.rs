//! A realistic workload within the host's memory cap and call deadline.

use super::{Outcome, err, wipe};
use crate::runtime::Plugin;
use crate::{Change, Key, Precondition};
use std::time::{Duration, Instant};

const DOCUMENTS: usize = 200;
const DOCUMENT_BYTES: usize = 8 * 1024;
const BATCH: usize = 50;

pub const NAME: &str =
    "a workload of 200 documents of 8 KiB stays within the memory cap and the deadline";

/// Writes, lists, reads and pulls the workload, timing every call.
pub async fn check(plugin: &Plugin) -> Outcome {
    let outcome = match workload(plugin).await {
        Ok(slowest) => {
            let limits = plugin.limits();
            let peak = plugin.peak_memory_bytes().await.unwrap_or(0);
            Outcome::pass(
                "limits",
                NAME,
                format!(
                    "peak memory {:.1} MiB of the {} MiB cap; slowest call {} ms ({}) of the {} s deadline",
                    peak as f64 / (1024.0 * 1024.0),
                    limits.memory_bytes / (1024 * 1024),
                    slowest.1.as_millis(),
                    slowest.0,
                    limits.call_deadline.as_secs_f64(),
                ),
            )
        }
        Err(why) => Outcome::fail("limits", NAME, why),
    };
    if let Err(e) = wipe(plugin).await {
        return Outcome::fail(
            "limits",
            NAME,
            format!("wiping after the workload failed: {e}"),
        );
    }
    outcome
}

async fn workload(plugin: &Plugin) -> Result<(&'static str, Duration), String> {
    wipe(plugin).await.map_err(err)?;
    let keys: Vec<Key> = (0..DOCUMENTS)
        .map(|i| Key::auth(format!("limits-{i:03}.json")))
        .collect();
    let filler = "x".repeat(DOCUMENT_BYTES - 20);
    let mut slowest = ("apply", Duration::ZERO);
    let mut note = |call: &'static str, started: Instant| {
        if started.elapsed() > slowest.1 {
            slowest = (call, started.elapsed());
        }
    };
    for batch in keys.chunks(BATCH) {
        let changes = batch
            .iter()
            .map(|key| Change::Put {
                key: key.clone(),
                content: format!("{{\"filler\":\"{filler}\"}}").into_bytes(),
                precondition: Precondition::Any,
            })
            .collect();
        let started = Instant::now();
        plugin
            .apply(changes, "conformance: workload")
            .await
            .map_err(err)?;
        note("apply", started);
    }
    let started = Instant::now();
    let listed = plugin.list().await.map_err(err)?;
    note("list", started);
    let started = Instant::now();
    let read = plugin.read(&keys).await.map_err(err)?;
    note("read", started);
    let started = Instant::now();
    let pulled = plugin.pull(None).await.map_err(err)?;
    note("pull", started);
    if listed.len() < DOCUMENTS
        || read.iter().any(Option::is_none)
        || pulled.documents.len() < DOCUMENTS
    {
        return Err(format!(
            "wrote {DOCUMENTS} documents; list answered {}, read found {}, a complete pull {}",
            listed.len(),
            read.iter().flatten().count(),
            pulled.documents.len()
        ));
    }
    Ok(slowest)
}
