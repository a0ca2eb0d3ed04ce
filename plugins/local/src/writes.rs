//! Writes: every precondition of a batch checked under the directory's
//! write lock before anything is touched, then each file written
//! atomically (temp file, fsync, rename or hard link, directory fsync).

use crate::LocalStore;
use crate::errors::io_error;
use crate::layout::{Layout, content_version};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use storehost_sdk::dir_lock::WriteLock;
use storehost_sdk::layout::{TEMP_PREFIX, is_absent};
use storehost_sdk::{Change, Entry, Error, Key, Precondition};

impl LocalStore {
    pub(crate) fn apply_changes(&self, changes: Vec<Change>) -> Result<Vec<Option<Entry>>, Error> {
        let lock = WriteLock::acquire(&self.layout.lock_dir())?;
        let removed = self.removed_paths(&changes);
        // Check every precondition before touching anything, so a stale
        // batch changes nothing.
        for change in &changes {
            lock.keep_alive();
            self.check_precondition(change, &removed)?;
        }
        let mut written: Vec<Option<Entry>> = changes.iter().map(|_| None).collect();
        for index in removals_first(&self.layout, &changes) {
            lock.keep_alive();
            let change = &changes[index];
            let result = match change {
                // Created only if still absent, atomically: of several
                // writers racing to create a document, one wins.
                Change::Put(put) if matches!(put.precondition, Precondition::Absent) => {
                    self.layout.create(&put.key, &put.content).map(Some)
                }
                Change::Put(put) => self.layout.write(&put.key, &put.content).map(Some),
                Change::Remove(remove) => self.layout.remove(&remove.key).map(|()| None),
            };
            self.note_applied(change, &result);
            written[index] = result?;
        }
        Ok(written)
    }

    /// The files the batch removes.
    fn removed_paths(&self, changes: &[Change]) -> BTreeSet<PathBuf> {
        changes
            .iter()
            .filter_map(|change| match change {
                Change::Remove(remove) => self.layout.path(&remove.key).ok(),
                Change::Put(_) => None,
            })
            .collect()
    }

    /// Keeps the next delta right about what this instance wrote: a file
    /// it wrote and someone then deleted before the next pull must show as
    /// removed, so it is known from now on (and read again next time).
    fn note_applied(&self, change: &Change, written: &Result<Option<Entry>, Error>) {
        let mut seen = self.seen.borrow_mut();
        let Some(seen) = seen.as_mut() else {
            return;
        };
        match (change, written) {
            (Change::Put(_), Ok(Some(entry))) => seen.record_written(&entry.key, &entry.version),
            (Change::Remove(remove), Ok(_)) => seen.forget(&remove.key),
            _ => {}
        }
    }

    fn check_precondition(
        &self,
        change: &Change,
        removed: &BTreeSet<PathBuf>,
    ) -> Result<(), Error> {
        let (key, precondition) = (change.key(), change.precondition());
        // A put where no document can be is refused with the checks, so
        // none of its batch is written; a directory the batch empties of
        // its documents is no obstacle (the removals prune it first).
        if let Change::Put(_) = change
            && let Some(error) = self.layout.not_a_document(key)?
            && !self.layout.emptied_by(key, removed)
        {
            return Err(error);
        }
        let current = self
            .layout
            .read_bytes(key)?
            .map(|content| content_version(&content));
        if precondition.holds(current.as_deref()) {
            Ok(())
        } else {
            Err(Error::Conflict(key.clone()))
        }
    }
}

impl Layout {
    pub fn write(&self, key: &Key, content: &[u8]) -> Result<Entry, Error> {
        let path = self.path(key)?;
        let dir = path.parent().expect("a document path has a parent");
        fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        write_atomically(&path, content).map_err(|e| io_error("write", &path, e))?;
        self.entry(key, content)
    }

    /// Writes a document that must not exist yet: the content goes to a
    /// temp file that is then hard-linked into place, which fails if
    /// another writer created the document first (`conflict`).
    pub fn create(&self, key: &Key, content: &[u8]) -> Result<Entry, Error> {
        let path = self.path(key)?;
        let dir = path.parent().expect("a document path has a parent");
        fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let temp = write_temp(&path, content).map_err(|e| io_error("write", &path, e))?;
        let linked = fs::hard_link(&temp, &path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_dir(dir);
                self.entry(key, content)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(self.taken(key)?),
            Err(e) => Err(io_error("write", &path, e)),
        }
    }

