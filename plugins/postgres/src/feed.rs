//! The change feed: incremental pulls by `updated_at`, and deletions by any
//! writer (other storehost instances, the Go store, plain SQL) recorded by a
//! trigger into `storehost_deleted`. The seed tables keep their columns and
//! meaning; they only gain an index and two triggers.
//!
//! `updated_at` is the writer's transaction start, so a row can commit with
//! a timestamp older than a pull that already ran. Each pull therefore reads
//! back an overlap window before its cursor, and a complete snapshot every
//! few minutes bounds whatever a longer transaction could still hide.

use crate::Postgres;
use crate::cooldown;
use crate::errors::PrepareError;
use crate::layout::{self, Tables};
use std::cell::Cell;
use storehost_sdk::capabilities::sql::{self, Value};
use storehost_sdk::{CONCURRENT_WRITER_WON, host_error};
use storehost_sdk::{CONFIG_ID, Document, Error, Key, Kind, Snapshot};

/// How far before its cursor a delta pull looks again.
const OVERLAP_US: i64 = 120 * 1_000_000;
/// A complete snapshot at least this often, whatever the cursor says.
const FULL_EVERY_US: i64 = 10 * 60 * 1_000_000;
/// Tombstones older than this are pruned; any cursor this old is far past
/// `FULL_EVERY_US` and gets a complete snapshot anyway.
const TOMBSTONE_DAYS: u32 = 7;
/// The id a TRUNCATE leaves in `storehost_deleted`: no auth id is empty.
const TRUNCATED: &str = "";
/// The trigger names, and what `pull` checks before trusting deltas.
const ROW_TRIGGER: &str = "storehost_deletions";
const STATEMENT_TRIGGER: &str = "storehost_changes";
const TRACKED_TABLES: [&str; 2] = ["config_store", "auth_store"];

/// Where the previous pull stopped: the server's clock then, and when the
/// last complete snapshot was taken (µs since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub watermark_us: i64,
    pub full_at_us: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("pg1:{}:{}", self.watermark_us, self.full_at_us)
    }

    /// `None` for anything this version did not write: a complete pull.
    pub fn parse(text: &str) -> Option<Cursor> {
        let mut parts = text.strip_prefix("pg1:")?.split(':');
        let watermark_us = parts.next()?.parse().ok()?;
        let full_at_us = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Cursor {
            watermark_us,
            full_at_us,
        })
    }

    /// Whether a delta from here is still trustworthy at `now_us`. A clock
    /// that went backwards is not.
    pub fn usable_at(&self, now_us: i64) -> bool {
        self.watermark_us <= now_us
            && self.full_at_us <= self.watermark_us
            && now_us - self.full_at_us < FULL_EVERY_US
    }
}

pub struct Feed {
    /// Whether the tombstone table and triggers are in place; checked once.
    tracked: Cell<Option<bool>>,
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            tracked: Cell::new(None),
        }
    }

    /// Whether this store saw the triggers in place (which also send
    /// NOTIFY on every change).
    pub fn triggers_notify(&self) -> bool {
        self.tracked.get() == Some(true)
    }

    /// Installs the tombstone table, the triggers and the `updated_at`
    /// indexes. Needs ownership of (or TRIGGER on) the seed tables; without
    /// it the caller carries on with complete pulls.
    pub fn install(&self, db: &sql::Connection, tables: &Tables) -> Result<(), Error> {
        let tx = db.begin().map_err(host_error)?;
        let (lock, params) = tables.ddl_lock();
        tx.execute(lock, &params).map_err(host_error)?;
        for statement in install_statements(tables) {
            tx.execute(&statement, &[]).map_err(host_error)?;
        }
        // The Go store tombstones cooldown rows rather than deleting them,
        // but another program may delete them: tracked like the rest.
        for table in TRACKED_TABLES.iter().chain([&cooldown::TABLE]) {
            let present = triggers_on(&tx, tables, table)?;
            for (name, statement) in trigger_statements(tables, table) {
                if !present.iter().any(|p| p == name) {
                    tx.execute(&statement, &[]).map_err(host_error)?;
                }
            }
        }
        sql::Transaction::commit(tx).map_err(host_error)?;
        self.tracked.set(Some(true));
        Ok(())
    }

    /// Everything (complete) or what changed since `cursor` (a delta), read
    /// from one consistent snapshot of the database.
    pub fn pull(
        &self,
        db: &sql::Connection,
        tables: &Tables,
        cursor: Option<&str>,
    ) -> Result<Snapshot, Error> {
        let tx = db.begin().map_err(host_error)?;
        tx.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            &[],
        )
        .map_err(host_error)?;
        let now_us = server_now_us(&tx)?;
        let previous = cursor
            .and_then(Cursor::parse)
            .filter(|c| c.usable_at(now_us));
        let delta = match previous {
            Some(previous) if self.is_tracked(&tx, tables)? => {
                delta(&tx, tables, previous.watermark_us - OVERLAP_US)?.map(|mut snapshot| {
                    snapshot.cursor = Cursor {
                        watermark_us: now_us,
                        full_at_us: previous.full_at_us,
                    }
                    .encode();
                    snapshot
                })
            }
            _ => None,
        };
        let snapshot = match delta {
            Some(snapshot) => snapshot,
            None => Snapshot {
                documents: {
                    let mut all = documents(&tx, &tables.select_documents(true, false), &[])?;
                    all.extend(cooldown::all_documents(&cooldown::rows(
                        &tx, tables, false,
                    )?));
                    all
                },
                removed: Vec::new(),
                cursor: Cursor {
                    watermark_us: now_us,
                    full_at_us: now_us,
                }
                .encode(),
                complete: true,
            },
        };
        sql::Transaction::commit(tx).map_err(host_error)?;
        Ok(snapshot)
    }

    fn is_tracked(&self, tx: &sql::Transaction, tables: &Tables) -> Result<bool, Error> {
        if let Some(tracked) = self.tracked.get() {
            return Ok(tracked);
        }
        let mut tracked = true;
        for table in TRACKED_TABLES {
            let present = triggers_on(tx, tables, table)?;
            tracked &= [ROW_TRIGGER, STATEMENT_TRIGGER]
                .iter()
                .all(|name| present.iter().any(|p| p == name));
        }
        self.tracked.set(Some(tracked));
        Ok(tracked)
    }
}

