//! The directory layout and atomic file operations.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use storehost_sdk::ids::check_auth_id;
use storehost_sdk::layout::{TEMP_PREFIX, collect_auth_ids};
use storehost_sdk::{CONFIG_ID, Document, Entry, Error, Key, Kind};

use crate::seen::FileStat;

pub fn content_version(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &str) -> Self {
        Layout {
            root: PathBuf::from(root),
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    fn auth_dir(&self) -> PathBuf {
        self.root.join("auths")
    }

    /// The host's metadata; beside the documents, never inside them.
    fn meta_dir(&self) -> PathBuf {
        self.root.join(".storehost").join("meta")
    }

    /// Where writers take turns (see `lock.rs`); beside the documents.
    pub fn lock_dir(&self) -> PathBuf {
        self.root.join(".storehost")
    }

    pub fn create_dirs(&self) -> Result<(), Error> {
        for dir in [self.config_dir(), self.auth_dir()] {
            fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
        }
        Ok(())
    }

    pub fn check_root(&self) -> Result<(), Error> {
        fs::metadata(&self.root)
            .map(|_| ())
            .map_err(|e| io_error("inspect", &self.root, e))
    }

    /// The file a key lives in; refuses ids that would leave the layout.
    fn path(&self, key: &Key) -> Result<PathBuf, Error> {
        match key.kind {
            Kind::Config if key.id == CONFIG_ID => Ok(self.config_dir().join(CONFIG_ID)),
            Kind::Config => Err(Error::Invalid(format!(
                "config id must be `{CONFIG_ID}`, not {:?}",
                key.id
            ))),
            Kind::Auth => Ok(self.auth_dir().join(checked_id(&key.id)?)),
            Kind::Meta => Ok(self.meta_dir().join(checked_id(&key.id)?)),
        }
    }

    /// Every key present, config first, auths in sorted order.
    pub fn keys(&self) -> Result<Vec<Key>, Error> {
        let mut keys = Vec::new();
        if self.config_dir().join(CONFIG_ID).is_file() {
            keys.push(Key {
                kind: Kind::Config,
                id: CONFIG_ID.into(),
            });
        }
        for (kind, dir) in [(Kind::Auth, self.auth_dir()), (Kind::Meta, self.meta_dir())] {
            let ids = collect_auth_ids(&dir).map_err(|e| io_error("list", &dir, e))?;
            keys.extend(ids.into_iter().map(|id| Key { kind, id }));
        }
        Ok(keys)
    }

    pub fn read_bytes(&self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(content) => Ok(Some(content)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    pub fn read(&self, key: &Key) -> Result<Option<Document>, Error> {
        let Some(content) = self.read_bytes(key)? else {
            return Ok(None);
        };
        let entry = self.entry(key, &content)?;
        Ok(Some(Document { entry, content }))
    }

    /// The file's modification time and size; None when it is gone.
    pub fn stat(&self, key: &Key) -> Result<Option<FileStat>, Error> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(FileStat {
                modified: meta.modified().ok(),
                size: meta.len(),
            })),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("inspect", &path, e)),
        }
    }

    /// Reads a document whose stat was just taken (so it is not taken
    /// twice).
    pub fn read_stated(&self, key: &Key, stat: &FileStat) -> Result<Option<Document>, Error> {
        let Some(content) = self.read_bytes(key)? else {
            return Ok(None);
        };
        let entry = Entry {
            key: key.clone(),
            version: content_version(&content),
            size: content.len() as u64,
            modified_ms: stat.modified_ms(),
        };
        Ok(Some(Document { entry, content }))
    }

    fn entry(&self, key: &Key, content: &[u8]) -> Result<Entry, Error> {
        let path = self.path(key)?;
        let modified_ms = fs::metadata(&path)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map(|age| age.as_millis() as i64);
        Ok(Entry {
            key: key.clone(),
            version: content_version(content),
            size: content.len() as u64,
            modified_ms,
        })
    }

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
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::Conflict(key.clone())),
            Err(e) => Err(io_error("write", &path, e)),
        }
    }

    pub fn remove(&self, key: &Key) -> Result<(), Error> {
        let path = self.path(key)?;
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

fn checked_id(id: &str) -> Result<&str, Error> {
    check_auth_id(id).map_err(|problem| Error::Invalid(format!("id {id:?}: {problem}")))?;
    Ok(id)
}

fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn io_error(action: &str, path: &Path, error: io::Error) -> Error {
    let message = format!("cannot {action} {}: {error}", path.display());
    match error.kind() {
        io::ErrorKind::PermissionDenied => Error::Denied(message),
        _ => Error::Internal(message),
    }
}
