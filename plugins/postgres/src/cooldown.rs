//! The proxy's cooldown state in `cooldown_store`, exactly as the Go store
//! keeps it: one row per (auth_id, model), content the compact record JSON,
//! rows never deleted but tombstoned (`{}`, `deleted = TRUE`), and every
//! write guarded by `updated_at <= EXCLUDED.updated_at` so an older write
//! never wins, whichever program makes it.
//!
//! A cooldown document (`team/a_b.com.cds`) is the set of live rows whose
//! auth id the proxy's naming rule puts in that file; its content is built
//! from them, and writing it upserts its records and tombstones the rows of
//! that file it no longer has.

use crate::feed::Query;
use crate::layout::{Tables, int, text};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use storehost_sdk::capabilities::sql::{self, Value};
use storehost_sdk::ids::{check_cooldown_id, cooldown_file_for};
use storehost_sdk::{Change, Document, Entry, Error, Key, Kind, Precondition, host_error};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const TABLE: &str = "cooldown_store";

/// The reference's DDL.
pub fn create_table(tables: &Tables) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (auth_id TEXT NOT NULL, model TEXT NOT NULL DEFAULT '', \
         content JSONB NOT NULL, deleted BOOLEAN NOT NULL DEFAULT FALSE, \
         created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), \
         PRIMARY KEY (auth_id, model))",
        tables.table(TABLE)
    )
}

/// `'epoch' + $n µs` as a timestamptz: exact, where a float would round.
fn at_micros(param: usize) -> String {
    format!("('epoch'::timestamptz + ${param}::int8 * interval '1 microsecond')")
}

/// One row of `cooldown_store`.
#[derive(Debug, Clone)]
pub struct Row {
    pub auth_id: String,
    pub model: String,
    pub content: String,
    pub updated_us: i64,
    pub deleted: bool,
}

impl Row {
    /// The cooldown file this row belongs to, if its auth id names one.
    fn file(&self) -> Option<String> {
        file_of(&self.auth_id)
    }
}

/// The cooldown file an auth id's rows belong to, if it names one.
fn file_of(auth_id: &str) -> Option<String> {
    cooldown_file_for(auth_id).filter(|id| check_cooldown_id(id).is_ok())
}

/// Every row, live and tombstoned; locked for the transaction's writes
/// when `for_update`.
pub fn rows(via: &impl Query, tables: &Tables, for_update: bool) -> Result<Vec<Row>, Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let statement = format!(
        "SELECT auth_id, model, content::text, (extract(epoch FROM updated_at) * 1000000)::int8, deleted \
         FROM {}{lock}",
        tables.table(TABLE)
    );
    let answer = via.query(&statement, &[])?;
    answer.rows.iter().map(|row| decode_row(row)).collect()
}

fn decode_row(row: &[Value]) -> Result<Row, Error> {
    let [auth_id, model, content, updated, deleted] = row else {
        return Err(Error::Internal(
            "unexpected cooldown_store row shape".into(),
        ));
    };
    Ok(Row {
        auth_id: text(auth_id)?,
        model: text(model)?,
        content: text(content)?,
        updated_us: int(updated)?,
        deleted: matches!(deleted, Value::Boolean(true)),
    })
}

/// The live rows of each cooldown file, by file id.
fn live_files(rows: &[Row]) -> BTreeMap<String, Vec<&Row>> {
    let mut files: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for row in rows.iter().filter(|row| !row.deleted) {
        match row.file() {
            Some(file) => files.entry(file).or_default().push(row),
            None => storehost_sdk::log::warn(&format!(
                "cooldown_store row for auth {:?} names no cooldown file; skipped",
                row.auth_id
            )),
        }
    }
    files
}

