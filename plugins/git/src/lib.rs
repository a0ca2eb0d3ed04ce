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

mod errors;
mod feed;
mod layout;
mod settings;
mod writes;

use layout::Known;
use std::cell::RefCell;
use std::collections::BTreeSet;
use storehost_sdk::capabilities::git::{self, PushMode};
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Settings, Snapshot, host_error,
};

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
        let settings::Opened { repo, squash } = settings::open_repository(&settings)?;
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
        // Someone else created it meanwhile: theirs is as good.
        errors::push_outcome(self.repo.push(&commit.commit, &PushMode::FastForward))?;
        self.sync().map(drop)
    }

    fn check(&self) -> Result<(), Error> {
        self.repo.fetch().map(drop).map_err(host_error)
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        self.sync()?;
        Ok(self.known.borrow().entries())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        self.read_documents(keys)
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.pull_branch(cursor)
    }

    fn apply(&self, changes: Vec<Change>, message: String) -> Result<Vec<Option<Entry>>, Error> {
        writes::apply(self, &changes, &message)
    }
}

storehost_sdk::export_backend!(GitStore);
