//! First contact between a workspace and a backend at start-up.
//!
//! Switching backends migrates and never wipes. Per document, with the
//! state from the last sync (if any): only one side has it or changed it →
//! that side wins; both changed → the remote wins and the local copy is
//! kept as a conflict file. The remote carries a lineage id so a workspace
//! is never reconciled against a different remote by mistake.

use super::engine::{Inner, Mirror};
use super::outbox::Op;
use super::scan::{DeletionGuard, local_documents};
use super::state::{content_hash, now_ms, path_key};
use super::workspace::{Workspace, is_conflict_copy, normalize_config, same_document};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::{Change, Document, Key, Kind, Precondition};
use crate::runtime::Plugin;
use std::collections::{BTreeMap, BTreeSet};
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

/// Mirrored mode: reconcile the workspace with the remote, three-way.
pub async fn mirrored(
    mirror: &Mirror,
    example_config: Option<&Path>,
) -> Result<BootstrapReport, StorehostError> {
    let plugin = &mirror.plugin;
    plugin.prepare().await?;
    let snapshot = plugin.pull(None).await?;
    let mut remote: BTreeMap<Key, Document> = snapshot
        .documents
        .into_iter()
        .map(|d| (d.entry.key.clone(), d))
        .collect();
    let remote_lineage = remote
        .remove(&Key::meta(LINEAGE_ID))
        .map(|d| String::from_utf8_lossy(&d.content).into_owned());

    let mut inner = mirror.inner.lock().await;
    let lineage = settle_lineage(mirror, &mut inner, remote_lineage).await?;
    let mut report = BootstrapReport {
        lineage: Some(lineage),
        ..Default::default()
    };

    let first_sync = inner.state.documents.is_empty();
    if first_sync
        && !remote.keys().any(|key| key.kind == Kind::Auth)
        && let Some(previous) = &mirror.options.migrate_from
    {
        report.migrated = import_previous_store(&mirror.workspace, previous, &remote)?;
    }
    let local = local_documents(&mirror.workspace)?;
    let guard = DeletionGuard::assess(
        &mirror.workspace,
        &inner.state,
        &local,
        mirror.options.max_delete_share,
    );
    let mut keys: BTreeSet<Key> = remote.keys().cloned().collect();
    keys.extend(local.documents.keys().cloned());
    keys.extend(inner.state.tracked_keys());
    // Files that do not parse are left for the user; the remote keeps its
    // last good version.
    keys.retain(|key| !local.invalid.contains(key));
    // Changes still in the outbox (from before a crash or an outage) are
    // pushed with their own preconditions when it drains.
    let queued: BTreeSet<String> = inner.queued()?.into_iter().map(|p| p.path).collect();
    keys.retain(|key| !queued.contains(&path_key(key)));

    for key in keys {
        reconcile(
            mirror,
            &mut inner,
            &key,
            remote.get(&key),
            local.documents.get(&key),
            &guard,
            &mut report,
        )?;
    }
    if !remote.contains_key(&Key::config())
        && !local.documents.contains_key(&Key::config())
        && !local.invalid.contains(&Key::config())
    {
        let seed = seed_config(None, example_config)?;
        mirror.workspace.write(&Key::config(), &seed)?;
        queue(
            mirror,
            &mut inner,
            &Key::config(),
            Op::Put {
                content: String::from_utf8(seed).expect("validated"),
            },
        )?;
        report.config_seeded = true;
        report.uploaded += 1;
    }
    // One sync for everything written above, before the state that
    // describes it.
    mirror.workspace.sync()?;
    let state_dir = mirror.workspace.state_dir();
    inner.outbox.sync().map_err(|source| StorehostError::Io {
        path: state_dir.display().to_string(),
        source,
    })?;
    inner.state.cursor = (!snapshot.cursor.is_empty()).then_some(snapshot.cursor);
    inner.state.backend = plugin.name().to_string();
    inner.state.last_sync_ms = Some(now_ms());
    inner.state.save(&mirror.workspace.state_dir())?;
    drop(inner);
    mirror.drain().await?;
    Ok(report)
}