/// A file as the proxy writes it (two-space indent, a trailing newline)
/// around its rows' records, sorted by auth id and model.
fn document(id: &str, rows: &[&Row]) -> Document {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| (&a.auth_id, &a.model).cmp(&(&b.auth_id, &b.model)));
    let records: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|row| match serde_json::from_str(&row.content) {
            Ok(record @ serde_json::Value::Object(_)) => Some(record),
            _ => {
                storehost_sdk::log::warn(&format!(
                    "cooldown_store row ({:?}, {:?}) holds no JSON object; left out",
                    row.auth_id, row.model
                ));
                None
            }
        })
        .collect();
    let newest_us = rows.iter().map(|row| row.updated_us).max().unwrap_or(0);
    let file = serde_json::json!({
        "version": 1,
        "updated_at": rfc3339(newest_us),
        "records": records,
    });
    let mut content = serde_json::to_vec_pretty(&file).unwrap_or_default();
    content.push(b'\n');
    Document {
        entry: Entry {
            key: Key {
                kind: Kind::Cooldown,
                id: id.to_string(),
            },
            version: hex::encode(&Sha256::digest(&content)[..16]),
            size: content.len() as u64,
            modified_ms: Some(newest_us / 1000),
        },
        content,
    }
}

fn rfc3339(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// Every cooldown file.
pub fn all_documents(rows: &[Row]) -> Vec<Document> {
    live_files(rows)
        .iter()
        .map(|(id, rows)| document(id, rows))
        .collect()
}

/// What a delta pull says of cooldown state: every file, and every file
/// left with tombstones only or whose rows were deleted outright (the auth
/// ids in `deleted_auth_ids`), as removed. A row's `updated_at` is its
/// record's time, which may be long past, so it cannot tell what changed
/// since a cursor; the table is one row per cooling account and model, and
/// the host skips what it already has.
pub fn delta(rows: &[Row], deleted_auth_ids: &[String]) -> (Vec<Document>, Vec<Key>) {
    let live = live_files(rows);
    let tombstoned = rows.iter().filter(|row| row.deleted).filter_map(Row::file);
    let deleted = deleted_auth_ids.iter().filter_map(|id| file_of(id));
    let tombstoned: BTreeSet<String> = tombstoned
        .chain(deleted)
        .filter(|file| !live.contains_key(file))
        .collect();
    let documents = live.iter().map(|(id, rows)| document(id, rows)).collect();
    let removed = tombstoned
        .into_iter()
        .map(|id| Key {
            kind: Kind::Cooldown,
            id,
        })
        .collect();
    (documents, removed)
}

/// One file, or `None` when no live row belongs to it.
pub fn read(via: &impl Query, tables: &Tables, id: &str) -> Result<Option<Document>, Error> {
    let rows = rows(via, tables, false)?;
    Ok(live_files(&rows).get(id).map(|rows| document(id, rows)))
}

/// A record a cooldown file holds, as a row.
#[derive(Debug)]
struct Record {
    auth_id: String,
    model: String,
    json: String,
    /// `None` for a zero or missing time: the server's now.
    updated_us: Option<i64>,
}

/// The records of a cooldown file, as the proxy loads them: keys matched
/// in any case, records without an auth id skipped.
fn records(content: &[u8]) -> Result<Vec<Record>, Error> {
    let invalid = |why: &str| Error::Invalid(format!("cooldown state: {why}"));
    let value: serde_json::Value =
        serde_json::from_slice(content).map_err(|e| invalid(&e.to_string()))?;
    let records = match field(&value, "records") {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(records)) => records,
        Some(_) => return Err(invalid("`records` is not a list")),
    };
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let text_field = |name| {
            field(record, name)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        let auth_id = text_field("auth_id");
        if auth_id.is_empty() {
            continue;
        }
        let updated_us = field(record, "updated_at")
            .and_then(serde_json::Value::as_str)
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
            .filter(|at| at.year() > 1)
            .map(|at| (at.unix_timestamp_nanos() / 1000) as i64);
        out.push(Record {
            model: text_field("model"),
            json: record.to_string(),
            auth_id,
            updated_us,
        });
    }
    Ok(out)
}

