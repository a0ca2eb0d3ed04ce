//! Writes: one transaction per batch, each change a compare-and-swap on
//! `md5(content::text)`; a failed precondition rolls the batch back.

use crate::Postgres;
use crate::layout::{Place, Tables, int, place, text};
use storehost_sdk::capabilities::sql::{self, Value};
use storehost_sdk::{Change, Entry, Error, Kind, Precondition, host_error};

impl Postgres {
    pub(crate) fn apply_changes(&self, changes: Vec<Change>) -> Result<Vec<Option<Entry>>, Error> {
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
}

impl Tables {
    /// One change inside the batch transaction; a failed precondition is a
    /// conflict and the caller drops (rolls back) the transaction.
    pub fn apply_one(
        &self,
        tx: &sql::Transaction,
        change: &Change,
    ) -> Result<Option<Entry>, Error> {
        let (key, precondition) = (change.key(), change.precondition());
        if key.kind == Kind::Cooldown {
            return crate::cooldown::apply_one(tx, self, change);
        }
        let place = place(key)?;
        let table = self.table(place.table);
        let id = Value::Text(place.id.clone());
        let returning = "RETURNING md5(content::text), octet_length(content::text)::int8, \
                         (extract(epoch FROM updated_at) * 1000)::int8";
        let conflict = || Error::Conflict(key.clone());
        match change {
            Change::Put(put) => {
                let content = content_value(&place, &put.content)?;
                let cast = if place.json { "::jsonb" } else { "" };
                let (statement, params) = match precondition {
                    Precondition::Any => (
                        format!(
                            "INSERT INTO {table} (id, content, created_at, updated_at) VALUES ($1, $2{cast}, NOW(), NOW()) \
                             ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, updated_at = NOW() {returning}"
                        ),
                        vec![id, content],
                    ),
                    Precondition::Absent => (
                        format!(
                            "INSERT INTO {table} (id, content, created_at, updated_at) VALUES ($1, $2{cast}, NOW(), NOW()) \
                             ON CONFLICT (id) DO NOTHING {returning}"
                        ),
                        vec![id, content],
                    ),
                    Precondition::Matches(version) => (
                        format!(
                            "UPDATE {table} SET content = $2{cast}, updated_at = NOW() \
                             WHERE id = $1 AND md5(content::text) = $3 {returning}"
                        ),
                        vec![id, content, Value::Text(version.clone())],
                    ),
                };
                let rows = tx.query(&statement, &params).map_err(host_error)?;
                let row = rows.rows.first().ok_or_else(conflict)?;
                let (version, size, modified_ms) =
                    (text(&row[0])?, int(&row[1])?, int(&row[2]).ok());
                Ok(Some(Entry {
                    key: key.clone(),
                    version,
                    size: size as u64,
                    modified_ms,
                }))
            }
            Change::Remove(_) => {
                let (statement, params) = match precondition {
                    Precondition::Any => (format!("DELETE FROM {table} WHERE id = $1"), vec![id]),
                    Precondition::Absent => {
                        (format!("SELECT 1 FROM {table} WHERE id = $1"), vec![id])
                    }
                    Precondition::Matches(version) => (
                        format!("DELETE FROM {table} WHERE id = $1 AND md5(content::text) = $2"),
                        vec![id, Value::Text(version.clone())],
                    ),
                };
                let affected = tx.execute(&statement, &params).map_err(host_error)?;
                let holds = match precondition {
                    Precondition::Any => true,
                    Precondition::Absent => affected == 0,
                    Precondition::Matches(_) => affected == 1,
                };
                if holds { Ok(None) } else { Err(conflict()) }
            }
        }
    }
}

fn content_value(place: &Place, content: &[u8]) -> Result<Value, Error> {
    let text = String::from_utf8(content.to_vec())
        .map_err(|_| Error::Invalid("content is not UTF-8".into()))?;
    if text.contains('\0') {
        return Err(Error::Invalid("PostgreSQL text cannot hold NUL".into()));
    }
    Ok(if place.json {
        Value::Json(text)
    } else {
        Value::Text(text)
    })
}
