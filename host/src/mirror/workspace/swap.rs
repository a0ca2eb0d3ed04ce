//! Guarded swaps: the host replaces or removes a workspace file only if it
//! is still what the decision saw, while the proxy may be writing the same
//! file at any moment, by rename or in place. Whatever the host takes out
//! goes to the trash directory; whatever the proxy wrote last stays live.

use super::{TRASH_DIR, Workspace, WorkspaceError, io_error, read_error, symlink};
use crate::fsutil::Durability;
use crate::fsutil::beneath::Dir;
use crate::mirror::hash::doc_hash;
use crate::model::Key;
use rustix::fs::RenameFlags;
use std::io;
use std::path::Path;

/// How a guarded replace or removal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// Done; the previous file (if any) is now `previous` in the trash
    /// directory.
    Done { previous: Option<TrashedFile> },
    /// The file is not what the decision saw (the proxy changed it): left
    /// alone. `kept` is a version the proxy wrote while the swap was under
    /// way and wrote over again: kept in the trash directory, not lost.
    LocalChanged { kept: Option<TrashedFile> },
}

impl Swap {
    pub const LOCAL_CHANGED: Swap = Swap::LocalChanged { kept: None };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashedFile {
    /// Name under the trash directory.
    pub file: String,
    pub size: u64,
}

/// How many times a swap puts the proxy's newest version back before it
/// gives up chasing a proxy that rewrites the file faster than that.
const MAX_PUT_BACKS: usize = 8;

/// A file and the directory it is in.
struct At<'a> {
    dir: &'a Dir,
    name: &'a str,
}

impl Workspace {
    /// Where replaced and deleted files are kept.
    pub fn trash_dir(&self) -> std::path::PathBuf {
        self.state_dir().join(TRASH_DIR)
    }

