//! The trash: every workspace file the host replaced or deleted is kept
//! under `.storehost/trash/` for the retention period
//! (`STOREHOST_TRASH_DAYS`), listed in the ledger. A version comes back
//! with `storehost restore ID`, written into the workspace as the proxy
//! writes, so the normal write path takes it (at once while `serve` runs,
//! at the next start otherwise).

use super::hash::doc_hash;
use super::ledger::{Ledger, TrashEntry};
use super::paths::key_of_path;
use super::workspace::{Swap, Workspace, validate_document};
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
    let stored = workspace.trash_dir().join(&entry.file);
    let content = std::fs::read(&stored).map_err(|source| StorehostError::Io {
        path: stored.display().to_string(),
        source,
    })?;
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
            Swap::LocalChanged => continue,
        }
    }
}