/// Copies the auths (and a config the remote lacks) of the local store used
/// before into a workspace that lacks them, so the first sync uploads them.
/// The old store is left as it was.
fn import_previous_store(
    workspace: &Workspace,
    previous: &Path,
    remote: &BTreeMap<Key, Document>,
) -> Result<usize, StorehostError> {
    let same_dir = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    let previous_store = Workspace::new(previous);
    if !previous_store.auth_dir().is_dir() || same_dir(previous, workspace.root()) {
        return Ok(0);
    }
    let mut keys: Vec<Key> = previous_store
        .auth_ids()?
        .into_iter()
        .filter(|id| !is_conflict_copy(id))
        .map(Key::auth)
        .collect();
    if !remote.contains_key(&Key::config()) {
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

/// Adopts the remote's lineage, creates one for a remote that has none, or
/// refuses a workspace that was synced with another remote.
async fn settle_lineage(
    mirror: &Mirror,
    inner: &mut Inner,
    remote: Option<String>,
) -> Result<String, StorehostError> {
    match (remote, inner.state.lineage.clone()) {
        (Some(remote), Some(known)) if remote != known => Err(StorehostError::LineageMismatch {
            workspace: mirror.workspace.root().display().to_string(),
            known,
            remote,
        }),
        (Some(remote), _) => {
            inner.state.lineage = Some(remote.clone());
            Ok(remote)
        }
        (None, known) => {
            if known.is_some() && !inner.state.documents.is_empty() {
                tracing::warn!(
                    "the remote has lost its lineage id; treating it as the same remote and writing it again"
                );
            }
            let lineage = known.unwrap_or_else(new_lineage);
            let change = Change::Put {
                key: Key::meta(LINEAGE_ID),
                content: lineage.clone().into_bytes(),
                precondition: Precondition::Any,
            };
            mirror
                .plugin
                .apply(vec![change], "storehost: record lineage")
                .await?;
            inner.state.lineage = Some(lineage.clone());
            Ok(lineage)
        }
    }
}

fn new_lineage() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(now_ms());
    let b = RandomState::new().hash_one(std::process::id());
    format!("{a:016x}{b:016x}")
}

fn reconcile(
    mirror: &Mirror,
    inner: &mut Inner,
    key: &Key,
    remote: Option<&Document>,
    local: Option<&Vec<u8>>,
    guard: &DeletionGuard,
    report: &mut BootstrapReport,
) -> Result<(), StorehostError> {
    let seen = inner.state.seen(key).cloned();
    let local_changed = local.map(|c| content_hash(c)) != seen.as_ref().map(|s| s.local.clone());
    let remote_changed =
        remote.map(|d| d.entry.version.clone()) != seen.as_ref().map(|s| s.remote.clone());
    if !local_changed && !remote_changed {
        return Ok(());
    }
    if let (Some(local), Some(remote)) = (local, remote)
        && same_document(key, local, &remote.content)
    {
        inner
            .state
            .mark(key, content_hash(local), remote.entry.version.clone());
        return Ok(());
    }
    if !remote_changed {
        return match local {
            Some(content) => {
                let content = String::from_utf8(content.clone())
                    .expect("local documents are validated UTF-8");
                report.uploaded += 1;
                queue(mirror, inner, key, Op::Put { content })
            }
            None if guard.blocks(key) => adopt(mirror, inner, key, remote, report),
            None => {
                report.deleted_remotely += 1;
                queue(mirror, inner, key, Op::Remove)
            }
        };
    }
    if local_changed && let Some(local) = local {
        let copy = mirror.workspace.keep_conflict_copy(key, local)?;
        tracing::warn!(%key, kept = %copy, "both sides changed; remote wins, local copy kept");
        inner.state.conflicts.push(copy.clone());
        report.conflicts.push(copy);
    }
    adopt(mirror, inner, key, remote, report)
}

fn adopt(
    mirror: &Mirror,
    inner: &mut Inner,
    key: &Key,
    remote: Option<&Document>,
    report: &mut BootstrapReport,
) -> Result<(), StorehostError> {
    match remote {
        Some(_) => report.pulled += 1,
        None => report.deleted_locally += 1,
    }
    mirror.adopt_remote_with(inner, key, remote, Durability::Batched)
}

fn queue(mirror: &Mirror, inner: &mut Inner, key: &Key, op: Op) -> Result<(), StorehostError> {
    let dir = mirror.workspace.state_dir();
    inner
        .outbox
        .push_with(key, op, Durability::Batched)
        .map_err(|source| StorehostError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    tracing::debug!(key = %path_key(key), "queued for upload");
    Ok(())
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