    /// Every file kept in the trash directory, with its size.
    pub fn trash_files(&self) -> Result<Vec<(String, u64)>, WorkspaceError> {
        let dir = self.trash_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_error("list", &dir, source)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| io_error("list", &dir, source))?;
            let metadata = entry
                .metadata()
                .map_err(|source| io_error("list", &dir, source))?;
            if let (true, Some(name)) = (metadata.is_file(), entry.file_name().to_str()) {
                files.push((name.to_string(), metadata.len()));
            }
        }
        Ok(files)
    }

    /// The content of trash file `file`. A link there is refused, not
    /// followed, so a link planted in the trash cannot bring another
    /// file's content into the workspace by a restore.
    pub fn read_trashed(&self, file: &str) -> Result<Vec<u8>, WorkspaceError> {
        let trash = self.trash()?;
        let path = trash.path_of(file);
        trash.read(file).map_err(|source| read_error(&path, source))
    }

    /// Moves trash file `file` back as `key`'s file, only where there is
    /// none; returns whether it moved. A handle on it (the proxy's) is then
    /// a handle on the live file again.
    pub fn untrash_if_absent(&self, key: &Key, file: &str) -> Result<bool, WorkspaceError> {
        let (dir, name) = self.document_dir(key, true)?;
        let path = dir.path_of(&name);
        match self
            .trash()?
            .rename(file, &dir, &name, RenameFlags::NOREPLACE)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(source) => return Err(io_error("restore", &path, source)),
        }
        dir.sync()
            .map_err(|source| io_error("sync", &path, source))?;
        Ok(true)
    }

    /// Writes `content` as `key`'s file only if the file is still what the
    /// decision saw: absent (`expected` None) or with that content hash.
    /// The previous file is moved into the trash, never deleted.
    ///
    /// The swap is one `renameat2(RENAME_EXCHANGE)`, so there is no window
    /// in which a file the proxy writes is overwritten unseen: what comes
    /// out is checked, and put back if it is not what was expected.
    pub fn replace_if(
        &self,
        key: &Key,
        content: &[u8],
        expected: Option<&str>,
        durability: Durability,
    ) -> Result<Swap, WorkspaceError> {
        let (dir, name) = self.document_dir(key, true)?;
        let path = dir.path_of(&name);
        // Where the file must be absent, the no-replace rename below
        // refuses a link too, and is told apart only then.
        if expected.is_some() && dir.is_link(Path::new(&name)) {
            return Err(symlink(&path));
        }
        let temp = dir
            .write_temp(&name, content, durability)
            .map_err(|source| io_error("write", &path, source))?;
        let outcome = match expected {
            None => match create_in_place(&dir, &temp, &name) {
                Ok(()) => Ok(Swap::Done { previous: None }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if dir.is_link(Path::new(&name)) {
                        Err(symlink(&path))
                    } else if dir.is_dir(&name) {
                        Err(WorkspaceError::DirectoryInTheWay {
                            path: path.display().to_string(),
                        })
                    } else {
                        Ok(Swap::LOCAL_CHANGED)
                    }
                }
                Err(source) => Err(io_error("write", &path, source)),
            },
            Some(expected) => self.exchange_checked(key, &dir, &temp, &name, content, expected),
        };
        if !matches!(outcome, Ok(Swap::Done { previous: None })) {
            // Whatever is left at the temp name is ours and unneeded.
            let _ = dir.remove(&temp);
        }
        let Ok(Swap::Done { previous }) = outcome else {
            return outcome;
        };
        if durability == Durability::Now {
            dir.sync()
                .map_err(|source| io_error("sync", &path, source))?;
        }
        match (previous, expected) {
            (Some(previous), Some(expected)) => {
                let document = At {
                    dir: &dir,
                    name: &name,
                };
                self.reclaim_if_rewritten(key, document, previous, expected, content)
            }
            (previous, _) => Ok(Swap::Done { previous }),
        }
    }

    fn exchange_checked(
        &self,
        key: &Key,
        dir: &Dir,
        temp: &str,
        name: &str,
        content: &[u8],
        expected: &str,
    ) -> Result<Swap, WorkspaceError> {
        let path = dir.path_of(name);
        let exchange = || dir.rename(temp, dir, name, RenameFlags::EXCHANGE);
        match exchange() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Swap::LOCAL_CHANGED),
            Err(source) => return Err(io_error("write", &path, source)),
        }
        race::point(race::Point::Exchanged, &path);
        // `temp` now holds what the workspace had; a link that appeared
        // there is put back unread.
        let previous = match dir.read(temp) {
            Ok(previous) => previous,
            Err(source) => {
                exchange().map_err(|source| io_error("restore", &path, source))?;
                return Err(read_error(&path, source));
            }
        };
        if doc_hash(key, &previous) == expected {
            return self
                .move_to_trash(key, dir, temp, previous.len())
                .map(|previous| Swap::Done {
                    previous: Some(previous),
                });
        }
        let displaced = At { dir, name: temp };
        let live = At { dir, name };
        let left = put_back_newest(&displaced, &live, previous, content.to_vec())?;
        let mut kept = None;
        if left != content {
            tracing::warn!(%key, "the proxy rewrote a file while it was being replaced; the version it wrote over is in the trash");
            kept = Some(self.move_to_trash(key, dir, temp, left.len())?);
        }
        Ok(Swap::LocalChanged { kept })
    }

    /// After a swap, the replaced file (now in the trash) is checked once
    /// more: a proxy that opened it before the swap may have written to it
    /// since. Its write is newer than the host's, so it goes back live.
    fn reclaim_if_rewritten(
        &self,
        key: &Key,
        document: At<'_>,
        previous: TrashedFile,
        expected: &str,
        content: &[u8],
    ) -> Result<Swap, WorkspaceError> {
        let path = document.dir.path_of(document.name);
        race::point(race::Point::Trashed, &path);
        let trash = self.trash()?;
        let now = match trash.read(&previous.file) {
            Ok(now) => now,
            // Gone or unreadable: nothing of the proxy's can be in it.
            Err(_) => {
                return Ok(Swap::Done {
                    previous: Some(previous),
                });
            }
        };
        if doc_hash(key, &now) == expected {
            return Ok(Swap::Done {
                previous: Some(previous),
            });
        }
        tracing::warn!(%key, "the proxy wrote to a file as it was being replaced; its version is put back");
        let in_trash = At {
            dir: &trash,
            name: &previous.file,
        };
        let left = put_back_newest(&in_trash, &document, now, content.to_vec())?;
        document
            .dir
            .sync()
            .map_err(|source| io_error("sync", &path, source))?;
        if left == content {
            // The host's own version: the backend has it.
            trash
                .remove(&previous.file)
                .map_err(|source| io_error("remove", &trash.path_of(&previous.file), source))?;
            return Ok(Swap::LOCAL_CHANGED);
        }
        Ok(Swap::LocalChanged {
            kept: Some(TrashedFile {
                file: previous.file,
                size: left.len() as u64,
            }),
        })
    }

    /// Deletes `key`'s file only if it still has content hash `expected`;
    /// the file is moved into the trash.
    pub fn remove_if(&self, key: &Key, expected: &str) -> Result<Swap, WorkspaceError> {
        let (dir, name) = self.document_dir(key, true)?;
        let path = dir.path_of(&name);
        if dir.is_link(Path::new(&name)) {
            return Err(symlink(&path));
        }
        let trash = self.trash()?;
        let file = trash_name(key);
        match dir.rename(&name, &trash, &file, RenameFlags::empty()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Swap::LOCAL_CHANGED),
            Err(source) => return Err(io_error("remove", &path, source)),
        }
        let as_decided = |read: &io::Result<Vec<u8>>| matches!(read, Ok(content) if doc_hash(key, content) == expected);
        let mut previous = trash.read(&file);
        if as_decided(&previous) {
            dir.sync()
                .map_err(|source| io_error("sync", &path, source))?;
            // A proxy that opened the file before it moved may have
            // written to it since: checked once more, after the sync.
            race::point(race::Point::Trashed, &path);
            previous = trash.read(&file);
            if let (true, Ok(content)) = (as_decided(&previous), &previous) {
                return Ok(Swap::Done {
                    previous: Some(TrashedFile {
                        file,
                        size: content.len() as u64,
                    }),
                });
            }
        }
        // Changed since the decision (or a link appeared): put it back
        // unless the proxy has written yet another version there (then this
        // one stays in the trash, recoverable).
        race::point(race::Point::PuttingBack, &path);
        let kept = match trash.rename(&file, &dir, &name, RenameFlags::NOREPLACE) {
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(TrashedFile {
                size: previous.as_ref().map_or(0, |p| p.len() as u64),
                file,
            }),
            Err(source) => return Err(io_error("restore", &path, source)),
        };
        match previous {
            Err(source) => Err(read_error(&path, source)),
            Ok(_) => Ok(Swap::LocalChanged { kept }),
        }
    }

    fn move_to_trash(
        &self,
        key: &Key,
        dir: &Dir,
        file: &str,
        size: usize,
    ) -> Result<TrashedFile, WorkspaceError> {
        let trash = self.trash()?;
        let name = trash_name(key);
        dir.rename(file, &trash, &name, RenameFlags::empty())
            .map_err(|source| io_error("keep in the trash", &dir.path_of(file), source))?;
        Ok(TrashedFile {
            file: name,
            size: size as u64,
        })
    }
}

