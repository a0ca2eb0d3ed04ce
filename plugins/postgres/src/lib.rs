//! The PostgreSQL backend, through the host's `sql` capability.
//!
//! Layout (compatible with existing deployments): in the configured schema,
//! `config_store(id, content TEXT, created_at, updated_at)` with the config
//! row `config`, and `auth_store(id, content JSONB, ...)` keyed by auth id.
//! storehost's own metadata (the lineage id) lives in `storehost_meta`;
//! the proxy's cooldown state in `cooldown_store`, as the Go store keeps it
//! (see `cooldown`).
//! Versions are `md5(content::text)`, so preconditions are compare-and-swap
//! in SQL, and rows written by other programs have versions too. Pulls are
//! incremental (see `feed`).

mod cooldown;
mod errors;
mod feed;
mod layout;
mod settings;
mod writes;

use errors::PrepareError;
use feed::Feed;
use layout::Tables;
use std::cell::Cell;
use storehost_sdk::capabilities::sql;
use storehost_sdk::host_error;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Settings, Snapshot,
};

pub struct Postgres {
    db: sql::Connection,
    tables: Tables,
    feed: Feed,
    /// Whether this connection listens for change notifications yet.
    listening: Cell<bool>,
}

impl Backend for Postgres {
    fn open(settings: Settings) -> Result<Self, Error> {
        Ok(Postgres {
            db: settings::connect()?,
            tables: Tables::new(settings::schema(&settings)),
            feed: Feed::new(),
            listening: Cell::new(false),
        })
    }

    fn info(&self) -> Info {
        Info {
            name: "postgres".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::ATOMIC_BATCH | Features::CONDITIONAL_WRITE | Features::WATCH,
        }
    }

    fn prepare(&self) -> Result<(), Error> {
        // Instances starting together run this DDL at once: a deadlock or a
        // racing CREATE is resolved by doing it again.
        let mut attempt = 0;
        loop {
            match self.create_schema().and_then(|()| self.install_feed()) {
                Ok(()) => return cooldown::migrate_auth_rows(&self.db, &self.tables),
                Err(PrepareError::Raced(message)) if attempt < 5 => {
                    attempt += 1;
                    storehost_sdk::log::info(&format!(
                        "creating the tables raced another instance ({message}); again"
                    ));
                }
                Err(PrepareError::Raced(message)) => {
                    return Err(Error::Unavailable(format!(
                        "creating the tables: {message}"
                    )));
                }
                Err(PrepareError::Other(error)) => return Err(error),
            }
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.db.query("SELECT 1", &[]).map(drop).map_err(host_error)
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        let statement = self.tables.select_documents(false, false);
        let mut documents = feed::documents(&self.db, &statement, &[])?;
        let rows = cooldown::rows(&self.db, &self.tables, false)?;
        documents.extend(cooldown::all_documents(&rows));
        Ok(documents.into_iter().map(|d| d.entry).collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        keys.iter().map(|key| self.read_one(key)).collect()
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.feed.pull(&self.db, &self.tables, cursor.as_deref())
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        self.apply_changes(changes)
    }

    fn wait_for_change(&self, timeout_ms: u32) -> Result<bool, Error> {
        if !self.listening.get() {
            self.db.listen(&self.channel()?).map_err(host_error)?;
            self.listening.set(true);
        }
        let notification = self.db.wait_notification(timeout_ms).map_err(host_error)?;
        Ok(notification.is_some())
    }
}

storehost_sdk::export_backend!(Postgres);