fn field<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    value
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// Upserts `records` with the guard: a row written later than a record
/// keeps its content.
fn upsert(tx: &sql::Transaction, tables: &Tables, records: &[Record]) -> Result<(), Error> {
    let statement = format!(
        "INSERT INTO {table} AS t (auth_id, model, content, deleted, created_at, updated_at) \
         VALUES ($1, $2, $3, FALSE, NOW(), COALESCE({at}, NOW())) \
         ON CONFLICT (auth_id, model) DO UPDATE SET content = EXCLUDED.content, deleted = FALSE, \
         updated_at = EXCLUDED.updated_at WHERE t.updated_at <= EXCLUDED.updated_at",
        table = tables.table(TABLE),
        at = at_micros(4),
    );
    for record in records {
        let updated = record.updated_us.map_or(Value::Null, Value::Int);
        let params = [
            Value::Text(record.auth_id.clone()),
            Value::Text(record.model.clone()),
            Value::Json(record.json.clone()),
            updated,
        ];
        tx.execute(&statement, &params).map_err(host_error)?;
    }
    Ok(())
}

/// Tombstones a row as the Go store does: only if it is still live and no
/// one wrote it since it was read.
fn tombstone(tx: &sql::Transaction, tables: &Tables, row: &Row) -> Result<(), Error> {
    let statement = format!(
        "UPDATE {table} SET content = '{{}}'::jsonb, deleted = TRUE, \
         updated_at = GREATEST(NOW(), updated_at + interval '1 microsecond') \
         WHERE auth_id = $1 AND model = $2 AND NOT deleted AND updated_at <= {at}",
        table = tables.table(TABLE),
        at = at_micros(3),
    );
    let params = [
        Value::Text(row.auth_id.clone()),
        Value::Text(row.model.clone()),
        Value::Int(row.updated_us),
    ];
    tx.execute(&statement, &params)
        .map(drop)
        .map_err(host_error)
}

/// One cooldown change inside the batch transaction.
pub fn apply_one(
    tx: &sql::Transaction,
    tables: &Tables,
    change: &Change,
) -> Result<Option<Entry>, Error> {
    let key = change.key();
    check_cooldown_id(&key.id).map_err(|p| Error::Invalid(format!("id {:?}: {p}", key.id)))?;
    // Storehost writers take turns on cooldown files; the Go store's
    // writes are kept apart by the updated_at guard alone.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('storehost-cooldown:' || $1::text))",
        &[Value::Text(tables.table(TABLE))],
    )
    .map_err(host_error)?;
    let before = rows(tx, tables, true)?;
    let live = live_files(&before);
    let current: Vec<&Row> = live.get(&key.id).cloned().unwrap_or_default();
    let current_version = (!current.is_empty()).then(|| document(&key.id, &current).entry.version);
    let holds = match change.precondition() {
        Precondition::Any => true,
        Precondition::Absent => current_version.is_none(),
        Precondition::Matches(version) => current_version.as_ref() == Some(version),
    };
    if !holds {
        return Err(Error::Conflict(key.clone()));
    }
    let kept: Vec<Record> = match change {
        Change::Put(put) => records(&put.content)?,
        Change::Remove(_) => Vec::new(),
    };
    upsert(tx, tables, &kept)?;
    let kept_keys: BTreeSet<(&str, &str)> = kept
        .iter()
        .map(|r| (r.auth_id.as_str(), r.model.as_str()))
        .collect();
    for row in current {
        if !kept_keys.contains(&(row.auth_id.as_str(), row.model.as_str())) {
            tombstone(tx, tables, row)?;
        }
    }
    Ok(match change {
        Change::Put(_) => Some(entry_now(tx, tables, &key.id, &kept)?),
        Change::Remove(_) => None,
    })
}

/// The file's entry after this transaction's writes (empty when every
/// record lost to a newer row and none is live). When a newer row kept
/// some record out, the version is one no read answers, so the host's
/// next pull brings the file as it is now into the workspace.
fn entry_now(
    tx: &sql::Transaction,
    tables: &Tables,
    id: &str,
    written: &[Record],
) -> Result<Entry, Error> {
    let after = rows(tx, tables, false)?;
    let rows = live_files(&after).remove(id).unwrap_or_default();
    let mut entry = document(id, &rows).entry;
    let took = |record: &Record| {
        rows.iter().any(|row| {
            row.auth_id == record.auth_id
                && row.model == record.model
                && record.updated_us.is_none_or(|us| us == row.updated_us)
        })
    };
    if !written.iter().all(took) {
        entry.version.push_str("-superseded");
    }
    Ok(entry)
}

