//! One commit per `apply`, made on the head the preconditions were checked
//! against and pushed fast-forward only (or, squashing, with a lease on
//! that head). A rejected push means another writer got there first: fetch,
//! check again, make the commit again on the new head, retry with backoff.

use crate::GitStore;
use crate::errors::{Push, push_outcome};
use crate::layout::{File, Known};
use storehost_sdk::capabilities::git::{Fetched, FileChange, PushMode};
use storehost_sdk::paths::{key_of, path_of};
use storehost_sdk::{Change, Entry, Error, host_error};

/// Pushes tried per `apply` before the host is told to retry later.
const ATTEMPTS: u32 = 8;
/// Most ids a commit message names one per line (the host's batches are
/// smaller, so in practice every id is named).
const NAMED_IN_MESSAGE: usize = 500;

pub fn apply(
    store: &GitStore,
    changes: &[Change],
    message: &str,
) -> Result<Vec<Option<Entry>>, Error> {
    let paths = changes
        .iter()
        .map(|change| path_of(change.key()))
        .collect::<Result<Vec<_>, _>>()?;
    let message = commit_message(message, changes, &paths);
    if store.known.borrow().head.is_none() {
        store.sync()?;
    }
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            backoff(attempt);
            store.sync()?;
        }
        check_preconditions(store, changes, &paths)?;
        match commit_and_push(store, changes, &paths, &message)? {
            Some(entries) => return Ok(entries),
            None => continue,
        }
    }
    Err(Error::Unavailable(format!(
        "the branch kept moving: {ATTEMPTS} pushes were rejected; retrying later"
    )))
}

/// Every precondition against the head's tree; the first that fails is a
/// conflict and nothing is written.
fn check_preconditions(
    store: &GitStore,
    changes: &[Change],
    paths: &[String],
) -> Result<(), Error> {
    let known = store.known.borrow();
    for (change, path) in changes.iter().zip(paths) {
        let current = known.files.get(path).map(|f| f.blob.as_str());
        if !change.precondition().holds(current) {
            return Err(Error::Conflict(change.key().clone()));
        }
    }
    Ok(())
}

/// `Ok(None)` when the push was rejected (the branch moved).
fn commit_and_push(
    store: &GitStore,
    changes: &[Change],
    paths: &[String],
    message: &str,
) -> Result<Option<Vec<Option<Entry>>>, Error> {
    let head = store.known.borrow().head.clone();
    let file_changes: Vec<FileChange> = changes
        .iter()
        .zip(paths)
        .map(|(change, path)| match change {
            Change::Put(put) => FileChange::Write((path.clone(), put.content.clone())),
            Change::Remove(_) => FileChange::Remove(path.clone()),
        })
        .collect();
    let squash = store.squash && head.is_some();
    let committed = store
        .repo
        .commit(head.as_deref(), &file_changes, message, squash)
        .map_err(host_error)?;
    let mode = match (&head, squash) {
        (Some(head), true) => PushMode::Lease(head.clone()),
        _ => PushMode::FastForward,
    };
    // A change that changed nothing made no commit: nothing to push.
    let unchanged = head.as_deref() == Some(committed.commit.as_str());
    let pushed = match unchanged {
        true => Ok(()),
        false => store.repo.push(&committed.commit, &mode),
    };
    if let Push::BranchMoved(why) = push_outcome(pushed)? {
        storehost_sdk::log::debug(&format!(
            "push rejected, trying again on the new head: {why}"
        ));
        return Ok(None);
    }
    let mut known = store.known.borrow_mut();
    let mut entries = Vec::with_capacity(changes.len());
    for ((change, path), blob) in changes.iter().zip(paths).zip(committed.blobs) {
        match (change, blob) {
            (Change::Put(put), Some(blob)) => {
                let file = File {
                    blob,
                    size: put.content.len() as u64,
                };
                entries.push(Some(crate::layout::entry(put.key.clone(), &file)));
                known.files.insert(path.clone(), file);
            }
            _ => {
                known.files.remove(path);
                entries.push(None);
            }
        }
    }
    known.head = Some(committed.commit);
    store.written.borrow_mut().extend(paths.iter().cloned());
    Ok(Some(entries))
}

