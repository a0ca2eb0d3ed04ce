//! One writer at a time per directory, for backends that keep documents as
//! files. An `apply` that checks preconditions and then renames files is not
//! atomic: two instances on one directory (two hosts on a shared disk) could
//! both see their precondition hold, and the later rename would silently
//! replace the earlier write. Hold a [`WriteLock`] across the check and the
//! writes. The lock is a file
//! created exclusively, which WASI offers; a lock left by a writer that died
//! is broken once it is older than any call may run.

use crate::Error;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Longer than the host's default call deadline plus its grace.
const STALE_AFTER: Duration = Duration::from_secs(120);
/// How long a writer waits for another before answering `unavailable`.
const WAIT_AT_MOST: Duration = Duration::from_secs(20);
const RETRY_EVERY: Duration = Duration::from_millis(2);

pub struct WriteLock {
    path: PathBuf,
}

impl WriteLock {
    /// Takes `dir/apply.lock` (creating `dir`), waiting up to 20 s for
    /// another writer; released on drop.
    pub fn acquire(dir: &Path) -> Result<WriteLock, Error> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("apply.lock");
        let started = SystemTime::now();
        loop {
            match fs::File::create_new(&path) {
                Ok(mut file) => {
                    // Who holds it, for an operator looking at a stuck lock.
                    let _ = writeln!(file, "storehost local plugin apply");
                    return Ok(WriteLock { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_stale(&path) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed().unwrap_or_default() > WAIT_AT_MOST {
                        return Err(Error::Unavailable(format!(
                            "another writer has held {} for over {} s",
                            path.display(),
                            WAIT_AT_MOST.as_secs()
                        )));
                    }
                    std::thread::sleep(RETRY_EVERY);
                }
                Err(e) => {
                    return Err(Error::Unavailable(format!(
                        "taking the write lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

fn is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|taken| taken.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER)
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
