//! The tables: where each document lives, the statements that
//! create and read them, and row decoding.

use crate::errors::{PrepareError, prepare_error};
use storehost_sdk::capabilities::sql::{self, Value};
use storehost_sdk::ids::{check_auth_id, is_cooldown_id};
use storehost_sdk::{CONFIG_ID, Document, Entry, Error, Key, Kind};

/// The config's row id in `config_store` (what existing deployments use).
const CONFIG_ROW: &str = "config";

pub struct Tables {
    schema: String,
    quoted: String,
}

/// A schema or table `prepare` creates when `probe` (given `name`) says it
/// is missing.
pub struct SchemaObject {
    pub probe: &'static str,
    pub name: Value,
    pub create: String,
}

/// Where a key lives: table, row id, and how its content is stored.
pub(crate) struct Place {
    pub table: &'static str,
    pub id: String,
    pub json: bool,
}

impl Tables {
    pub fn new(schema: &str) -> Tables {
        Tables {
            schema: schema.to_string(),
            quoted: format!("\"{}\"", schema.replace('"', "\"\"")),
        }
    }

    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.quoted)
    }

    /// The schema and tables, each with a probe that says whether it exists:
    /// creating only what is missing lets a role without CREATE rights run
    /// on tables someone else made.
    pub fn schema_objects(&self) -> Vec<SchemaObject> {
        let columns = |content: &str| {
            format!(
                "(id TEXT PRIMARY KEY, content {content} NOT NULL, \
                 created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"
            )
        };
        let table = |name: &str, content: &str| SchemaObject {
            probe: "SELECT to_regclass($1::text) IS NOT NULL",
            name: Value::Text(self.table(name)),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {} {}",
                self.table(name),
                columns(content)
            ),
        };
        vec![
            SchemaObject {
                probe: "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1::text)",
                name: Value::Text(self.schema.clone()),
                create: format!("CREATE SCHEMA IF NOT EXISTS {}", self.quoted),
            },
            table("config_store", "TEXT"),
            table("auth_store", "JSONB"),
            table("storehost_meta", "TEXT"),
            SchemaObject {
                probe: "SELECT to_regclass($1::text) IS NOT NULL",
                name: Value::Text(self.table(crate::cooldown::TABLE)),
                create: crate::cooldown::create_table(self),
            },
        ]
    }

    /// Every document: kind, id, version, size, modified ms (and content).
    /// With `since`, only rows updated at or after `$1` (µs since the epoch).
    pub fn select_documents(&self, with_content: bool, since: bool) -> String {
        let content = if with_content { "t" } else { "NULL::text" };
        let recent = if since {
            "updated_at >= to_timestamp($1::float8 / 1000000)"
        } else {
            "TRUE"
        };
        // The content as text once per row: its hash, length and value.
        let part = |kind: &str, table: &str, filter: &str| {
            format!(
                "SELECT '{kind}'::text, id, md5(t), octet_length(t)::int8, \
                 (extract(epoch FROM updated_at) * 1000)::int8, {content} \
                 FROM (SELECT id, updated_at, content::text AS t FROM {} WHERE {filter} AND {recent}) AS d",
                self.table(table)
            )
        };
        [
            part("config", "config_store", &format!("id = '{CONFIG_ROW}'")),
            part("auth", "auth_store", "TRUE"),
            part("meta", "storehost_meta", "TRUE"),
        ]
        .join(" UNION ALL ")
    }

    pub fn select_one(&self, key: &Key) -> Result<(String, String), Error> {
        let place = place(key)?;
        let statement = format!(
            "SELECT '{}'::text, id, md5(content::text), octet_length(content::text)::int8, \
             (extract(epoch FROM updated_at) * 1000)::int8, content::text FROM {} WHERE id = $1",
            kind_name(key.kind),
            self.table(place.table)
        );
        Ok((statement, place.id))
    }

    /// The NOTIFY channel: hashed, because a channel name is limited to 63
    /// bytes and a schema name alone may be that long.
    pub fn channel_query(&self) -> (&'static str, Vec<Value>) {
        (
            "SELECT 'storehost_' || md5($1::text)",
            vec![Value::Text(self.schema.clone())],
        )
    }

    /// Tells listening instances that something changed (sent at commit).
    pub fn notify_statement(&self) -> (&'static str, Vec<Value>) {
        (
            "SELECT pg_notify('storehost_' || md5($1::text), '')",
            vec![Value::Text(self.schema.clone())],
        )
    }

    /// Serialises schema changes between instances starting together.
    pub fn ddl_lock(&self) -> (&'static str, Vec<Value>) {
        (
            "SELECT pg_advisory_xact_lock(hashtext('storehost:' || $1::text))",
            vec![Value::Text(self.schema.clone())],
        )
    }
}

