//! One writer at a time per directory, for backends that keep documents as
//! files. An `apply` that checks preconditions and then renames files is not
//! atomic: two instances on one directory (two hosts on a shared disk) could
//! both see their precondition hold, and the later rename would silently
//! replace the earlier write. Hold a [`WriteLock`] across the check and the
//! writes.
//!
//! The lock is a file created exclusively, which WASI offers (it has no
//! `flock`). Its holder rewrites it now and then ([`WriteLock::keep_alive`]);
//! a waiter that sees it unchanged for [`STALE_AFTER`] by its own clock takes
//! it for a dead writer's (a host killed mid-apply) and breaks it. Judging by
//! what the waiter saw change, not by file times, keeps clock skew between
//! hosts on a shared disk out of it.

use crate::Error;
use std::cell::Cell;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A lock unchanged for this long belongs to a writer that died.
pub const STALE_AFTER: Duration = Duration::from_secs(5);
/// How often a holder rewrites its lock; well inside [`STALE_AFTER`].
const REFRESH_EVERY: Duration = Duration::from_millis(500);
/// How long a writer waits for another before answering `unavailable`.
const WAIT_AT_MOST: Duration = Duration::from_secs(20);
const RETRY_EVERY: Duration = Duration::from_millis(2);

pub struct WriteLock {
    path: PathBuf,
    holder: String,
    beats: Cell<u64>,
    refreshed: Cell<Instant>,
}

impl WriteLock {
    /// Takes `dir/apply.lock` (creating `dir`), waiting up to 20 s for
    /// another writer; released on drop.
    pub fn acquire(dir: &Path) -> Result<WriteLock, Error> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("apply.lock");
        let started = Instant::now();
        let mut watched = Watched::default();
        loop {
            match fs::File::create_new(&path) {
                Ok(file) => return WriteLock::hold(path, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if watched.is_dead(&path) {
                        let _ = fs::remove_file(&path);
                        watched = Watched::default();
                        continue;
                    }
                    if started.elapsed() > WAIT_AT_MOST {
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

    fn hold(path: PathBuf, mut file: fs::File) -> Result<WriteLock, Error> {
        let holder = holder_id();
        let lock = WriteLock {
            path,
            holder,
            beats: Cell::new(0),
            refreshed: Cell::new(Instant::now()),
        };
        // Who holds it, for an operator looking at a stuck lock.
        file.write_all(lock.content().as_bytes())
            .map_err(|e| Error::Unavailable(format!("writing {}: {e}", lock.path.display())))?;
        Ok(lock)
    }

    /// Tells waiters this writer is alive. Cheap: call it between the
    /// writes of a batch; it rewrites the lock at most every 500 ms.
    pub fn keep_alive(&self) {
        if self.refreshed.get().elapsed() < REFRESH_EVERY {
            return;
        }
        self.beats.set(self.beats.get() + 1);
        self.refreshed.set(Instant::now());
        let _ = fs::write(&self.path, self.content());
    }

    fn content(&self) -> String {
        format!(
            "storehost apply lock, holder {}, beat {}\n",
            self.holder,
            self.beats.get()
        )
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What a waiter last saw in the lock file, and since when.
#[derive(Default)]
struct Watched {
    seen: Option<(Option<Vec<u8>>, Instant)>,
}

impl Watched {
    /// True once the lock has stayed the same for [`STALE_AFTER`].
    fn is_dead(&mut self, path: &Path) -> bool {
        let now = fs::read(path).ok();
        match &self.seen {
            Some((before, since)) if *before == now => since.elapsed() > STALE_AFTER,
            _ => {
                self.seen = Some((now, Instant::now()));
                false
            }
        }
    }
}

/// Tells two holders apart in the lock's content (a new holder's first
/// content differs from a dead one's last).
fn holder_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("{:016x}", RandomState::new().hash_one(0u8))
}
