//! The on-disk layout shared by the host's workspace and the local plugin.

use crate::ids::check_auth_id;
use std::io;
use std::path::Path;

/// Prefix of temp files written during atomic replaces; never a document.
pub const TEMP_PREFIX: &str = ".storehost-tmp.";

/// Every valid auth id under `auth_dir` (recursively), sorted. Temp files
/// and names that are not valid ids are skipped; a missing dir is empty.
pub fn collect_auth_ids(auth_dir: &Path) -> io::Result<Vec<String>> {
    // A file that vanishes while the directory is read (another writer's
    // temp file, renamed away) fails the listing under WASI: read again.
    let mut attempts = 0;
    loop {
        let mut ids = Vec::new();
        match collect(auth_dir, "", &mut ids) {
            Ok(()) => {
                ids.sort();
                return Ok(ids);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

fn collect(dir: &Path, prefix: &str, ids: &mut Vec<String>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // (a vanished entry mid-iteration is retried by the caller)
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let id = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            // Gone since the listing: it is not there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if file_type.is_dir() {
            collect(&entry.path(), &id, ids)?;
        } else if file_type.is_file() && check_auth_id(&id).is_ok() {
            ids.push(id);
        }
    }
    Ok(())
}
