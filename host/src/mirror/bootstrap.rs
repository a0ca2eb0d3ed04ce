//! First contact between a workspace and a backend at start-up.
//!
//! Switching backends migrates and never wipes. Per document, with the
//! state from the last sync (if any): only one side has it or changed it →
//! that side wins; both changed → the remote wins and the local copy is
//! kept as a conflict file. The remote carries a lineage id so a workspace
//! is never reconciled against a different remote by mistake.

use super::decide::Remote as RemoteState;
use super::engine::Mirror;
use super::ledger::MetaName;
use super::now_ms;
use super::remote::read_one;
use super::scan::{DeletionGuard, is_auth_file};
use super::settle::Policy;
use super::workspace::{Workspace, normalize_config};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::{Change, Key, Kind, Precondition};
use crate::runtime::{BackendError, Plugin};
use std::collections::BTreeSet;
use std::path::Path;

/// Where the remote keeps its lineage id.
pub const LINEAGE_ID: &str = "lineage";

/// What a bootstrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    pub pulled: usize,
    pub uploaded: usize,
    pub deleted_locally: usize,
    pub deleted_remotely: usize,
    /// Documents taken from the previous local store (see `migrate_from`).
    pub migrated: usize,
    pub conflicts: Vec<String>,
    pub config_seeded: bool,
    pub lineage: Option<String>,
}

/// Direct mode: the plugin's directory is the workspace. Seeds a missing
/// config; there is nothing to mirror.
pub async fn direct(
    plugin: &Plugin,
    workspace: &Workspace,
    example_config: Option<&Path>,
) -> Result<BootstrapReport, StorehostError> {
    workspace.create()?;
    plugin.prepare().await?;
    let mut report = BootstrapReport::default();
    if plugin.read_one(&Key::config()).await?.is_none() {
        let seed = seed_config(None, example_config)?;
        let change = Change::Put {
            key: Key::config(),
            content: seed,
            precondition: Precondition::Absent,
        };
        plugin.apply(vec![change], "Seed config").await?;
        report.config_seeded = true;
    }
    workspace.secure(&Key::config())?;
    Ok(report)
}