/// The host's message as the subject; for a batch, one line per change.
fn commit_message(subject: &str, changes: &[Change], paths: &[String]) -> String {
    let subject = if subject.trim().is_empty() {
        "Update documents"
    } else {
        subject.trim()
    };
    if changes.len() < 2 {
        return subject.to_string();
    }
    let mut lines: Vec<String> = changes
        .iter()
        .zip(paths)
        .take(NAMED_IN_MESSAGE)
        .map(|(change, path)| match change {
            Change::Put(_) => format!("update {path}"),
            Change::Remove(_) => format!("delete {path}"),
        })
        .collect();
    if changes.len() > NAMED_IN_MESSAGE {
        lines.push(format!("and {} more", changes.len() - NAMED_IN_MESSAGE));
    }
    format!("{subject}\n\n{}", lines.join("\n"))
}

/// 20 ms doubling per attempt, plus jitter, so writers that collided do not
/// collide again in step.
fn backoff(attempt: u32) {
    use std::hash::{BuildHasher, RandomState};
    let base = 20u64 << attempt.min(5);
    let jitter = RandomState::new().hash_one(attempt) % base;
    std::thread::sleep(std::time::Duration::from_millis(base + jitter));
}

impl GitStore {
    /// In history mode, a head we knew that is no longer in the branch's
    /// history means someone rewrote (or deleted) the branch. Documents
    /// the rewrite dropped are committed again on top of it; the rest of
    /// the rewrite stands. Returns the head to use. A restore that could
    /// not be pushed is tried again at the next sync.
    pub(crate) fn settle_rewrite(&self, fetched: Fetched) -> Result<Option<String>, Error> {
        let Fetched { head, previous } = fetched;
        if self.squash {
            return Ok(head);
        }
        let Some(head) = head else {
            let Some(previous) = previous else {
                return Ok(None);
            };
            storehost_sdk::log::error(&format!(
                "the remote branch was deleted; restoring it at {previous}, the last head seen"
            ));
            self.repo
                .push(&previous, &PushMode::FastForward)
                .map_err(host_error)?;
            return Ok(Some(previous));
        };
        let rewritten = match previous {
            Some(previous)
                if previous != head
                    && !self
                        .repo
                        .is_ancestor(&previous, &head)
                        .map_err(host_error)? =>
            {
                Some(previous)
            }
            _ => None,
        };
        let Some(before) = rewritten.or_else(|| self.pending_rewrite.take()) else {
            return Ok(Some(head));
        };
        match self.restore_dropped(&before, &head) {
            Ok(head) => Ok(Some(head)),
            Err(e) => {
                *self.pending_rewrite.borrow_mut() = Some(before);
                Err(e)
            }
        }
    }

    /// Commits again, on top of `head`, the documents `before` had and
    /// `head` lacks; returns the new head.
    fn restore_dropped(&self, before: &str, head: &str) -> Result<String, Error> {
        let old = self.repo.tree(before).map_err(host_error)?;
        let new = Known::new(
            Some(head.to_string()),
            self.repo.tree(head).map_err(host_error)?,
        );
        let dropped: Vec<(String, String)> = old
            .into_iter()
            .filter(|e| key_of(&e.path).is_some() && !new.files.contains_key(&e.path))
            .map(|e| (e.path, e.blob))
            .collect();
        if dropped.is_empty() {
            storehost_sdk::log::warn(&format!(
                "the remote branch was rewritten (it was at {before}, now {head}); no document was dropped"
            ));
            return Ok(head.to_string());
        }
        let restored = self.restore(head, &dropped)?;
        storehost_sdk::log::error(&format!(
            "the remote branch was rewritten (it was at {before}, now {head}) and {} document(s) were dropped; they are committed again in {restored}: {}",
            dropped.len(),
            dropped
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(restored)
    }

    fn restore(&self, head: &str, dropped: &[(String, String)]) -> Result<String, Error> {
        let blobs: Vec<String> = dropped.iter().map(|(_, b)| b.clone()).collect();
        let contents = self.repo.read_many(&blobs).map_err(host_error)?;
        let changes: Vec<FileChange> = dropped
            .iter()
            .zip(contents)
            .map(|((path, _), content)| FileChange::Write((path.clone(), content)))
            .collect();
        let message = format!(
            "Restore {} document(s) dropped by a rewrite of the branch\n\n{}",
            dropped.len(),
            dropped
                .iter()
                .map(|(p, _)| format!("restore {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let commit = self
            .repo
            .commit(Some(head), &changes, &message, false)
            .map_err(host_error)?;
        let pushed = self.repo.push(&commit.commit, &PushMode::FastForward);
        match push_outcome(pushed)? {
            Push::Done => Ok(commit.commit),
            Push::BranchMoved(why) => Err(Error::Unavailable(format!(
                "restoring documents after a rewrite raced another writer: {why}"
            ))),
        }
    }
}
