//! What the plugin knows of the branch: its head and the files of that
//! head's tree, so a pull or a precondition needs no further call.

use std::collections::BTreeMap;
use storehost_sdk::capabilities::git::TreeEntry;
use storehost_sdk::paths::key_of;
use storehost_sdk::{Entry, Key};

/// A file of a commit: its blob (the document's version) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub blob: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Known {
    /// `None` for an empty remote.
    pub head: Option<String>,
    /// Every file of the head's tree, by path.
    pub files: BTreeMap<String, File>,
}

impl Known {
    pub fn new(head: Option<String>, entries: Vec<TreeEntry>) -> Known {
        let files = entries
            .into_iter()
            .map(|e| {
                (
                    e.path,
                    File {
                        blob: e.blob,
                        size: e.size,
                    },
                )
            })
            .collect();
        Known { head, files }
    }

    /// Files that are documents, with their keys.
    pub fn documents(&self) -> impl Iterator<Item = (Key, &File)> {
        self.files
            .iter()
            .filter_map(|(path, file)| Some((key_of(path)?, file)))
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.documents()
            .map(|(key, file)| entry(key, file))
            .collect()
    }

    /// Document paths whose blob differs from `before` (added or changed),
    /// and document paths `before` had that are gone.
    pub fn diff(&self, before: &BTreeMap<String, File>) -> (Vec<String>, Vec<String>) {
        let changed = self
            .files
            .iter()
            .filter(|(path, file)| key_of(path).is_some() && before.get(*path) != Some(file))
            .map(|(path, _)| path.clone())
            .collect();
        let gone = before
            .keys()
            .filter(|path| key_of(path).is_some() && !self.files.contains_key(*path))
            .cloned()
            .collect();
        (changed, gone)
    }
}

pub fn entry(key: Key, file: &File) -> Entry {
    Entry {
        key,
        version: file.blob.clone(),
        size: file.size,
        modified_ms: None,
    }
}
