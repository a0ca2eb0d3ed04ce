//! Local changes the watcher could not take as they happened (deletions,
//! and everything at start-up or after missed events), and the guard that
//! refuses mass deletions.

use super::decide::Remote as RemoteState;
use super::engine::Mirror;
use super::settle::Policy;
use super::workspace::{Workspace, is_conflict_copy};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::{Key, Kind};
use std::collections::BTreeSet;

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
        tracked_auths: usize,
        missing_auths: usize,
        max_share: f64,
    ) -> DeletionGuard {
        let folder_gone = !workspace.auth_dir().is_dir() && tracked_auths > 0;
        let too_many = too_many_at_once(missing_auths, tracked_auths, max_share);
        let refused = folder_gone || too_many;
        if refused {
            tracing::error!(
                missing = missing_auths,
                tracked = tracked_auths,
                folder_gone,
                "REFUSING to delete auth files remotely: they disappeared all at once; \
                 they are restored from the backend. Delete them one at a time or through the API if that is really meant"
            );
        }
        DeletionGuard { refused }
    }

    /// For paths that never turn a local disappearance into a remote
    /// delete (the backend is being read, not the workspace).
    pub fn never() -> DeletionGuard {
        DeletionGuard { refused: true }
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

/// The rule both deletion guards share: more than one deletion at once, and
/// more than `max_share` of the tracked auths.
pub(crate) fn too_many_at_once(deleted: usize, tracked: usize, max_share: f64) -> bool {
    deleted > 1 && deleted as f64 > max_share * tracked as f64
}

/// True for a workspace file the proxy may have written as an auth
/// document: `*.json`, not a conflict copy (temp files and cooldown state
/// are not documents).
pub fn is_auth_file(id: &str) -> bool {
    id.ends_with(".json") && !is_conflict_copy(id)
}

/// Every document key the workspace holds now.
pub fn workspace_keys(workspace: &Workspace) -> Result<BTreeSet<Key>, StorehostError> {
    let mut keys: BTreeSet<Key> = workspace
        .auth_ids()?
        .into_iter()
        .filter(|id| is_auth_file(id))
        .map(Key::auth)
        .collect();
    if workspace.config_path().is_file() {
        keys.insert(Key::config());
    }
    Ok(keys)
}

impl Mirror {
    /// Queues whatever changed in the workspace since the host last looked:
    /// every document, or only `only`. Returns how many changes it queued.
    pub async fn scan(&self, only: Option<BTreeSet<Key>>) -> Result<usize, StorehostError> {
        let _owner = self.own().await;
        self.scan_owned(only).await
    }

    pub(crate) async fn scan_owned(
        &self,
        only: Option<BTreeSet<Key>>,
    ) -> Result<usize, StorehostError> {
        let present = workspace_keys(&self.workspace)?;
        let (keys, tracked_auths, missing_auths) = {
            let ledger = self.ledger();
            let bases = ledger.bases();
            let tracked_auths = bases.keys().filter(|k| k.kind == Kind::Auth).count();
            let missing = bases
                .keys()
                .filter(|k| k.kind == Kind::Auth && !present.contains(*k))
                .filter(|k| only.as_ref().is_none_or(|only| only.contains(*k)))
                .count();
            let keys: BTreeSet<Key> = match only {
                Some(only) => only,
                None => present.iter().chain(bases.keys()).cloned().collect(),
            };
            (keys, tracked_auths, missing)
        };
        let guard = DeletionGuard::assess(
            &self.workspace,
            tracked_auths,
            missing_auths,
            self.options.max_delete_share,
        );
        let items = keys
            .into_iter()
            .map(|key| (key, RemoteState::Unknown, None))
            .collect();
        let policy = Policy {
            guard: &guard,
            durability: Durability::Now,
            listed: None,
        };
        let settled = self.settle(items, &policy)?;
        // A refused mass disappearance is undone from the remote, so the
        // proxy keeps working with its tokens.
        let restored = self.restore_from_remote(settled.restore).await?;
        if restored > 0 {
            tracing::warn!(restored, "auth files restored from the backend");
        }
        let queued = settled.queued_puts + settled.queued_removes;
        if queued > 0 {
            self.wake.notify_one();
        }
        Ok(queued)
    }
}
