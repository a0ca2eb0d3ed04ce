//! The directory layout (`config/config.yaml`, `auths/<id>`, metadata
//! under `.storehost/meta/`) and reading documents from it.

use crate::errors::io_error;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fs;
use std::path::PathBuf;
use storehost_sdk::ids::{check_auth_id, is_cooldown_id};
use storehost_sdk::layout::{FileStat, FilesBeneath, is_absent, list_auth_files};
use storehost_sdk::{CONFIG_ID, Document, Entry, Error, Key, Kind};

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

    pub(crate) fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    pub(crate) fn auth_dir(&self) -> PathBuf {
        self.root.join("auths")
    }

    /// The host's metadata; beside the documents, never inside them.
    pub(crate) fn meta_dir(&self) -> PathBuf {
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
    pub(crate) fn path(&self, key: &Key) -> Result<PathBuf, Error> {
        let (dir, id) = self.located(key)?;
        Ok(dir.join(id))
    }

    /// The directory of a key's kind and the key's path beneath it.
    fn located<'k>(&self, key: &'k Key) -> Result<(PathBuf, &'k str), Error> {
        match key.kind {
            Kind::Config if key.id == CONFIG_ID => Ok((self.config_dir(), CONFIG_ID)),
            Kind::Config => Err(Error::Invalid(format!(
                "config id must be `{CONFIG_ID}`, not {:?}",
                key.id
            ))),
            // Cooldown state lives beside the auths, as the proxy keeps it.
            Kind::Auth | Kind::Cooldown => Ok((self.auth_dir(), checked_id(&key.id)?)),
            Kind::Meta => Ok((self.meta_dir(), checked_id(&key.id)?)),
        }
    }

    /// Every key present (config first, then auths and cooldowns, then
    /// metadata, each sorted) with its file's stat, taken as it is listed:
    /// one stat per file for a pull that reads only what changed.
    pub fn stated_keys(&self) -> Result<Vec<(Key, FileStat)>, Error> {
        let mut stated = Vec::new();
        let config = config_key();
        if let Some(stat) = self.stat(&config)? {
            stated.push((config, stat));
        }
        let auth_dir = self.auth_dir();
        let files = list_auth_files(&auth_dir).map_err(|e| io_error("list", &auth_dir, e))?;
        if files.is_empty() {
            // No auths because the root itself is gone (an unmounted share,
            // a wrong setting) is a failure, not an empty store.
            self.check_root()?;
        }
        stated.extend(files.into_iter().map(|(id, stat)| (auth_key(id), stat)));
        let meta_dir = self.meta_dir();
        let files = list_auth_files(&meta_dir).map_err(|e| io_error("list", &meta_dir, e))?;
        stated.extend(files.into_iter().map(|(id, stat)| (meta_key(id), stat)));
        Ok(stated)
    }

    /// A document's content; None when it is gone or is no document (see
    /// [`Reader::read_file`]).
    pub fn read_bytes(&self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        self.reader().read_bytes(key)
    }

    /// Reads documents for one call, each kind's directory opened once.
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            layout: self,
            opened: RefCell::default(),
        }
    }

    /// The file's modification time and size; None when it is gone or is
    /// not a regular file (a symlink is not followed, as in the listing).
    fn stat(&self, key: &Key) -> Result<Option<FileStat>, Error> {
        let path = self.path(key)?;
        if self.linked_directory(key).is_some() {
            return Ok(None);
        }
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(FileStat::from_metadata(&meta))),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error("inspect", &path, e)),
        }
    }

    /// The first directory of a nested id (`team/` in `team/a.json`) that
    /// is a symlink. The listing never enters one, so nothing beneath it is
    /// a document: read through, it would serve another document's content
    /// under this key, and written through, overwrite that document.
    pub(crate) fn linked_directory(&self, key: &Key) -> Option<PathBuf> {
        let (parents, _) = key.id.rsplit_once('/')?;
        let mut dir = match key.kind {
            Kind::Auth | Kind::Cooldown => self.auth_dir(),
            Kind::Meta => self.meta_dir(),
            Kind::Config => return None,
        };
        for part in parents.split('/') {
            dir.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_symlink() => return Some(dir),
                Ok(_) => {}
                // Nothing beneath a missing directory, links included.
                Err(_) => return None,
            }
        }
        None
    }

    pub(crate) fn entry(&self, key: &Key, content: &[u8]) -> Result<Entry, Error> {
        let path = self.path(key)?;
        let modified_ms = fs::symlink_metadata(&path)
            .ok()
            .and_then(|meta| FileStat::from_metadata(&meta).modified_ms());
        Ok(entry_of(key, content, modified_ms))
    }
}

/// Documents read for one call (see [`Layout::reader`]).
pub struct Reader<'a> {
    layout: &'a Layout,
    opened: RefCell<Vec<(PathBuf, FilesBeneath)>>,
}

impl Reader<'_> {
    /// The content of a key's file and the stat of the file read; None
    /// when it is gone or is not a regular file, or lies beneath a
    /// symlinked directory. The listing never shows a link, and read
    /// through one, this key would serve another file's content; no step
    /// is followed, so a link swapped in mid-read is not either.
    fn read_file(&self, key: &Key) -> Result<Option<(Vec<u8>, FileStat)>, Error> {
        let (dir, id) = self.layout.located(key)?;
        let mut opened = self.opened.borrow_mut();
        let at = match opened.iter().position(|(open, _)| *open == dir) {
            Some(at) => at,
            None => {
                let files = FilesBeneath::open(&dir).map_err(|e| io_error("open", &dir, e))?;
                opened.push((dir.clone(), files));
                opened.len() - 1
            }
        };
        opened[at]
            .1
            .read(id)
            .map_err(|e| io_error("read", &dir.join(id), e))
    }

    pub fn read_bytes(&self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.read_file(key)?.map(|(content, _)| content))
    }

    pub fn read(&self, key: &Key) -> Result<Option<Document>, Error> {
        self.document(key, None)
    }

    /// Reads a document its listing found with `stat`, which its entry
    /// carries (the stat the feed records for it).
    pub fn read_stated(&self, key: &Key, stat: &FileStat) -> Result<Option<Document>, Error> {
        self.document(key, Some(stat))
    }

    /// The document, its entry dated by the listing's stat if given, else
    /// by the stat of the file read.
    fn document(&self, key: &Key, listed: Option<&FileStat>) -> Result<Option<Document>, Error> {
        let Some((content, read)) = self.read_file(key)? else {
            return Ok(None);
        };
        let entry = entry_of(key, &content, listed.unwrap_or(&read).modified_ms());
        Ok(Some(Document { entry, content }))
    }
}

fn entry_of(key: &Key, content: &[u8], modified_ms: Option<i64>) -> Entry {
    Entry {
        key: key.clone(),
        version: content_version(content),
        size: content.len() as u64,
        modified_ms,
    }
}

fn config_key() -> Key {
    Key {
        kind: Kind::Config,
        id: CONFIG_ID.into(),
    }
}

/// An id under `auths/`: cooldown state lives beside the auths.
fn auth_key(id: String) -> Key {
    let kind = match is_cooldown_id(&id) {
        true => Kind::Cooldown,
        false => Kind::Auth,
    };
    Key { kind, id }
}

fn meta_key(id: String) -> Key {
    Key {
        kind: Kind::Meta,
        id,
    }
}

fn checked_id(id: &str) -> Result<&str, Error> {
    check_auth_id(id).map_err(|problem| Error::Invalid(format!("id {id:?}: {problem}")))?;
    Ok(id)
}
