//! The on-disk layout shared by the host's workspace and the local plugin.

use crate::ids::check_auth_id;
use std::io;
use std::path::Path;

/// Prefix of temp files written during atomic replaces; never a document.
pub const TEMP_PREFIX: &str = ".storehost-tmp.";

/// Every valid auth id under `auth_dir` (recursively), sorted. Temp files
/// and names that are not valid ids are skipped; a missing dir is empty.
pub fn collect_auth_ids(auth_dir: &Path) -> io::Result<Vec<String>> {
    let mut ids = Vec::new();
    collect(auth_dir, "", &mut ids)?;
    ids.sort();
    Ok(ids)
}

fn collect(dir: &Path, prefix: &str, ids: &mut Vec<String>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let id = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect(&entry.path(), &id, ids)?;
        } else if file_type.is_file() && check_auth_id(&id).is_ok() {
            ids.push(id);
        }
    }
    Ok(())
}
