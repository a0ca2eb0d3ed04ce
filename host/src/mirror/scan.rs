//! Local changes: what the workspace holds now against what was last in
//! step, and the guard that refuses mass deletions.

use super::engine::Mirror;
use super::outbox::Op;
use super::state::{SyncState, content_hash};
use super::workspace::{
    Workspace, WorkspaceError, is_conflict_copy, normalize_config, validate_auth,
};
use crate::error::StorehostError;
use crate::model::{Key, Kind};
use std::collections::{BTreeMap, BTreeSet};

/// The valid documents in the workspace, and the keys of files that do not
/// parse (left for the user to fix, never pushed).
#[derive(Debug, Default)]
pub struct LocalScan {
    pub documents: BTreeMap<Key, Vec<u8>>,
    pub invalid: BTreeSet<Key>,
}

pub fn local_documents(workspace: &Workspace) -> Result<LocalScan, WorkspaceError> {
    let mut scan = LocalScan::default();
    let mut keys = vec![Key::config()];
    keys.extend(
        workspace
            .auth_ids()?
            .into_iter()
            .filter(|id| !is_conflict_copy(id))
            .map(Key::auth),
    );
    for key in keys {
        let Some(content) = workspace.read(&key)? else {
            continue;
        };
        match checked_content(workspace, &key, content) {
            Ok(content) => {
                scan.documents.insert(key, content);
            }
            Err(e) => {
                tracing::error!("{e}; not pushed, the remote keeps its last good version");
                scan.invalid.insert(key);
            }
        }
    }
    Ok(scan)
}

/// Auths must be JSON objects; the config valid YAML, whose line endings
/// are normalised to `\n` in place so both sides hold the same bytes.
fn checked_content(
    workspace: &Workspace,
    key: &Key,
    content: Vec<u8>,
) -> Result<Vec<u8>, WorkspaceError> {
    if key.kind == Kind::Auth {
        validate_auth(&key.id, &content)?;
        return Ok(content);
    }
    let normalized = normalize_config(&content)?;
    if normalized != content {
        workspace.write(key, &normalized)?;
    }
    Ok(normalized)
}

/// Decides whether tracked files missing from the workspace may be deleted
/// remotely: single files, yes; the auth folder gone or a large share at
/// once, no.
#[derive(Debug)]
pub struct DeletionGuard {
    refused: bool,
}

impl DeletionGuard {
    pub fn assess(
        workspace: &Workspace,
        state: &SyncState,
        local: &LocalScan,
        max_share: f64,
    ) -> DeletionGuard {
        let tracked: Vec<Key> = state
            .tracked_keys()
            .into_iter()
            .filter(|k| k.kind == Kind::Auth)
            .collect();
        let missing = tracked
            .iter()
            .filter(|k| !local.documents.contains_key(k) && !local.invalid.contains(k))
            .count();
        let folder_gone = !workspace.auth_dir().is_dir() && !tracked.is_empty();
        let too_many = missing > 1 && (missing as f64) > max_share * tracked.len() as f64;
        let refused = folder_gone || too_many;
        if refused {
            tracing::error!(
                missing,
                tracked = tracked.len(),
                folder_gone,
                "REFUSING to delete auth files remotely: they disappeared all at once; \\
                 nothing is deleted remotely. Delete them one at a time or through the API if that is really meant"
            );
        }
        DeletionGuard { refused }
    }

    pub fn refused(&self) -> bool {
        self.refused
    }

    /// True when a disappearance of `key` must not become a remote delete.
    pub fn blocks(&self, key: &Key) -> bool {
        // The config is never deleted remotely because its file vanished.
        key.kind == Kind::Config || self.refused
    }
}

/// Queues whatever changed in the workspace since the last sync (files
/// written or removed by another process, such as the proxy).
pub async fn queue_local_changes(mirror: &Mirror) -> Result<usize, StorehostError> {
    let local = local_documents(&mirror.workspace)?;
    let mut inner = mirror.inner.lock().await;
    let queued: BTreeMap<String, Op> = inner
        .queued()?
        .into_iter()
        .map(|p| (p.path, p.op))
        .collect();
    let guard = DeletionGuard::assess(
        &mirror.workspace,
        &inner.state,
        &local,
        mirror.options.max_delete_share,
    );
    let mut changes: Vec<(Key, Op)> = Vec::new();
    for (key, content) in &local.documents {
        let hash = content_hash(content);
        let known = inner.state.seen(key).map(|s| s.local.as_str()) == Some(hash.as_str());
        let already_queued = matches!(queued.get(&key.to_string()), Some(Op::Put { content: q }) if content_hash(q.as_bytes()) == hash);
        if !known && !already_queued {
            let content = String::from_utf8(content.clone()).expect("validated UTF-8");
            changes.push((key.clone(), Op::Put { content }));
        }
    }
    let mut restore = Vec::new();
    for key in inner.state.tracked_keys() {
        let present = local.documents.contains_key(&key) || local.invalid.contains(&key);
        let already_queued = matches!(queued.get(&key.to_string()), Some(Op::Remove));
        if present || already_queued {
            continue;
        }
        if guard.blocks(&key) {
            restore.push(key);
        } else {
            changes.push((key, Op::Remove));
        }
    }
    // A refused mass disappearance is undone from the remote, so the proxy
    // keeps working with its tokens.
    for key in restore {
        let remote = mirror.plugin.read_one(&key).await?;
        mirror.adopt_remote(&mut inner, &key, remote.as_ref())?;
    }
    if guard.refused() {
        inner.state.save(&mirror.workspace.state_dir())?;
    }
    let count = changes.len();
    for (key, op) in changes {
        tracing::info!(%key, op = if matches!(op, Op::Remove) { "delete" } else { "put" }, "workspace change");
        let dir = mirror.workspace.state_dir();
        inner
            .outbox
            .push(&key, op)
            .map_err(|source| StorehostError::Io {
                path: dir.display().to_string(),
                source,
            })?;
    }
    Ok(count)
}
