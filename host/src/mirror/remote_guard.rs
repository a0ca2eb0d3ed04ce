//! The guard against a wiped backend, symmetric to the local one in
//! `scan`: a pull that would delete more than the allowed share of the
//! tracked auths, every auth, or the config is refused. The workspace keeps
//! its files and the host writes them back to the backend, unless an
//! operator said once that the backend was emptied on purpose
//! (`storehost accept-remote-deletions`).

use super::decide::Remote as RemoteState;
use super::engine::Mirror;
use super::ledger::{MetaName, Op};
use super::scan::too_many_at_once;
use super::settle::Item;
use crate::error::StorehostError;
use crate::model::Snapshot;
use crate::model::{Key, Kind};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long an operator's acceptance of remote deletions stays valid.
pub const ACCEPTANCE_VALID_MS: u64 = 3600 * 1000;
/// How long a pull that drops tracked documents waits before looking
/// again: object stores and scripts delete one object at a time, and the
/// guard must see a wipe whole, not its first slice.
const REMOTE_DELETION_SETTLE: Duration = Duration::from_millis(500);
/// At most this many looks while the deletions keep growing.
const REMOTE_DELETION_LOOKS: usize = 20;

/// Why a pull's deletions are too many to mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wipe {
    Config,
    AllAuths,
    TooMany,
}

/// Whether deleting `auths` of `tracked_auths` (and the config, if
/// `config`) at once looks like a wipe. Single deletions always pass.
pub(crate) fn assess(tracked_auths: usize, auths: usize, config: bool, share: f64) -> Option<Wipe> {
    if config {
        Some(Wipe::Config)
    } else if auths > 1 && auths == tracked_auths {
        Some(Wipe::AllAuths)
    } else if too_many_at_once(auths, tracked_auths, share) {
        Some(Wipe::TooMany)
    } else {
        None
    }
}

impl Mirror {
    /// Pulls from `cursor`; while the answer drops more tracked documents
    /// than the one before, waits and pulls from the same cursor again, so
    /// a burst of deletions is judged once, whole.
    pub(crate) async fn pull_settled(
        &self,
        cursor: Option<&str>,
    ) -> Result<Snapshot, StorehostError> {
        let mut snapshot = self.remote.pull(cursor).await?;
        let mut dropped = self.tracked_dropped(&snapshot);
        for _ in 0..REMOTE_DELETION_LOOKS {
            if dropped == 0 {
                break;
            }
            tokio::time::sleep(REMOTE_DELETION_SETTLE).await;
            let again = self.remote.pull(cursor).await?;
            snapshot = merge_looks(snapshot, again);
            let now = self.tracked_dropped(&snapshot);
            if now <= dropped {
                break;
            }
            tracing::debug!(
                before = dropped,
                now,
                "the backend is still deleting; looking again"
            );
            dropped = now;
        }
        Ok(snapshot)
    }

    /// How many tracked documents a snapshot says are gone.
    fn tracked_dropped(&self, snapshot: &Snapshot) -> usize {
        let ledger = self.ledger();
        let bases = ledger.bases();
        let sent: BTreeSet<&Key> = snapshot.documents.iter().map(|d| &d.entry.key).collect();
        let removed = snapshot
            .removed
            .iter()
            .filter(|k| bases.contains_key(*k) && !sent.contains(k))
            .count();
        match snapshot.complete {
            true => bases.keys().filter(|k| !sent.contains(k)).count(),
            false => removed,
        }
    }

    /// Takes the deletions out of a pull's items when they look like a
    /// wipe, queues the workspace's copies to be written back, and records
    /// the refusal for `status`. Returns the items to settle.
    pub(crate) fn guard_remote_deletions(
        &self,
        items: Vec<Item>,
    ) -> Result<Vec<Item>, StorehostError> {
        let (tracked_auths, deleting) = {
            let ledger = self.ledger();
            let bases = ledger.bases();
            let deleting: BTreeSet<Key> = items
                .iter()
                .filter(|(key, state, _)| {
                    matches!(state, RemoteState::Absent) && bases.contains_key(key)
                })
                .map(|(key, _, _)| key.clone())
                .collect();
            let tracked = bases.keys().filter(|k| k.kind == Kind::Auth).count();
            (tracked, deleting)
        };
        let auths = deleting.iter().filter(|k| k.kind == Kind::Auth).count();
        let config = deleting.contains(&Key::config());
        let Some(wipe) = assess(tracked_auths, auths, config, self.options.max_delete_share) else {
            return Ok(items);
        };
        if self.take_acceptance()? {
            tracing::warn!(
                deleted = deleting.len(),
                "the backend deleted documents at once and an operator accepted it; mirroring the deletions (the files go to the trash)"
            );
            return Ok(items);
        }
        let written_back = self.write_back(&deleting)?;
        tracing::error!(
            deleted = deleting.len(),
            tracked = tracked_auths,
            reason = ?wipe,
            written_back,
            "REFUSING to mirror deletions from the backend: they look like a wipe. The workspace keeps every file and writes them back. \
             If the backend was emptied on purpose, run `storehost accept-remote-deletions` and delete them there again"
        );
        Ok(items
            .into_iter()
            .filter(|(key, _, _)| !deleting.contains(key))
            .collect())
    }