/// Rows updated since `since_us` and deletions since then, or `None` when a
/// TRUNCATE happened and only a complete snapshot can tell what is left.
fn delta(tx: &sql::Transaction, tables: &Tables, since_us: i64) -> Result<Option<Snapshot>, Error> {
    let since = [Value::Int(since_us)];
    let tombstones = tx
        .query(&tombstones_since(tables), &since)
        .map_err(host_error)?;
    let mut removed = Vec::new();
    let mut cooldown_rows_deleted = Vec::new();
    for row in &tombstones.rows {
        let [table, id] = row.as_slice() else {
            return Err(Error::Internal("unexpected tombstone row".into()));
        };
        let (table, id) = (layout::text(table)?, layout::text(id)?);
        if id == TRUNCATED {
            return Ok(None);
        }
        match table.as_str() {
            cooldown::TABLE => cooldown_rows_deleted.push(id),
            _ => removed.extend(tombstone_key(&table, id)),
        }
    }
    let mut documents = documents(tx, &tables.select_documents(true, true), &since)?;
    let rows = cooldown::rows(tx, tables, false)?;
    let (cooldowns, cooldowns_gone) = cooldown::delta(&rows, &cooldown_rows_deleted);
    documents.extend(cooldowns);
    removed.extend(cooldowns_gone);
    Ok(Some(Snapshot {
        documents,
        removed,
        cursor: String::new(),
        complete: false,
    }))
}

/// The key a deleted row stood for, if it was one storehost mirrors.
fn tombstone_key(table: &str, id: String) -> Option<Key> {
    match table {
        "config_store" if id == "config" => Some(Key {
            kind: Kind::Config,
            id: CONFIG_ID.into(),
        }),
        "auth_store" if storehost_sdk::ids::check_auth_id(&id).is_ok() => Some(Key {
            kind: Kind::Auth,
            id,
        }),
        _ => None,
    }
}

