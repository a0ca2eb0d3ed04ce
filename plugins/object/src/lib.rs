//! The object-storage backend (AWS S3, MinIO, R2, Spaces, GCS), through the
//! host's `objects` capability.
//!
//! Layout (compatible with existing deployments): `config/config.yaml`
//! (`application/x-yaml`) and `auths/<id>` (`application/json`). The ETag is
//! the version. Preconditions go to the server as `If-Match` /
//! `If-None-Match`; `prepare` probes whether the server honours them, and
//! where it does not, each conditional write first re-reads the ETag, so a
//! lost race is a conflict rather than a silent overwrite.

mod errors;
mod feed;
mod layout;
mod settings;
mod writes;

use feed::{Feed, entry};
use std::cell::Cell;
use storehost_sdk::capabilities::objects;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Settings, Snapshot, host_error,
};
use writes::Honours;

pub struct ObjectStore {
    bucket: objects::Bucket,
    feed: Feed,
    /// What the server does with conditional headers; probed once.
    honours: Cell<Option<Honours>>,
}

impl Backend for ObjectStore {
    fn open(settings: Settings) -> Result<Self, Error> {
        Ok(ObjectStore {
            bucket: settings::open_bucket(&settings)?,
            feed: Feed::new(),
            honours: Cell::new(None),
        })
    }

    fn info(&self) -> Info {
        Info {
            name: "object".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::CONDITIONAL_WRITE,
        }
    }

    fn prepare(&self) -> Result<(), Error> {
        self.bucket.ensure().map_err(host_error)?;
        self.honours().map(drop)
    }

    fn check(&self) -> Result<(), Error> {
        self.bucket
            .head(layout::CONFIG_OBJECT)
            .map(drop)
            .map_err(host_error)
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(feed::listing(&self.bucket)?
            .into_iter()
            .map(|(key, info)| entry(key, &info))
            .collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        feed::get_many(&self.bucket, &keys)
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.feed.pull(&self.bucket, cursor.as_deref())
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        self.apply_changes(changes)
    }
}

storehost_sdk::export_backend!(ObjectStore);
