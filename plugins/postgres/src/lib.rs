//! The PostgreSQL backend, through the host's `sql` capability.
//!
//! Layout (compatible with existing deployments): in the configured schema,
//! `config_store(id, content TEXT, created_at, updated_at)` with the config
//! row `config`, and `auth_store(id, content JSONB, ...)` keyed by auth id.
//! storehost's own metadata (the lineage id) lives in `storehost_meta`.
//! Versions are `md5(content::text)`, so preconditions are compare-and-swap
//! in SQL, and rows written by other programs have versions too.

mod tables;

use std::cell::Cell;
use storehost_sdk::capabilities::{secrets, sql};
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Settings, Snapshot,
};
use tables::{Tables, host_error};

pub struct Postgres {
    db: sql::Connection,
    tables: Tables,
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
        for statement in self.tables.schema_statements() {
            self.db.execute(&statement, &[]).map_err(host_error)?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), Error> {
        self.db.query("SELECT 1", &[]).map(drop).map_err(host_error)
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(self
            .all_documents(false)?
            .into_iter()
            .map(|d| d.entry)
            .collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        keys.iter().map(|key| self.read_one(key)).collect()
    }

    fn pull(&self, _cursor: Option<String>) -> Result<Snapshot, Error> {
        let documents = self.all_documents(true)?;
        Ok(Snapshot {
            documents,
            removed: Vec::new(),
            cursor: String::new(),
            complete: true,
        })
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        let tx = self.db.begin().map_err(host_error)?;
        let mut answers = Vec::with_capacity(changes.len());
        for change in &changes {
            // Returning early drops `tx`, which rolls the batch back.
            answers.push(self.tables.apply_one(&tx, change)?);
        }
        tx.execute(&self.tables.notify_statement(), &[])
            .map_err(host_error)?;
        sql::Transaction::commit(tx).map_err(host_error)?;
        Ok(answers)
    }

    fn wait_for_change(&self, timeout_ms: u32) -> Result<bool, Error> {
        if !self.listening.get() {
            self.db.listen(&self.tables.channel()).map_err(host_error)?;
            self.listening.set(true);
        }
        let notification = self.db.wait_notification(timeout_ms).map_err(host_error)?;
        Ok(notification.is_some())
    }
}

impl Postgres {
    /// Every row; rows whose id could not be a file (written by some other
    /// program) are skipped with a warning rather than failing the store.
    fn all_documents(&self, with_content: bool) -> Result<Vec<Document>, Error> {
        let rows = self
            .db
            .query(&self.tables.select_all(with_content), &[])
            .map_err(host_error)?;
        let mut documents = Vec::with_capacity(rows.rows.len());
        for row in &rows.rows {
            let document = tables::row_document(row)?;
            match storehost_sdk::ids::check_auth_id(&document.entry.key.id) {
                Ok(()) => documents.push(document),
                Err(problem) => storehost_sdk::log::warn(&format!(
                    "skipping row {:?}: {problem}",
                    document.entry.key.id
                )),
            }
        }
        Ok(documents)
    }

    fn read_one(&self, key: &Key) -> Result<Option<Document>, Error> {
        let (statement, id) = self.tables.select_one(key)?;
        let rows = self
            .db
            .query(&statement, &[sql::Value::Text(id)])
            .map_err(host_error)?;
        rows.rows
            .first()
            .map(|row| tables::row_document(row))
            .transpose()
    }
}

storehost_sdk::export_backend!(Postgres);
