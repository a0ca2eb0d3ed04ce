//! The local backend: documents as files under one directory, in the layout
//! `config/config.yaml` and `auths/<id>`.
//!
//! The host grants this plugin exactly one preopened directory (setting
//! `root`, by default `/store`). Writes are atomic (temp file, fsync, rename,
//! directory fsync) and versions are content hashes, so preconditions are a
//! real compare-and-swap for one writer process.

mod errors;
mod feed;
mod layout;
mod settings;
mod writes;

use feed::Seen;
use layout::Layout;
use std::cell::RefCell;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Settings, Snapshot,
};

pub struct LocalStore {
    layout: Layout,
    /// What the last pull saw, for the next pull's delta.
    seen: RefCell<Option<Seen>>,
}

impl Backend for LocalStore {
    fn open(settings: Settings) -> Result<Self, Error> {
        Ok(LocalStore {
            layout: Layout::new(settings::root(&settings)),
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
        let reader = self.layout.reader();
        for (key, stat) in self.layout.stated_keys()? {
            if let Some(document) = reader.read_stated(&key, &stat)? {
                entries.push(document.entry);
            }
        }
        Ok(entries)
    }

    /// One pass over the files; given this instance's last cursor, a delta.
    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.pull_files(cursor)
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        let reader = self.layout.reader();
        keys.iter().map(|key| reader.read(key)).collect()
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        self.apply_changes(changes)
    }
}

#[cfg(feature = "export")]
storehost_sdk::export_backend!(LocalStore);