/// Renames `temp` to `name` where nothing is. An empty directory there (a
/// directory of documents the backend turned back into one document) holds
/// nothing and goes; anything else stays and the rename is refused.
fn create_in_place(dir: &Dir, temp: &str, name: &str) -> io::Result<()> {
    match dir.rename(temp, dir, name, RenameFlags::NOREPLACE) {
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists && dir.remove_empty_dir(name).is_ok() =>
        {
            dir.rename(temp, dir, name, RenameFlags::NOREPLACE)
        }
        done => done,
    }
}

/// Makes the version at `from` (content `newest`) live at `live`, which
/// holds `placed` as far as the host knows. If the proxy wrote `live` in
/// the meantime, its write is newer still and goes back live instead.
/// Returns what is left at `from`: the version that is no longer live.
fn put_back_newest(
    from: &At<'_>,
    live: &At<'_>,
    mut newest: Vec<u8>,
    mut placed: Vec<u8>,
) -> Result<Vec<u8>, WorkspaceError> {
    let live_path = live.dir.path_of(live.name);
    let mut attempts = 0;
    loop {
        attempts += 1;
        race::point(race::Point::PuttingBack, &live_path);
        from.dir
            .rename(from.name, live.dir, live.name, RenameFlags::EXCHANGE)
            .map_err(|source| io_error("restore", &live_path, source))?;
        let displaced = from
            .dir
            .read(from.name)
            .map_err(|source| io_error("read", &live_path, source))?;
        if displaced == placed {
            return Ok(displaced);
        }
        if attempts == MAX_PUT_BACKS {
            tracing::warn!(path = %live_path.display(), "the proxy kept rewriting a file the host was restoring; its last version is in the trash");
            return Ok(displaced);
        }
        // The proxy wrote `displaced` after `placed` went live.
        placed = std::mem::replace(&mut newest, displaced);
    }
}

