//! One commit per `apply`, made on the head the preconditions were checked
//! against and pushed fast-forward only (or, squashing, with a lease on
//! that head). A rejected push means another writer got there first: fetch,
//! check again, make the commit again on the new head, retry with backoff.

use crate::GitStore;
use crate::tree::File;
use storehost_sdk::capabilities::git::{FileChange, PushMode};
use storehost_sdk::paths::path_of;
use storehost_sdk::{Change, Entry, Error, HostError, host_error};

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
    match pushed {
        Ok(()) => {}
        Err(HostError::Rejected(why)) => {
            storehost_sdk::log::debug(&format!(
                "push rejected, trying again on the new head: {why}"
            ));
            return Ok(None);
        }
        Err(e) => return Err(host_error(e)),
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
                entries.push(Some(crate::tree::entry(put.key.clone(), &file)));
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
