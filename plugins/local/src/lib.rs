//! The local backend: documents as files under one directory, in the layout
//! `config/config.yaml` and `auths/<id>`.
//!
//! The host grants this plugin exactly one preopened directory (setting
//! `root`, by default `/store`). Writes are atomic (temp file, fsync, rename,
//! directory fsync) and versions are content hashes, so preconditions are a
//! real compare-and-swap for one writer process.

mod files;
mod seen;

use files::{Layout, content_version};
use seen::Seen;
use std::cell::RefCell;
use storehost_sdk::dir_lock::WriteLock;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Precondition, Settings, Snapshot,
};

pub struct LocalStore {
    layout: Layout,
    /// What the last pull saw, for the next pull's delta.
    seen: RefCell<Option<Seen>>,
}

impl Backend for LocalStore {
    fn open(settings: Settings) -> Result<Self, Error> {
        let root = settings.get_or("root", "/store");
        Ok(LocalStore {
            layout: Layout::new(root),
            seen: RefCell::new(None),
        })
    }

    fn info(&self) -> Info {
        Info {
            name: "local".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::CONDITIONAL_WRITE,
        }
    }

    fn prepare(&self) -> Result<(), Error> {
        self.layout.create_dirs()
    }

    fn check(&self) -> Result<(), Error> {
        self.layout.check_root()
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        let mut entries = Vec::new();
        for key in self.layout.keys()? {
            if let Some(document) = self.layout.read(&key)? {
                entries.push(document.entry);
            }
        }
        Ok(entries)
    }

    /// One pass over the files. Given the cursor of this instance's last
    /// pull, only files whose modification time or size changed are read,
    /// and the answer is a delta; otherwise every file is read.
    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        let mut seen = self.seen.borrow_mut();
        let last = seen
            .take()
            .filter(|last| cursor.as_deref() == Some(last.generation()));
        let now = std::time::SystemTime::now();
        let mut next = Seen::new();
        let mut documents = Vec::new();
        for key in self.layout.keys()? {
            let Some(stat) = self.layout.stat(&key)? else {
                continue;
            };
            if let Some(version) = last.as_ref().and_then(|last| last.unchanged(&key, &stat)) {
                next.record(&key, stat, version, now);
                continue;
            }
            let Some(document) = self.layout.read_stated(&key, &stat)? else {
                continue;
            };
            next.record(&key, stat, &document.entry.version, now);
            let known = last.as_ref().and_then(|last| last.version(&key));
            if known != Some(document.entry.version.as_str()) {
                documents.push(document);
            }
        }
        let snapshot = Snapshot {
            documents,
            removed: last
                .as_ref()
                .map(|last| last.gone_in(&next))
                .unwrap_or_default(),
            cursor: next.generation().to_string(),
            complete: last.is_none(),
        };
        *seen = Some(next);
        Ok(snapshot)
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        keys.iter().map(|key| self.layout.read(key)).collect()
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        let lock = WriteLock::acquire(&self.layout.lock_dir())?;
        // Check every precondition before touching anything, so a stale
        // batch changes nothing.
        for change in &changes {
            lock.keep_alive();
            self.check_precondition(change.key(), change.precondition())?;
        }
        changes
            .into_iter()
            .map(|change| {
                lock.keep_alive();
                let written = match &change {
                    // Created only if still absent, atomically: of several
                    // writers racing to create a document, one wins.
                    Change::Put(put) if matches!(put.precondition, Precondition::Absent) => {
                        self.layout.create(&put.key, &put.content).map(Some)
                    }
                    Change::Put(put) => self.layout.write(&put.key, &put.content).map(Some),
                    Change::Remove(remove) => self.layout.remove(&remove.key).map(|()| None),
                };
                self.note_applied(&change, &written);
                written
            })
            .collect()
    }
}

impl LocalStore {
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

    fn check_precondition(&self, key: &Key, precondition: &Precondition) -> Result<(), Error> {
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

#[cfg(feature = "export")]
storehost_sdk::export_backend!(LocalStore);