    /// Why a create found its path taken: another writer's document (a
    /// conflict), or something that is no document, such as a symlink.
    fn taken(&self, key: &Key) -> Result<Error, Error> {
        Ok(self
            .not_a_document(key)?
            .unwrap_or_else(|| Error::Conflict(key.clone())))
    }

    pub fn remove(&self, key: &Key) -> Result<(), Error> {
        let path = self.path(key)?;
        if self.not_a_document(key)?.is_some() {
            // No document there, as the listing says; what is there is
            // not ours to remove.
            return Ok(());
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => return Err(io_error("remove", &path, e)),
        }
        if let Some(dir) = path.parent() {
            sync_dir(dir);
            self.prune_empty_dirs(dir);
        }
        Ok(())
    }

    /// The refusal for a key whose path holds something other than a
    /// regular file (a symlink, a directory) or lies beneath a linked
    /// directory: not a document, so never read as one, and not ours to
    /// replace or remove. Refused rather than reported as a conflict, which
    /// would be retried against it for ever.
    fn not_a_document(&self, key: &Key) -> Result<Option<Error>, Error> {
        let path = self.path(key)?;
        if let Some(dir) = self.linked_directory(key) {
            return Ok(Some(Error::Invalid(format!(
                "{} is a symlink, not a directory of documents; remove it to store {} there",
                dir.display(),
                path.display()
            ))));
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Ok(None);
        };
        let kind = match meta.file_type() {
            kind if kind.is_file() => return Ok(None),
            kind if kind.is_symlink() => "a symlink",
            kind if kind.is_dir() => "a directory",
            _ => "a special file",
        };
        Ok(Some(Error::Invalid(format!(
            "{} is {kind}, not a document; remove it to store this document there",
            path.display()
        ))))
    }

    /// Whether `key`'s path is a directory that holds nothing but
    /// documents in `removed` (and directories of them): the batch turns a
    /// directory of documents back into one document.
    fn emptied_by(&self, key: &Key, removed: &BTreeSet<PathBuf>) -> bool {
        if self.linked_directory(key).is_some() {
            return false;
        }
        let Ok(path) = self.path(key) else {
            return false;
        };
        fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) && holds_only(&path, removed)
    }

    /// Removes directories a nested id left empty, up to `auths/`.
    fn prune_empty_dirs(&self, mut dir: &Path) {
        let stops = [self.auth_dir(), self.meta_dir()];
        let Some(stop) = stops.iter().find(|stop| dir.starts_with(stop)) else {
            return;
        };
        while dir != stop.as_path() {
            if fs::remove_dir(dir).is_err() {
                break;
            }
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
    }
}

/// Whether every entry beneath `dir` is a file in `files` or a directory
/// of such (a link or anything else, or an unreadable entry, is not).
fn holds_only(dir: &Path, files: &BTreeSet<PathBuf>) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().all(|entry| {
        let Ok(entry) = entry else { return false };
        let path = entry.path();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => holds_only(&path, files),
            Ok(meta) if meta.is_file() => files.contains(&path),
            _ => false,
        }
    })
}

/// The order to apply a batch in: removals first, since a batch may turn a
/// directory of documents into one document. Each document comes once in
/// a batch, so this changes nothing else; a batch naming one twice keeps
/// its order.
fn removals_first(layout: &Layout, changes: &[Change]) -> Vec<usize> {
    let paths: BTreeSet<PathBuf> = changes
        .iter()
        .filter_map(|change| layout.path(change.key()).ok())
        .collect();
    let indices = 0..changes.len();
    if paths.len() < changes.len() {
        return indices.collect();
    }
    let is_removal = |&i: &usize| matches!(changes[i], Change::Remove(_));
    let (mut order, puts): (Vec<usize>, Vec<usize>) = indices.partition(is_removal);
    order.extend(puts);
    order
}

fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("a document path has a parent");
    let temp = write_temp(path, content)?;
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir);
    Ok(())
}

/// A durable temp file beside `path` holding `content`.
fn write_temp(path: &Path, content: &[u8]) -> io::Result<PathBuf> {
    let dir = path.parent().expect("a document path has a parent");
    let name = path
        .file_name()
        .expect("a document path has a name")
        .to_string_lossy();
    let temp = dir.join(format!("{TEMP_PREFIX}{name}.{}", unique_suffix()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(content)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(temp)
}

fn unique_suffix() -> String {
    use std::hash::BuildHasher;
    // Each `RandomState` is seeded from WASI's random source.
    let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
    format!("{random:016x}")
}

/// Makes a rename durable; some filesystems cannot open a directory for
/// syncing, and then the rename is as durable as the platform allows.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}
