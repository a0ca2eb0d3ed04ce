//! The PostgreSQL backend, through the host's `sql` capability.
//!
//! Layout (compatible with existing deployments): in the configured schema,
//! `config_store(id, content TEXT, created_at, updated_at)` with the config
//! row `config`, and `auth_store(id, content JSONB, ...)` keyed by auth id.
//! storehost's own metadata (the lineage id) lives in `storehost_meta`.
//! Versions are `md5(content::text)`, so preconditions are compare-and-swap
//! in SQL, and rows written by other programs have versions too. Pulls are
//! incremental (see `feed`).

mod feed;
mod tables;

use feed::Feed;
use std::cell::Cell;
use storehost_sdk::capabilities::{secrets, sql};
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, HostError, Info, Key, Settings, Snapshot,
};
use storehost_sdk::{CONCURRENT_WRITER_WON, host_error};
use tables::Tables;

pub struct Postgres {
    db: sql::Connection,
    tables: Tables,
    feed: Feed,
    /// Whether this connection listens for change notifications yet.
    listening: Cell<bool>,
}

impl Backend for Postgres {
    fn open(settings: Settings) -> Result<Self, Error> {
        let schema = settings.get_or("schema", "public");
        let dsn = secrets::get("dsn").map_err(host_error)?;
        let db = sql::connect(&dsn).map_err(host_error)?;
        Ok(Postgres {
            db,
            tables: Tables::new(schema),
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
                Ok(()) => return Ok(()),
            }
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.db.query("SELECT 1", &[]).map(drop).map_err(host_error)
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        let statement = self.tables.select_documents(false, false);
        Ok(feed::documents(&self.db, &statement, &[])?
            .into_iter()
            .map(|d| d.entry)
            .collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        keys.iter().map(|key| self.read_one(key)).collect()
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.feed.pull(&self.db, &self.tables, cursor.as_deref())
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        let tx = self.db.begin().map_err(host_error)?;
        let mut answers = Vec::with_capacity(changes.len());
        for change in &changes {
            // Returning early drops `tx`, which rolls the batch back.
            answers.push(self.tables.apply_one(&tx, change)?);
        }
        // Where the triggers are known to be installed they notify.
        if !self.feed.triggers_notify() {
            let (notify, params) = self.tables.notify_statement();
            tx.execute(notify, &params).map_err(host_error)?;
        }
        sql::Transaction::commit(tx).map_err(host_error)?;
        Ok(answers)
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

impl Postgres {
    fn channel(&self) -> Result<String, Error> {
        let (query, params) = self.tables.channel_query();
        let rows = self.db.query(query, &params).map_err(host_error)?;
        let value = rows.rows.first().and_then(|row| row.first());
        tables::text(value.unwrap_or(&sql::Value::Null))
    }

    fn read_one(&self, key: &Key) -> Result<Option<Document>, Error> {
        let (statement, id) = self.tables.select_one(key)?;
        let rows = self
            .db
            .query(&statement, &[sql::Value::Text(id)])
            .map_err(host_error)?;
        rows.rows
            .into_iter()
            .next()
            .map(tables::row_document)
            .transpose()
    }
}

enum PrepareError {
    /// A deadlock, serialization failure or duplicate with a concurrent
    /// instance doing the same.
    Raced(String),
    Other(Error),
}

fn prepare_error(error: HostError) -> PrepareError {
    match error {
        HostError::Conflict(message) => PrepareError::Raced(message),
        other => PrepareError::Other(host_error(other)),
    }
}

impl Postgres {
    /// The schema and tables, in one transaction under the DDL lock.
    fn create_schema(&self) -> Result<(), PrepareError> {
        let tx = self.db.begin().map_err(prepare_error)?;
        let (lock, params) = self.tables.ddl_lock();
        tx.execute(lock, &params).map_err(prepare_error)?;
        for object in self.tables.schema_objects() {
            let probe = tx
                .query(object.probe, &[object.name])
                .map_err(prepare_error)?;
            let exists = probe.rows.first().and_then(|row| row.first());
            if !matches!(exists, Some(sql::Value::Boolean(true))) {
                tx.execute(&object.create, &[]).map_err(prepare_error)?;
            }
        }
        sql::Transaction::commit(tx).map_err(prepare_error)
    }

    /// The change tracking; a role that may not add triggers does without.
    fn install_feed(&self) -> Result<(), PrepareError> {
        match self.feed.install(&self.db, &self.tables) {
            Err(Error::Denied(reason)) => {
                storehost_sdk::log::warn(&format!(
                    "cannot install change tracking ({reason}); every pull reads the whole tables"
                ));
                Ok(())
            }
            Err(Error::Unavailable(message)) if message.starts_with(CONCURRENT_WRITER_WON) => {
                Err(PrepareError::Raced(message))
            }
            Err(other) => Err(PrepareError::Other(other)),
            Ok(()) => Ok(()),
        }
    }
}

storehost_sdk::export_backend!(Postgres);