/// Mirrored mode: reconcile the workspace with the remote, three-way, with
/// the same decision function as every later sync.
pub async fn mirrored(
    mirror: &Mirror,
    example_config: Option<&Path>,
) -> Result<BootstrapReport, StorehostError> {
    let owner = mirror.own().await;
    let remote = mirror.remote.as_ref();
    if !remote.has_cooldown() {
        tracing::warn!(
            backend = remote.name(),
            "the backend's plugin was built against contract 0.1.0, which has no cooldown \
             documents: the proxy's cooldown state (*.cds) stays in this workspace only"
        );
    }
    remote.prepare().await?;
    let snapshot = mirror.pull_settled(None).await?;
    let remote_lineage = snapshot
        .documents
        .iter()
        .find(|d| d.entry.key == Key::meta(LINEAGE_ID))
        .map(|d| String::from_utf8_lossy(&d.content).trim().to_string());
    let (lineage, unconfirmed) = settle_lineage(mirror, remote_lineage).await?;
    let mut report = BootstrapReport {
        lineage: Some(lineage),
        ..Default::default()
    };
    let remote_keys: BTreeSet<Key> = snapshot
        .documents
        .iter()
        .map(|d| d.entry.key.clone())
        .filter(|k| k.kind != Kind::Meta)
        .collect();
    let first_sync = mirror.ledger().document_count() == 0;
    if first_sync
        && !remote_keys.iter().any(|key| key.kind == Kind::Auth)
        && let Some(previous) = &mirror.options.migrate_from
    {
        report.migrated = import_previous_store(&mirror.workspace, previous, &remote_keys)?;
    }
    let cursor = snapshot.cursor.clone();
    let mut items = mirror.intake(snapshot.documents)?.items;
    let present: BTreeSet<Key> = items.iter().map(|(k, _, _)| k.clone()).collect();
    let local = mirror.workspace_keys()?;
    let (absent, tracked_auths, missing_auths) = {
        let ledger = mirror.ledger();
        let bases = ledger.bases();
        let absent: BTreeSet<Key> = local
            .iter()
            .chain(bases.keys())
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        let tracked = bases.keys().filter(|k| k.kind == Kind::Auth).count();
        let missing = bases
            .keys()
            .filter(|k| k.kind == Kind::Auth && !local.contains(*k))
            .count();
        (absent, tracked, missing)
    };
    // A key the backend sent but that failed its checks is neither
    // present nor absent there: leave it alone.
    let absent: Vec<Key> = absent
        .into_iter()
        .filter(|k| !remote_keys.contains(k))
        .collect();
    items.extend(absent.into_iter().map(|k| (k, RemoteState::Absent, None)));
    let guard = DeletionGuard::assess(
        &mirror.workspace,
        tracked_auths,
        missing_auths,
        mirror.options.max_delete_share,
    );
    let policy = Policy {
        guard: &guard,
        durability: Durability::Batched,
        listed: Some(&local),
    };
    let items = mirror.guard_remote_deletions(items)?;
    let settled = mirror.settle(items, &policy)?;
    report.pulled = settled.pulled;
    report.deleted_locally = settled.deleted_locally;
    report.uploaded = settled.queued_puts;
    report.deleted_remotely = settled.queued_removes;
    report.conflicts = settled.conflicts;
    mirror.restore_from_remote(settled.restore).await?;
    if !remote_keys.contains(&Key::config()) && !mirror.workspace.config_path().exists() {
        let seed = seed_config(None, example_config)?;
        mirror.enqueue_put(&Key::config(), seed)?;
        report.config_seeded = true;
        report.uploaded += 1;
    }
    mirror.ledger().write(|tx| {
        tx.set_meta(
            MetaName::Cursor,
            Some(cursor.as_str()).filter(|c| !c.is_empty()),
        )?;
        tx.set_meta(MetaName::Backend, Some(remote.name()))?;
        tx.set_meta(MetaName::LastSyncMs, Some(&now_ms().to_string()))
    })?;
    if let Some(written) = unconfirmed {
        report.lineage = Some(confirmed_lineage(mirror, written).await?);
    }
    mirror.drain_owned().await?;
    drop(owner);
    let completed = mirror.look_again_at_invalid(settled.invalid).await?;
    if completed > 0 {
        report.uploaded += completed;
        mirror.drain().await?;
    }
    Ok(report)
}

/// Copies the auths (and a config the remote lacks) of the local store used
/// before into a workspace that lacks them, so the first sync uploads them.
/// The old store is left as it was.
fn import_previous_store(
    workspace: &Workspace,
    previous: &Path,
    remote: &BTreeSet<Key>,
) -> Result<usize, StorehostError> {
    let same_dir = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    let previous_store = Workspace::new(previous);
    if !previous_store.auth_dir().is_dir() || same_dir(previous, workspace.root()) {
        return Ok(0);
    }
    let mut keys: Vec<Key> = previous_store
        .auth_ids()?
        .into_iter()
        .filter(|id| is_auth_file(id))
        .map(Key::auth)
        .collect();
    if !remote.contains(&Key::config()) {
        keys.push(Key::config());
    }
    let mut imported = 0;
    for key in keys {
        if workspace.read(&key)?.is_some() {
            continue;
        }
        if let Some(content) = previous_store.read(&key)? {
            workspace.write_with(&key, &content, Durability::Batched)?;
            imported += 1;
        }
    }
    if imported > 0 {
        tracing::info!(
            from = %previous.display(),
            imported,
            "the remote has no auths yet: migrating the previous local store"
        );
    }
    Ok(imported)
}

/// A lineage this instance has just written, to be read back once it has
/// had a moment to settle (see [`confirmed_lineage`]).
struct UnconfirmedLineage {
    ours: String,
    written: std::time::Instant,
}

