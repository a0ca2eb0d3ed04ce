//! Reading the branch: fetch, bring what this instance knows to the head,
//! and answer pulls as the diff between the tree a cursor names and the
//! head's (a complete snapshot when that tree is not known here).

use crate::GitStore;
use crate::layout::{File, Known};
use std::collections::BTreeMap;
use storehost_sdk::paths::{key_of, path_of};
use storehost_sdk::{Document, Error, Key, Snapshot, host_error};

/// Cursor prefix; a cursor names the commit a pull saw.
const CURSOR_PREFIX: &str = "git1:";

impl GitStore {
    pub(crate) fn read_documents(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        self.sync()?;
        let known = self.known.borrow();
        let mut found: Vec<(usize, Key, File)> = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            if let Some(file) = known.files.get(&path_of(key)?) {
                found.push((index, key.clone(), file.clone()));
            }
        }
        drop(known);
        let indexes: Vec<usize> = found.iter().map(|(index, _, _)| *index).collect();
        let documents = self.documents(found.into_iter().map(|(_, k, f)| (k, f)).collect())?;
        let mut answers: Vec<Option<Document>> = keys.iter().map(|_| None).collect();
        for (index, document) in indexes.into_iter().zip(documents) {
            answers[index] = Some(document);
        }
        Ok(answers)
    }

    pub(crate) fn pull_branch(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        let since = cursor
            .as_deref()
            .and_then(|c| c.strip_prefix(CURSOR_PREFIX));
        let head = self.sync()?;
        let cursor = format!("{CURSOR_PREFIX}{}", head.as_deref().unwrap_or(""));
        if let Some(since) = since
            && since == head.as_deref().unwrap_or("")
        {
            return Ok(delta(Vec::new(), Vec::new(), cursor));
        }
        let Some(before) = since.and_then(|since| self.files_at(since)) else {
            self.written.take();
            let known = self.known.borrow();
            let all: Vec<(Key, File)> = known.documents().map(|(k, f)| (k, f.clone())).collect();
            drop(known);
            return Ok(Snapshot {
                documents: self.documents(all)?,
                removed: Vec::new(),
                cursor,
                complete: true,
            });
        };
        let known = self.known.borrow();
        let (changed, mut gone) = known.diff(&before);
        // A file this instance pushed since the last pull and someone else
        // removed since shows in neither tree; the host tracks it, though.
        for path in self.written.take() {
            if !before.contains_key(&path) && !known.files.contains_key(&path) {
                gone.push(path);
            }
        }
        let changed: Vec<(Key, File)> = changed
            .iter()
            .filter_map(|path| Some((key_of(path)?, known.files.get(path)?.clone())))
            .collect();
        drop(known);
        let removed = gone.iter().filter_map(|path| key_of(path)).collect();
        Ok(delta(self.documents(changed)?, removed, cursor))
    }

    /// Fetches, settles a rewrite if there was one, and brings `known` to
    /// the branch head; returns the head.
    pub(crate) fn sync(&self) -> Result<Option<String>, Error> {
        let fetched = self.repo.fetch().map_err(host_error)?;
        let head = self.settle_rewrite(fetched)?;
        self.load(head.clone())?;
        Ok(head)
    }

    /// Makes `known` describe `head`.
    fn load(&self, head: Option<String>) -> Result<(), Error> {
        if self.known.borrow().head == head {
            return Ok(());
        }
        let entries = match &head {
            Some(head) => self.repo.tree(head).map_err(host_error)?,
            None => Vec::new(),
        };
        let old = self.known.replace(Known::new(head, entries));
        *self.replaced.borrow_mut() = Some(old);
        Ok(())
    }

    /// The files of commit `commit`, from memory or the local repository;
    /// `None` when it is not known here (then a pull is complete).
    fn files_at(&self, commit: &str) -> Option<BTreeMap<String, File>> {
        if commit.is_empty() {
            return Some(BTreeMap::new());
        }
        if let Some(replaced) = &*self.replaced.borrow()
            && replaced.head.as_deref() == Some(commit)
        {
            return Some(replaced.files.clone());
        }
        let entries = self.repo.tree(commit).ok()?;
        Some(Known::new(Some(commit.to_string()), entries).files)
    }

    /// Reads the content of these files, as documents.
    fn documents(&self, files: Vec<(Key, File)>) -> Result<Vec<Document>, Error> {
        let blobs: Vec<String> = files.iter().map(|(_, f)| f.blob.clone()).collect();
        let contents = if blobs.is_empty() {
            Vec::new()
        } else {
            self.repo.read_many(&blobs).map_err(host_error)?
        };
        Ok(files
            .into_iter()
            .zip(contents)
            .map(|((key, file), content)| Document {
                entry: crate::layout::entry(key, &file),
                content,
            })
            .collect())
    }
}

fn delta(documents: Vec<Document>, removed: Vec<Key>, cursor: String) -> Snapshot {
    Snapshot {
        documents,
        removed,
        cursor,
        complete: false,
    }
}