/// Rows an earlier storehost pushed into `auth_store` as auths named
/// `*.cds`: each is moved into `cooldown_store` (guarded like any write)
/// and its auth row removed, once. One that does not parse is left alone.
pub fn migrate_auth_rows(db: &sql::Connection, tables: &Tables) -> Result<(), Error> {
    let auths = tables.table("auth_store");
    let found = db
        .query(
            &format!("SELECT id, content::text FROM {auths} WHERE lower(id) LIKE '%.cds'"),
            &[],
        )
        .map_err(host_error)?;
    for row in &found.rows {
        let [id, content] = row.as_slice() else {
            return Err(Error::Internal("unexpected auth_store row shape".into()));
        };
        let (id, content) = (text(id)?, text(content)?);
        let records = match records(content.as_bytes()) {
            Ok(records) => records,
            Err(problem) => {
                storehost_sdk::log::warn(&format!(
                    "auth_store row {id:?} is named like cooldown state but does not parse \
                     ({problem:?}); left in place, never read as an auth"
                ));
                continue;
            }
        };
        let tx = db.begin().map_err(host_error)?;
        upsert(&tx, tables, &records)?;
        tx.execute(
            &format!("DELETE FROM {auths} WHERE id = $1"),
            &[Value::Text(id.clone())],
        )
        .map_err(host_error)?;
        sql::Transaction::commit(tx).map_err(host_error)?;
        storehost_sdk::log::info(&format!(
            "moved auth_store row {id:?} ({} records) to cooldown_store: it is cooldown state, not an auth",
            records.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(auth_id: &str, model: &str, updated_us: i64, deleted: bool) -> Row {
        Row {
            auth_id: auth_id.into(),
            model: model.into(),
            content: format!(r#"{{"auth_id":"{auth_id}","model":"{model}"}}"#),
            updated_us,
            deleted,
        }
    }

    #[test]
    fn rows_make_files_named_by_the_proxy_rule() {
        let rows = [
            row("team/a@b.com.json", "m2", 2, false),
            row("team/a@b.com.json", "m1", 3, false),
            row("claude:apikey:3f2a", "", 1, false),
            row("gone.json", "", 5, true),
        ];
        let documents = all_documents(&rows);
        let ids: Vec<&str> = documents.iter().map(|d| d.entry.key.id.as_str()).collect();
        assert_eq!(ids, ["claude_apikey_3f2a.cds", "team/a_b.com.cds"]);
        let team: serde_json::Value = serde_json::from_slice(&documents[1].content).unwrap();
        let models: Vec<&str> = team["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["model"].as_str().unwrap())
            .collect();
        assert_eq!(models, ["m1", "m2"]);
        assert!(documents[1].content.ends_with(b"}\n"));
        // Rows deleted outright: a file left with no live row is removed,
        // one that still has a live row is not.
        let deleted = ["erased@x.json".to_string(), "claude:apikey:3f2a".into()];
        let (all, removed) = delta(&rows, &deleted);
        assert_eq!(all.len(), 2);
        let removed: Vec<&str> = removed.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(removed, ["erased_x.cds", "gone.cds"]);
    }

    #[test]
    fn records_are_read_as_the_proxy_reads_them() {
        let content = br#"{"Records":[
            {"AUTH_ID":" a.json ","model":"m","updated_at":"2026-12-05T03:00:00.123456789+01:00"},
            {"auth_id":"","model":"skipped"},
            {"auth_id":"b.json","updated_at":"0001-01-01T00:00:00Z"}
        ]}"#;
        let records = records(content).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].auth_id.as_str(), records[0].model.as_str()),
            ("a.json", "m")
        );
        assert_eq!(records[0].updated_us, Some(1_796_436_000_123_456));
        assert_eq!(records[1].updated_us, None);
        assert!(super::records(b"{\"records\":3}").is_err());
    }
}