/// Adopts the remote's lineage, creates one for a remote that has none, or
/// refuses a workspace that was synced with another remote. A new lineage
/// is written only where none exists (precondition absent), so of several
/// instances starting together on an empty backend one wins and the others
/// adopt its lineage. Where the backend's conditional writes are not atomic
/// a racing create may still replace ours, so it is read back a moment
/// later; for a workspace that knew no lineage that read-back is returned
/// to be done after the documents are settled instead of before them.
async fn settle_lineage(
    mirror: &Mirror,
    remote: Option<String>,
) -> Result<(String, Option<UnconfirmedLineage>), StorehostError> {
    let known = mirror.ledger().meta(MetaName::Lineage)?;
    let mut unconfirmed = None;
    let lineage = match remote {
        Some(remote) => remote,
        None => {
            if known.is_some() && mirror.ledger().document_count() > 0 {
                tracing::warn!(
                    "the remote has lost its lineage id; treating it as the same remote and writing it again"
                );
            }
            let candidate = known.clone().unwrap_or_else(new_lineage);
            let change = Change::Put {
                key: Key::meta(LINEAGE_ID),
                content: candidate.clone().into_bytes(),
                precondition: Precondition::Absent,
            };
            match mirror
                .remote
                .apply(vec![change], "storehost: record lineage")
                .await
            {
                Ok(_) => {
                    let written = UnconfirmedLineage {
                        ours: candidate,
                        written: std::time::Instant::now(),
                    };
                    if mirror.remote.features().await?.atomic_conditional_writes() {
                        written.ours
                    } else if known.is_none() {
                        let ours = written.ours.clone();
                        unconfirmed = Some(written);
                        ours
                    } else {
                        confirmed_lineage(mirror, written).await?
                    }
                }
                Err(e) if matches!(e.backend(), Some(BackendError::Conflict(_))) => {
                    let winner = read_one(mirror.remote.as_ref(), &Key::meta(LINEAGE_ID))
                        .await?
                        .map(|d| String::from_utf8_lossy(&d.content).trim().to_string())
                        .ok_or(e)?;
                    tracing::info!(lineage = %winner, "another instance recorded the lineage first; adopting it");
                    winner
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if let Some(known) = known
        && known != lineage
    {
        return Err(StorehostError::LineageMismatch {
            workspace: mirror.workspace.root().display().to_string(),
            known,
            remote: lineage,
        });
    }
    record_lineage(mirror, &lineage)?;
    Ok((lineage, unconfirmed))
}

fn record_lineage(mirror: &Mirror, lineage: &str) -> Result<(), StorehostError> {
    mirror
        .ledger()
        .write(|tx| tx.set_meta(MetaName::Lineage, Some(lineage)))?;
    Ok(())
}

/// Reads a lineage we wrote back once it is [`LINEAGE_SETTLE`] old: on a
/// server whose conditional writes are not atomic, a racing instance may
/// have written its own over ours, and then all must adopt the one that
/// stayed.
async fn confirmed_lineage(
    mirror: &Mirror,
    written: UnconfirmedLineage,
) -> Result<String, StorehostError> {
    tokio::time::sleep(LINEAGE_SETTLE.saturating_sub(written.written.elapsed())).await;
    let stored = read_one(mirror.remote.as_ref(), &Key::meta(LINEAGE_ID))
        .await?
        .map(|d| String::from_utf8_lossy(&d.content).trim().to_string());
    match stored {
        Some(stored) if stored != written.ours => {
            tracing::warn!(lineage = %stored, "another instance's lineage replaced ours as we wrote it; adopting it");
            record_lineage(mirror, &stored)?;
            Ok(stored)
        }
        _ => Ok(written.ours),
    }
}

/// How long a new lineage is left before it is read back.
const LINEAGE_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

fn new_lineage() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(now_ms());
    let b = RandomState::new().hash_one(std::process::id());
    format!("{a:016x}{b:016x}")
}

/// The config to start from: the workspace's own, else the example, else
/// an empty file.
pub(crate) fn seed_config(
    local: Option<Vec<u8>>,
    example: Option<&Path>,
) -> Result<Vec<u8>, StorehostError> {
    let content = match (local, example) {
        (Some(local), _) => local,
        (None, Some(path)) => {
            std::fs::read(path).map_err(|source| StorehostError::ExampleConfig {
                path: path.display().to_string(),
                source,
            })?
        }
        (None, None) => Vec::new(),
    };
    Ok(normalize_config(&content)?)
}
