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

/// True for a file the proxy reads as an auth document: `*.json` (any
/// case, as the proxy matches it), not a conflict copy. Temp files, editor
/// backups and cooldown state are not documents.
pub fn is_auth_file(id: &str) -> bool {
    storehost_sdk::ids::ends_with_ignoring_case(id, ".json") && !is_conflict_copy(id)
}

/// True for the proxy's cooldown state (`*.cds`, any case): files the proxy
/// owns, rewrites on every save and deletes when it did not write them.
pub fn is_cooldown_file(id: &str) -> bool {
    storehost_sdk::ids::is_cooldown_id(id) && !is_conflict_copy(id)
}

/// The document a file under `auths/` is: an auth, cooldown state, or
/// neither.
pub fn document_key_of(id: String) -> Option<Key> {
    if is_auth_file(&id) {
        Some(Key::auth(id))
    } else if is_cooldown_file(&id) {
        Some(Key::cooldown(id))
    } else {
        None
    }
}

/// Why a file under `auths/` is not mirrored.
fn why_not_a_document(id: &str) -> &'static str {
    if is_conflict_copy(id) {
        "a conflict copy storehost kept"
    } else if is_cooldown_file(id) {
        "the proxy's cooldown state (*.cds), not an auth; kept only by plugins of contract 0.2.0 or later"
    } else {
        "neither an auth (*.json) nor cooldown state (*.cds)"
    }
}

/// Every document key the workspace holds now, and the ids of the files
/// under `auths/` that are not documents (cooldown state among them when
/// `with_cooldown` is false).
fn workspace_keys(
    workspace: &Workspace,
    with_cooldown: bool,
) -> Result<(BTreeSet<Key>, Vec<String>), StorehostError> {
    let mut keys = BTreeSet::new();
    let mut others = Vec::new();
    for id in workspace.auth_ids()? {
        match document_key_of(id.clone()) {
            Some(key) if key.kind == Kind::Auth || with_cooldown => keys.insert(key),
            _ => {
                others.push(id);
                continue;
            }
        };
    }
    if workspace.config_path().is_file() {
        keys.insert(Key::config());
    }
    Ok((keys, others))
}

/// Files and remote documents that are not mirrored, each said once at
/// DEBUG (a workspace full of temp files says each name once, not on
/// every scan).
#[derive(Default)]
pub(crate) struct NotMirrored {
    said: std::sync::Mutex<BTreeSet<(&'static str, String)>>,
}

/// Names remembered before the memory of what was said starts over.
const NOT_MIRRORED_REMEMBERED: usize = 4096;

impl NotMirrored {
    /// `place`: `workspace` or `backend`.
    pub(crate) fn mention(&self, place: &'static str, id: &str) {
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if said.len() >= NOT_MIRRORED_REMEMBERED {
            said.clear();
        }
        if said.insert((place, id.to_string())) {
            tracing::debug!(place, id, "not mirrored: {}", why_not_a_document(id));
        }
    }
}

impl Mirror {
    /// The keys of `keys` this backend stores: cooldown state only where the
    /// plugin has it.
    pub(crate) fn mirrored(&self, keys: BTreeSet<Key>) -> BTreeSet<Key> {
        if self.remote.has_cooldown() {
            return keys;
        }
        let (cooldowns, rest): (BTreeSet<Key>, BTreeSet<Key>) =
            keys.into_iter().partition(|k| k.kind == Kind::Cooldown);
        for key in cooldowns {
            self.not_mirrored.mention("workspace", &key.id);
        }
        rest
    }

    /// [`workspace_keys`], mentioning each file that is not a document.
    pub(crate) fn workspace_keys(&self) -> Result<BTreeSet<Key>, StorehostError> {
        let (keys, others) = workspace_keys(&self.workspace, self.remote.has_cooldown())?;
        for id in others {
            self.not_mirrored.mention("workspace", &id);
        }
        Ok(keys)
    }

    /// Queues whatever changed in the workspace since the host last looked:
    /// every document, or only `only`. Returns how many changes it queued.
    pub async fn scan(&self, only: Option<BTreeSet<Key>>) -> Result<usize, StorehostError> {
        let (queued, invalid) = {
            let _owner = self.own().await;
            self.scan_owned(only).await?
        };
        Ok(queued + self.look_again_at_invalid(invalid).await?)
    }

    /// Returns how many changes it queued, and the documents whose file
    /// did not parse.
    async fn scan_owned(
        &self,
        only: Option<BTreeSet<Key>>,
    ) -> Result<(usize, BTreeSet<Key>), StorehostError> {
        let present = self.workspace_keys()?;
        let only = only.map(|only| self.mirrored(only));
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
        Ok((queued, settled.invalid))
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    #[test]
    fn auth_files_are_json_in_any_case_and_nothing_else() {
        for id in [
            "a.json",
            "team/a@b.com.json",
            "A.JSON",
            "x.Json",
            ".hidden.json",
        ] {
            assert!(is_auth_file(id), "{id}");
        }
        for id in [
            "a_b.com.cds",
            "a.json.tmp",
            "a.json~",
            "a.cds.123.tmp",
            "json",
            "notes.txt",
            "",
        ] {
            assert!(!is_auth_file(id), "{id}");
        }
        assert!(is_cooldown_file("team/a_b.com.cds") && is_cooldown_file("X.CDS"));
        assert_eq!(
            document_key_of("t/a.cds".into()),
            Some(Key::cooldown("t/a.cds"))
        );
        assert_eq!(
            document_key_of("t/a.JSON".into()),
            Some(Key::auth("t/a.JSON"))
        );
        assert_eq!(document_key_of("t/a.json.tmp".into()), None);
        assert!(!is_cooldown_file("a.cds.1.tmp"));
    }
}
