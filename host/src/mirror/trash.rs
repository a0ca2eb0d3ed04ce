//! The trash: every workspace file the host replaced or deleted is kept
//! under `.storehost/trash/` for the retention period
//! (`STOREHOST_TRASH_DAYS`), listed in the ledger. A version comes back
//! with `storehost restore ID`, written into the workspace as the proxy
//! writes, so the normal write path takes it (at once while `serve` runs,
//! at the next start otherwise).

use super::hash::doc_hash;
use super::ledger::{Ledger, LedgerError, LedgerTx, TrashEntry};
use super::paths::{key_of_path, path_key};
use super::workspace::{Swap, TrashedFile, Workspace, path_in_trash_name, validate_document};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::Key;

/// Every entry still kept, oldest first.
pub fn list(workspace: &Workspace) -> Result<Vec<TrashEntry>, StorehostError> {
    Ok(Ledger::open(&workspace.state_dir())?.trash()?)
}

/// Puts trash entry `id` back as its document's file; the file it replaces
/// goes to the trash in turn. Returns the document's key.
pub fn restore(workspace: &Workspace, id: u64) -> Result<Key, StorehostError> {
    let mut ledger = Ledger::open(&workspace.state_dir())?;
    let entry = ledger
        .trash()?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or(StorehostError::NoSuchTrashEntry(id))?;
    let key = key_of_path(&entry.path).ok_or(StorehostError::NoSuchTrashEntry(id))?;
    let content = workspace.read_trashed(&entry.file)?;
    validate_document(&key, content.clone())?;
    // Swapped in only over the file as it is now, which is kept too.
    loop {
        let current = workspace.read(&key)?;
        let expected = current.as_deref().map(|c| doc_hash(&key, c));
        match workspace.replace_if(&key, &content, expected.as_deref(), Durability::Now)? {
            Swap::Done { previous } => {
                if let Some(previous) = previous {
                    let reason = format!("replaced by restoring trash entry {id}");
                    ledger.write(|tx| {
                        tx.add_trash(&entry.path, &previous.file, &reason, previous.size)
                    })?;
                }
                return Ok(key);
            }
            Swap::LocalChanged { kept } => {
                ledger.write(|tx| record_kept(tx, &key, kept))?;
            }
        }
    }
}

/// Why a version the proxy wrote during a swap is in the trash.
const KEPT_DURING_SWAP: &str = "written by the proxy while the host was replacing it";

/// Lists the version a swap kept, if it kept one (see [`Swap::LocalChanged`]).
pub(crate) fn record_kept(
    tx: &LedgerTx<'_>,
    key: &Key,
    kept: Option<TrashedFile>,
) -> Result<(), LedgerError> {
    if let Some(kept) = kept {
        tx.add_trash(&path_key(key), &kept.file, KEPT_DURING_SWAP, kept.size)?;
    }
    Ok(())
}

/// Files in the trash directory that no trash entry lists, with their
/// sizes.
pub fn unlisted(workspace: &Workspace) -> Result<Vec<(String, u64)>, StorehostError> {
    unlisted_in(workspace, &Ledger::open(&workspace.state_dir())?)
}

/// [`unlisted`] with a ledger already open.
pub fn unlisted_in(
    workspace: &Workspace,
    ledger: &Ledger,
) -> Result<Vec<(String, u64)>, StorehostError> {
    let listed: std::collections::HashSet<String> = ledger
        .trash()?
        .into_iter()
        .map(|entry| entry.file)
        .collect();
    let mut files = workspace.trash_files()?;
    files.retain(|(file, _)| !listed.contains(file));
    Ok(files)
}

/// A file in the trash directory listed again by [`adopt_unlisted`].
pub(crate) struct Adopted {
    /// The document's path, as the file's name carries it.
    pub path: String,
    /// Its name in the trash directory.
    pub file: String,
}

/// Lists again the files in the trash directory that have no entry: a
/// process that died between moving a file there and writing its entry
/// left them. Run when a host opens its workspace, before it moves any
/// file; `also` adds to each file's entry in the same transaction.
/// Returns how many were listed.
pub(crate) fn adopt_unlisted(
    workspace: &Workspace,
    ledger: &mut Ledger,
    also: impl Fn(&LedgerTx<'_>, &Adopted) -> Result<(), LedgerError>,
) -> Result<usize, StorehostError> {
    let (mut adoptable, mut nameless) = (Vec::new(), 0);
    for (file, size) in unlisted_in(workspace, ledger)? {
        match path_in_trash_name(&file) {
            Some(path) => adoptable.push((Adopted { path, file }, size)),
            None => nameless += 1,
        }
    }
    if nameless > 0 {
        tracing::info!(
            files = nameless,
            "files in the trash directory name no document and stay unlisted"
        );
    }
    if adoptable.is_empty() {
        return Ok(0);
    }
    ledger.write(|tx| {
        for (adopted, size) in &adoptable {
            let reason = "found unlisted after an interrupted run";
            tx.add_trash(&adopted.path, &adopted.file, reason, *size)?;
            also(tx, adopted)?;
        }
        Ok(())
    })?;
    tracing::warn!(
        files = adoptable.len(),
        "kept files without a trash entry (a run was interrupted) are listed again"
    );
    Ok(adoptable.len())
}
