//! The Git backend, through the host's `git` capability.
//!
//! Layout (compatible with existing deployments): `config/config.yaml` and
//! `auths/<id>`; storehost's metadata under `.storehost/meta/`. Blob ids are
//! the versions. Every `apply` is one commit by `storehost` on top of the
//! head it was checked against, pushed fast-forward only; when another
//! writer got there first the push is `rejected`, and the change is checked
//! and made again on the new head (a conflict only if the same file changed
//! there). History is kept; with `squash` the branch holds one commit, and
//! a push still replaces only the head it was made from (a lease).
//!
//! A branch rewritten by someone else (force-pushed) is reported, and the
//! documents the rewrite dropped are committed again on top of it: a
//! rewrite never deletes tokens.

mod tree;
mod write;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use storehost_sdk::capabilities::git::{self, Fetched, FileChange, PushMode};
use storehost_sdk::capabilities::secrets;
use storehost_sdk::paths::{key_of, path_of};
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, HostError, Info, Key, Settings, Snapshot,
    host_error,
};
use tree::{File, Known};

/// Cursor prefix; a cursor names the commit a pull saw.
const CURSOR_PREFIX: &str = "git1:";

pub struct GitStore {
    repo: git::Repository,
    squash: bool,
    known: RefCell<Known>,
    /// The tree `known` replaced, for the next pull's diff.
    replaced: RefCell<Option<Known>>,
    /// Document paths this instance pushed since the last pull.
    written: RefCell<BTreeSet<String>>,
    /// The head before a rewrite whose dropped documents are not restored
    /// yet (the push failed); tried again at the next sync.
    pending_rewrite: RefCell<Option<String>>,
}

impl Backend for GitStore {
    fn open(settings: Settings) -> Result<Self, Error> {
        let url = settings.require("url")?;
        let branch = settings.get("branch").filter(|b| !b.is_empty());
        let username = settings.get_or("username", "git");
        let squash = match settings.get_or("squash", "false") {
            "true" => true,
            "false" => false,
            other => {
                return Err(Error::Invalid(format!(
                    "setting `squash` must be true or false, not {other:?}"
                )));
            }
        };
        let token = secrets::get("token").map_err(host_error)?;
        let repo = git::open(url, branch, username, &token).map_err(host_error)?;
        Ok(GitStore {
            repo,
            squash,
            known: RefCell::new(Known::default()),
            replaced: RefCell::new(None),
            written: RefCell::default(),
            pending_rewrite: RefCell::new(None),
        })
    }

    fn info(&self) -> Info {
        let mut features =
            Features::ATOMIC_BATCH | Features::CONDITIONAL_WRITE | Features::INCREMENTAL_PULL;
        if !self.squash {
            features |= Features::HISTORY;
        }
        Info {
            name: "git".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features,
        }
    }

    /// Creates the branch on an empty remote with a first, empty commit.
    fn prepare(&self) -> Result<(), Error> {
        if self.sync()?.is_some() {
            return Ok(());
        }
        let commit = self
            .repo
            .commit(None, &[], "Initialize storehost", false)
            .map_err(host_error)?;
        match self.repo.push(&commit.commit, &PushMode::FastForward) {
            // Someone else created it meanwhile: theirs is as good.
            Ok(()) | Err(HostError::Rejected(_)) => self.sync().map(drop),
            Err(e) => Err(host_error(e)),
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.repo.fetch().map(drop).map_err(host_error)
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        self.sync()?;
        Ok(self.known.borrow().entries())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
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

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
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

    fn apply(&self, changes: Vec<Change>, message: String) -> Result<Vec<Option<Entry>>, Error> {
        write::apply(self, &changes, &message)
    }
}

impl GitStore {
    /// Fetches, settles a rewrite if there was one, and brings `known` to
    /// the branch head; returns the head.
    fn sync(&self) -> Result<Option<String>, Error> {
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
                entry: tree::entry(key, &file),
                content,
            })
            .collect())
    }

    /// In history mode, a head we knew that is no longer in the branch's
    /// history means someone rewrote (or deleted) the branch. Documents
    /// the rewrite dropped are committed again on top of it; the rest of
    /// the rewrite stands. Returns the head to use. A restore that could
    /// not be pushed is tried again at the next sync.
    fn settle_rewrite(&self, fetched: Fetched) -> Result<Option<String>, Error> {
        let Fetched { head, previous } = fetched;
        if self.squash {
            return Ok(head);
        }
        let Some(head) = head else {
            let Some(previous) = previous else {
                return Ok(None);
            };
            storehost_sdk::log::error(&format!(
                "the remote branch was deleted; restoring it at {previous}, the last head seen"
            ));
            self.repo
                .push(&previous, &PushMode::FastForward)
                .map_err(host_error)?;
            return Ok(Some(previous));
        };
        let rewritten = match previous {
            Some(previous)
                if previous != head
                    && !self
                        .repo
                        .is_ancestor(&previous, &head)
                        .map_err(host_error)? =>
            {
                Some(previous)
            }
            _ => None,
        };
        let Some(before) = rewritten.or_else(|| self.pending_rewrite.take()) else {
            return Ok(Some(head));
        };
        match self.restore_dropped(&before, &head) {
            Ok(head) => Ok(Some(head)),
            Err(e) => {
                *self.pending_rewrite.borrow_mut() = Some(before);
                Err(e)
            }
        }
    }

    /// Commits again, on top of `head`, the documents `before` had and
    /// `head` lacks; returns the new head.
    fn restore_dropped(&self, before: &str, head: &str) -> Result<String, Error> {
        let old = self.repo.tree(before).map_err(host_error)?;
        let new = Known::new(
            Some(head.to_string()),
            self.repo.tree(head).map_err(host_error)?,
        );
        let dropped: Vec<(String, String)> = old
            .into_iter()
            .filter(|e| key_of(&e.path).is_some() && !new.files.contains_key(&e.path))
            .map(|e| (e.path, e.blob))
            .collect();
        if dropped.is_empty() {
            storehost_sdk::log::warn(&format!(
                "the remote branch was rewritten (it was at {before}, now {head}); no document was dropped"
            ));
            return Ok(head.to_string());
        }
        let restored = self.restore(head, &dropped)?;
        storehost_sdk::log::error(&format!(
            "the remote branch was rewritten (it was at {before}, now {head}) and {} document(s) were dropped; they are committed again in {restored}: {}",
            dropped.len(),
            dropped
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(restored)
    }

    fn restore(&self, head: &str, dropped: &[(String, String)]) -> Result<String, Error> {
        let blobs: Vec<String> = dropped.iter().map(|(_, b)| b.clone()).collect();
        let contents = self.repo.read_many(&blobs).map_err(host_error)?;
        let changes: Vec<FileChange> = dropped
            .iter()
            .zip(contents)
            .map(|((path, _), content)| FileChange::Write((path.clone(), content)))
            .collect();
        let message = format!(
            "Restore {} document(s) dropped by a rewrite of the branch\n\n{}",
            dropped.len(),
            dropped
                .iter()
                .map(|(p, _)| format!("restore {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let commit = self
            .repo
            .commit(Some(head), &changes, &message, false)
            .map_err(host_error)?;
        self.repo
            .push(&commit.commit, &PushMode::FastForward)
            .map_err(|e| match e {
                HostError::Rejected(m) => Error::Unavailable(format!(
                    "restoring documents after a rewrite raced another writer: {m}"
                )),
                other => host_error(other),
            })?;
        Ok(commit.commit)
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

storehost_sdk::export_backend!(GitStore);