    /// Queues each document's local copy as a create, so the backend gets
    /// it back; records the refusal. Returns how many were queued.
    fn write_back(&self, keys: &BTreeSet<Key>) -> Result<usize, StorehostError> {
        let mut copies = Vec::new();
        for key in keys {
            match self.workspace.read(key) {
                Ok(Some(content)) => copies.push((key, content)),
                Ok(None) => {}
                Err(e) => tracing::error!(%key, "cannot read the local copy to write it back: {e}"),
            }
        }
        let record = format!("{} {}", keys.len(), super::now_ms());
        self.ledger().write(|tx| {
            for (key, content) in &copies {
                // No base: pushed as a create, refused if someone put
                // something there meanwhile (then decided as a conflict).
                tx.set_base(key, None)?;
                tx.enqueue(key, &Op::Put(content.clone()))?;
            }
            tx.set_meta(MetaName::RemoteDeletionsRefused, Some(&record))
        })?;
        self.wake.notify_one();
        Ok(copies.len())
    }

    /// True (once) when an operator accepted remote deletions within the
    /// last [`ACCEPTANCE_VALID_MS`].
    fn take_acceptance(&self) -> Result<bool, StorehostError> {
        let mut ledger = self.ledger();
        let Some(at) = ledger.meta(MetaName::AcceptRemoteDeletions)? else {
            return Ok(false);
        };
        ledger.write(|tx| tx.set_meta(MetaName::AcceptRemoteDeletions, None))?;
        let at: u64 = at.parse().unwrap_or_default();
        Ok(super::now_ms().saturating_sub(at) <= ACCEPTANCE_VALID_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::{Wipe, assess};

    #[test]
    fn single_deletions_pass_and_wipes_do_not() {
        assert_eq!(assess(10, 1, false, 0.25), None);
        assert_eq!(assess(1, 1, false, 0.25), None);
        assert_eq!(assess(10, 2, false, 0.25), None);
        assert_eq!(assess(10, 3, false, 0.25), Some(Wipe::TooMany));
        assert_eq!(assess(10, 10, false, 1.0), Some(Wipe::AllAuths));
        assert_eq!(assess(10, 0, true, 0.25), Some(Wipe::Config));
        assert_eq!(assess(0, 0, false, 0.25), None);
    }
}

/// A second look with the same cursor, on top of the first. A complete
/// second look stands alone. A delta may omit what the first look already
/// told: a plugin may report a change once per cursor (git reports a file
/// this instance pushed and someone then deleted only in the first look),
/// so what the first look said stays unless the second says otherwise.
fn merge_looks(first: Snapshot, again: Snapshot) -> Snapshot {
    if again.complete {
        return again;
    }
    let told: BTreeSet<Key> = again
        .documents
        .iter()
        .map(|d| d.entry.key.clone())
        .chain(again.removed.iter().cloned())
        .collect();
    let mut merged = Snapshot {
        documents: first
            .documents
            .into_iter()
            .filter(|d| !told.contains(&d.entry.key))
            .chain(again.documents)
            .collect(),
        removed: again.removed,
        cursor: again.cursor,
        complete: first.complete,
    };
    // In a complete snapshot absence is the removal.
    if !merged.complete {
        merged
            .removed
            .extend(first.removed.into_iter().filter(|k| !told.contains(k)));
    } else {
        merged.removed.clear();
    }
    merged
}

#[cfg(test)]
mod merge_tests {
    use super::merge_looks;
    use crate::model::{Document, Entry, Key, Snapshot};

    fn document(id: &str, version: &str) -> Document {
        Document {
            entry: Entry {
                key: Key::auth(id),
                version: version.into(),
                size: 1,
                modified_ms: None,
            },
            content: version.as_bytes().to_vec(),
        }
    }

    fn snapshot(documents: Vec<Document>, removed: &[&str], complete: bool) -> Snapshot {
        Snapshot {
            documents,
            removed: removed.iter().map(|id| Key::auth(*id)).collect(),
            cursor: "next".into(),
            complete,
        }
    }

    fn ids(keys: impl Iterator<Item = Key>) -> Vec<String> {
        let mut ids: Vec<String> = keys.map(|k| k.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_second_delta_keeps_what_only_the_first_told() {
        let first = snapshot(
            vec![document("a", "1"), document("b", "1")],
            &["gone"],
            false,
        );
        let again = snapshot(vec![document("b", "2")], &["a", "also-gone"], false);
        let merged = merge_looks(first, again);
        assert!(!merged.complete);
        assert_eq!(ids(merged.removed.into_iter()), ["a", "also-gone", "gone"]);
        let versions: Vec<(String, String)> = merged
            .documents
            .iter()
            .map(|d| (d.entry.key.id.clone(), d.entry.version.clone()))
            .collect();
        assert_eq!(versions, [("b".to_string(), "2".to_string())]);
    }

    #[test]
    fn a_complete_look_stands_alone_and_a_delta_updates_a_complete_first() {
        let first = snapshot(vec![document("a", "1")], &["x"], false);
        let again = snapshot(vec![document("b", "1")], &[], true);
        let merged = merge_looks(first, again);
        assert!(merged.complete && merged.removed.is_empty());
        assert_eq!(
            ids(merged.documents.into_iter().map(|d| d.entry.key)),
            ["b"]
        );

        let first = snapshot(vec![document("a", "1"), document("b", "1")], &[], true);
        let again = snapshot(vec![document("c", "1")], &["a"], false);
        let merged = merge_looks(first, again);
        assert!(merged.complete && merged.removed.is_empty());
        assert_eq!(
            ids(merged.documents.into_iter().map(|d| d.entry.key)),
            ["b", "c"]
        );
    }
}