/// A kept file's name: when, by which process, and the document's path
/// (`%` and `/` escaped), so a copy whose ledger entry was never written
/// (the process died between the two steps) can be listed again. A path
/// too long for a file name keeps only its last part, and cannot be.
fn trash_name(key: &Key) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let escaped = key.to_string().replace('%', "%25").replace('/', "%2F");
    let name = match escaped.len() <= MAX_ESCAPED_PATH {
        true => escaped,
        false => key.id.rsplit('/').next().unwrap_or(&key.id).to_string(),
    };
    format!(
        "{}-{}-{}-{name}",
        crate::mirror::now_ms(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Room left in a 255-byte file name for the escaped path.
const MAX_ESCAPED_PATH: usize = 200;

/// The document path a kept file's name carries, if it carries one.
pub fn path_in_trash_name(file: &str) -> Option<String> {
    let escaped = file.splitn(4, '-').nth(3)?;
    let path = escaped.replace("%2F", "/").replace("%25", "%");
    crate::mirror::paths::key_of_path(&path).map(|_| path)
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;

/// Points inside a swap where a unit test can act as the proxy writing
/// (the real windows last microseconds); nothing in other builds.
pub(crate) mod race {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Point {
        /// The host's version is live; the replaced one not yet checked.
        Exchanged,
        /// The replaced version is in the trash and about to be checked
        /// once more.
        Trashed,
        /// A version is about to be put back live.
        PuttingBack,
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub fn point(_: Point, _: &std::path::Path) {}

    #[cfg(test)]
    pub use hook::{Guard, on, point};

    #[cfg(test)]
    mod hook {
        use super::Point;
        use std::path::{Path, PathBuf};
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicU64, Ordering};

        type Hook = Box<dyn FnMut(Point) + Send>;

        /// By document path: a swap may run on any thread (pulls swap on a
        /// pool), and tests run side by side, each in its own directory.
        static HOOKS: Mutex<Vec<(u64, PathBuf, Hook)>> = Mutex::new(Vec::new());

        fn hooks() -> std::sync::MutexGuard<'static, Vec<(u64, PathBuf, Hook)>> {
            HOOKS.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Runs `hook` at every point a swap of the file at `path` reaches,
        /// until the guard is dropped.
        pub fn on(path: &Path, hook: impl FnMut(Point) + Send + 'static) -> Guard {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            hooks().push((id, path.to_path_buf(), Box::new(hook)));
            Guard(id)
        }

        pub struct Guard(u64);

        impl Drop for Guard {
            fn drop(&mut self) {
                hooks().retain(|(id, ..)| *id != self.0);
            }
        }

        pub fn point(point: Point, path: &Path) {
            for (_, hooked, hook) in hooks().iter_mut() {
                if hooked == path {
                    hook(point);
                }
            }
        }
    }
}