/// Documents from a `select_documents` statement; rows whose id could not
/// be a file (written by some other program) are skipped with a warning.
pub fn documents(
    via: &impl Query,
    statement: &str,
    params: &[Value],
) -> Result<Vec<Document>, Error> {
    let rows = via.query(statement, params)?;
    let mut documents = Vec::with_capacity(rows.rows.len());
    for row in rows.rows {
        let document = layout::row_document(row)?;
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

/// A connection or a transaction: both run queries.
pub trait Query {
    fn query(&self, statement: &str, params: &[Value]) -> Result<sql::Rows, Error>;
}

impl Query for sql::Connection {
    fn query(&self, statement: &str, params: &[Value]) -> Result<sql::Rows, Error> {
        sql::Connection::query(self, statement, params).map_err(host_error)
    }
}

impl Query for sql::Transaction {
    fn query(&self, statement: &str, params: &[Value]) -> Result<sql::Rows, Error> {
        sql::Transaction::query(self, statement, params).map_err(host_error)
    }
}

fn server_now_us(tx: &sql::Transaction) -> Result<i64, Error> {
    let rows = Query::query(
        tx,
        "SELECT (extract(epoch FROM now()) * 1000000)::int8",
        &[],
    )?;
    let value = rows
        .rows
        .first()
        .and_then(|row| row.first())
        .ok_or_else(|| Error::Internal("the server did not say what time it is".into()))?;
    layout::int(value)
}

/// Deletions since `$1` (µs) of rows that are still gone.
fn tombstones_since(tables: &Tables) -> String {
    let [config, auth] = TRACKED_TABLES.map(|t| tables.table(t));
    format!(
        "SELECT d.tbl, d.id FROM {deleted} d \
         WHERE d.deleted_at >= to_timestamp($1::float8 / 1000000) \
         AND NOT (d.tbl = 'config_store' AND EXISTS (SELECT 1 FROM {config} c WHERE c.id = d.id)) \
         AND NOT (d.tbl = 'auth_store' AND EXISTS (SELECT 1 FROM {auth} a WHERE a.id = d.id))",
        deleted = tables.table("storehost_deleted"),
    )
}

fn triggers_on(tx: &sql::Transaction, tables: &Tables, table: &str) -> Result<Vec<String>, Error> {
    let rows = Query::query(
        tx,
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = to_regclass($1::text) AND NOT tgisinternal",
        &[Value::Text(tables.table(table))],
    )?;
    rows.rows
        .iter()
        .map(|row| layout::text(row.first().unwrap_or(&Value::Null)))
        .collect()
}

fn install_statements(tables: &Tables) -> Vec<String> {
    let deleted = tables.table("storehost_deleted");
    let function = tables.table("storehost_track_change");
    let mut statements = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {deleted} (tbl TEXT NOT NULL, id TEXT NOT NULL, \
             deleted_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), PRIMARY KEY (tbl, id))"
        ),
        format!("CREATE INDEX IF NOT EXISTS storehost_deleted_at ON {deleted} (deleted_at)"),
        format!(
            "DELETE FROM {deleted} WHERE deleted_at < NOW() - INTERVAL '{TOMBSTONE_DAYS} days'"
        ),
        // The body names no schema (it uses TG_TABLE_SCHEMA), so no schema
        // name can break out of the quoted body.
        format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $storehost$
             BEGIN
               IF TG_LEVEL = 'ROW' THEN
                 EXECUTE format('INSERT INTO %I.storehost_deleted (tbl, id, deleted_at) VALUES ($1, $2, NOW()) \
                                 ON CONFLICT (tbl, id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at', TG_TABLE_SCHEMA)
                   USING TG_TABLE_NAME::text, COALESCE(to_jsonb(OLD)->>'id', to_jsonb(OLD)->>'auth_id');
               ELSE
                 IF TG_OP = 'TRUNCATE' THEN
                   EXECUTE format('INSERT INTO %I.storehost_deleted (tbl, id, deleted_at) VALUES ($1, $2, NOW()) \
                                   ON CONFLICT (tbl, id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at', TG_TABLE_SCHEMA)
                     USING TG_TABLE_NAME::text, '{TRUNCATED}'::text;
                 END IF;
                 PERFORM pg_notify('storehost_' || md5(TG_TABLE_SCHEMA::text), '');
               END IF;
               RETURN NULL;
             END
             $storehost$"
        ),
    ];
    for table in TRACKED_TABLES {
        statements.push(format!(
            "CREATE INDEX IF NOT EXISTS storehost_{table}_updated_at ON {} (updated_at)",
            tables.table(table)
        ));
    }
    statements
}

fn trigger_statements(tables: &Tables, table: &str) -> [(&'static str, String); 2] {
    let function = tables.table("storehost_track_change");
    let on = tables.table(table);
    [
        (
            ROW_TRIGGER,
            format!(
                "CREATE TRIGGER {ROW_TRIGGER} AFTER DELETE ON {on} \
                 FOR EACH ROW EXECUTE PROCEDURE {function}()"
            ),
        ),
        (
            STATEMENT_TRIGGER,
            format!(
                "CREATE TRIGGER {STATEMENT_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {on} \
                 FOR EACH STATEMENT EXECUTE PROCEDURE {function}()"
            ),
        ),
    ]
}

impl Postgres {
    pub(crate) fn channel(&self) -> Result<String, Error> {
        let (query, params) = self.tables.channel_query();
        let rows = self.db.query(query, &params).map_err(host_error)?;
        let value = rows.rows.first().and_then(|row| row.first());
        crate::layout::text(value.unwrap_or(&sql::Value::Null))
    }

    pub(crate) fn read_one(&self, key: &Key) -> Result<Option<Document>, Error> {
        if key.kind == Kind::Cooldown {
            return crate::cooldown::read(&self.db, &self.tables, &key.id);
        }
        let (statement, id) = self.tables.select_one(key)?;
        let rows = self
            .db
            .query(&statement, &[sql::Value::Text(id)])
            .map_err(host_error)?;
        rows.rows
            .into_iter()
            .next()
            .map(crate::layout::row_document)
            .transpose()
    }

    /// The change tracking; a role that may not add triggers does without.
    pub(crate) fn install_feed(&self) -> Result<(), PrepareError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_what_they_did_not_write() {
        let cursor = Cursor {
            watermark_us: 1_700_000_000_000_000,
            full_at_us: 1_699_999_999_000_000,
        };
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        for foreign in ["", "pg1:", "pg1:1", "pg1:1:2:3", "pg2:1:2", "pg1:x:2"] {
            assert_eq!(Cursor::parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn a_cursor_is_used_only_while_it_can_be_trusted() {
        let full_at_us = 1_700_000_000_000_000;
        let cursor = Cursor {
            watermark_us: full_at_us + 60_000_000,
            full_at_us,
        };
        assert!(cursor.usable_at(cursor.watermark_us + 1));
        assert!(
            !cursor.usable_at(cursor.watermark_us - 1),
            "clock went backwards"
        );
        assert!(
            !cursor.usable_at(full_at_us + FULL_EVERY_US),
            "time for a complete pull"
        );
    }
}