pub(crate) fn place(key: &Key) -> Result<Place, Error> {
    let checked = |id: &str| {
        check_auth_id(id).map_err(|problem| Error::Invalid(format!("id {id:?}: {problem}")))?;
        Ok::<_, Error>(id.to_string())
    };
    match key.kind {
        Kind::Config if key.id == CONFIG_ID => Ok(Place {
            table: "config_store",
            id: CONFIG_ROW.into(),
            json: false,
        }),
        Kind::Config => Err(Error::Invalid(format!("config id must be `{CONFIG_ID}`"))),
        Kind::Auth if is_cooldown_id(&key.id) => Err(Error::Invalid(format!(
            "{:?} is cooldown state, never an auth_store row",
            key.id
        ))),
        Kind::Auth => Ok(Place {
            table: "auth_store",
            id: checked(&key.id)?,
            json: true,
        }),
        // (cooldown state is rows of its own table: see `cooldown`)
        Kind::Cooldown => Err(Error::Invalid(format!(
            "cooldown state {:?} is not one row",
            key.id
        ))),
        Kind::Meta => Ok(Place {
            table: "storehost_meta",
            id: checked(&key.id)?,
            json: false,
        }),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => "config",
        Kind::Auth => "auth",
        Kind::Meta => "meta",
        Kind::Cooldown => "cooldown",
    }
}

pub fn text(value: &Value) -> Result<String, Error> {
    match value {
        Value::Text(text) => Ok(text.clone()),
        other => Err(Error::Internal(format!("expected text, got {other:?}"))),
    }
}

pub fn int(value: &Value) -> Result<i64, Error> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(Error::Internal(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

/// Decodes `kind, id, version, size, modified ms, content` into a document.
pub fn row_document(row: Vec<Value>) -> Result<Document, Error> {
    let columns = row.len();
    let Ok([kind, id, version, size, modified, content]) = <[Value; 6]>::try_from(row) else {
        return Err(Error::Internal(format!(
            "unexpected row shape: {columns} columns"
        )));
    };
    let kind = match &kind {
        Value::Text(kind) if kind == "config" => Kind::Config,
        Value::Text(kind) if kind == "auth" => Kind::Auth,
        Value::Text(_) => Kind::Meta,
        other => return Err(Error::Internal(format!("expected text, got {other:?}"))),
    };
    let id = if kind == Kind::Config {
        CONFIG_ID.to_string()
    } else {
        into_text(id)?
    };
    let content = match content {
        Value::Text(text) => text.into_bytes(),
        _ => Vec::new(),
    };
    let entry = Entry {
        key: Key { kind, id },
        version: into_text(version)?,
        size: int(&size)? as u64,
        modified_ms: int(&modified).ok(),
    };
    Ok(Document { entry, content })
}

fn into_text(value: Value) -> Result<String, Error> {
    match value {
        Value::Text(text) => Ok(text),
        other => Err(Error::Internal(format!("expected text, got {other:?}"))),
    }
}

impl crate::Postgres {
    /// The schema and tables, in one transaction under the DDL lock.
    pub(crate) fn create_schema(&self) -> Result<(), PrepareError> {
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
}
