//! The `sql` capability: PostgreSQL through a host-side sqlx pool. The DSN
//! is a secret handle resolved here; it never enters the guest, a log line
//! or an error message.

use super::secrets::SecretHandle;
use super::{Capability, HostState};
use crate::runtime::bindings::storehost::plugin::sql::{
    Host, HostConnection, HostTransaction, Notification, Rows, Value,
};
use crate::runtime::bindings::wit_types::HostError;
use sqlx::postgres::{PgArguments, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Column, Postgres, Row, TypeInfo, ValueRef};
use std::time::Duration;
use wasmtime::component::Resource;

/// How long a statement may run before the server cancels it.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a pooled connection (or to open one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool of connections to one database.
pub struct Connection {
    pool: PgPool,
    listener: Option<PgListener>,
}

/// An open transaction; dropped without `commit`, it rolls back.
pub struct Transaction {
    tx: sqlx::Transaction<'static, Postgres>,
}

type Answer<T> = wasmtime::Result<Result<T, HostError>>;

impl Host for HostState {
    async fn connect(&mut self, dsn: Resource<SecretHandle>) -> Answer<Resource<Connection>> {
        if !self.grants.allows(Capability::Sql) {
            return Ok(Err(self.denied(Capability::Sql)));
        }
        let dsn = match self.resolve_secret(&dsn) {
            Ok(dsn) => dsn,
            Err(e) => return Ok(Err(e)),
        };
        let options = match super::pg_dsn::connect_options(dsn.expose()) {
            Ok(options) => options,
            Err(problem) => return Ok(Err(HostError::Invalid(problem.to_string()))),
        };
        // One direct attempt first: a pool retries until its timeout and
        // would hide "authentication failed" behind "timed out".
        match sqlx::ConnectOptions::connect(&options).await {
            Ok(probe) => {
                let _ = sqlx::Connection::close(probe).await;
            }
            Err(e) => return Ok(Err(map_error(e))),
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    let timeout =
                        format!("SET statement_timeout = {}", STATEMENT_TIMEOUT.as_millis());
                    sqlx::query(sqlx::AssertSqlSafe(timeout))
                        .execute(connection)
                        .await
                        .map(drop)
                })
            })
            .connect_lazy_with(options);
        Ok(Ok(self.table.push(Connection {
            pool,
            listener: None,
        })?))
    }
}

impl HostConnection for HostState {
    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<Value>,
    ) -> Answer<u64> {
        let pool = self.table.get(&connection)?.pool.clone();
        Ok(run_execute(&pool, &statement, params).await)
    }

    async fn query(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<Value>,
    ) -> Answer<Rows> {
        let pool = self.table.get(&connection)?.pool.clone();
        Ok(run_query(&pool, &statement, params).await)
    }

    async fn begin(&mut self, connection: Resource<Connection>) -> Answer<Resource<Transaction>> {
        let pool = self.table.get(&connection)?.pool.clone();
        match pool.begin().await {
            Ok(tx) => Ok(Ok(self.table.push(Transaction { tx })?)),
            Err(e) => Ok(Err(map_error(e))),
        }
    }

    async fn listen(&mut self, connection: Resource<Connection>, channel: String) -> Answer<()> {
        let connection = self.table.get_mut(&connection)?;
        if connection.listener.is_none() {
            match PgListener::connect_with(&connection.pool).await {
                Ok(listener) => connection.listener = Some(listener),
                Err(e) => return Ok(Err(map_error(e))),
            }
        }
        let listener = connection.listener.as_mut().expect("just set");
        Ok(listener.listen(&channel).await.map_err(map_error))
    }

    async fn wait_notification(
        &mut self,
        connection: Resource<Connection>,
        timeout_ms: u32,
    ) -> Answer<Option<Notification>> {
        let connection = self.table.get_mut(&connection)?;
        let Some(listener) = connection.listener.as_mut() else {
            return Ok(Err(HostError::Invalid(
                "call listen before wait-notification".into(),
            )));
        };
        match tokio::time::timeout(
            Duration::from_millis(u64::from(timeout_ms)),
            listener.recv(),
        )
        .await
        {
            Err(_elapsed) => Ok(Ok(None)),
            Ok(Ok(notification)) => Ok(Ok(Some(Notification {
                channel: notification.channel().to_string(),
                payload: notification.payload().to_string(),
            }))),
            Ok(Err(e)) => Ok(Err(map_error(e))),
        }
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        // Not `pool.close().await`: it would wait for the listener's
        // connection forever. Dropping lets the connections go in the
        // background.
        drop(self.table.delete(connection)?);
        Ok(())
    }
}

impl HostTransaction for HostState {
    async fn execute(
        &mut self,
        tx: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> Answer<u64> {
        let transaction = self.table.get_mut(&tx)?;
        Ok(run_execute(&mut *transaction.tx, &statement, params).await)
    }

    async fn query(
        &mut self,
        tx: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> Answer<Rows> {
        let transaction = self.table.get_mut(&tx)?;
        Ok(run_query(&mut *transaction.tx, &statement, params).await)
    }

    async fn commit(&mut self, tx: Resource<Transaction>) -> Answer<()> {
        let transaction = self.table.delete(tx)?;
        Ok(transaction.tx.commit().await.map_err(map_error))
    }

    async fn drop(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<()> {
        // Dropping the sqlx transaction rolls it back.
        self.table.delete(tx)?;
        Ok(())
    }
}

async fn run_execute<'e, E>(
    executor: E,
    statement: &str,
    params: Vec<Value>,
) -> Result<u64, HostError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let arguments = bind_all(params)?;
    sqlx::query_with(plugin_sql(statement), arguments)
        .execute(executor)
        .await
        .map(|done| done.rows_affected())
        .map_err(map_error)
}

async fn run_query<'e, E>(
    executor: E,
    statement: &str,
    params: Vec<Value>,
) -> Result<Rows, HostError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let arguments = bind_all(params)?;
    let rows = sqlx::query_with(plugin_sql(statement), arguments)
        .fetch_all(executor)
        .await
        .map_err(map_error)?;
    let columns = rows
        .first()
        .map(|row| row.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default();
    let rows = rows.iter().map(decode_row).collect::<Result<_, _>>()?;
    Ok(Rows { columns, rows })
}

/// Statements come from the plugin by design; every value in them is a
/// bound parameter, never spliced text.
fn plugin_sql(statement: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(statement.to_string())
}

fn bind_all(params: Vec<Value>) -> Result<PgArguments, HostError> {
    use sqlx::Arguments;
    let mut arguments = PgArguments::default();
    for param in params {
        let bound = match param {
            // Untyped in the protocol: the statement gives the type ($1::int).
            Value::Null => arguments.add(Option::<String>::None),
            Value::Boolean(b) => arguments.add(b),
            Value::Int(i) => arguments.add(i),
            Value::Float(f) => arguments.add(f),
            Value::Text(t) => arguments.add(t),
            Value::Bytes(b) => arguments.add(b),
            Value::Json(text) => {
                let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    HostError::Invalid(format!("a json parameter is not JSON: {e}"))
                })?;
                arguments.add(sqlx::types::Json(json))
            }
            Value::TimestampMs(ms) => {
                let time = chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                    HostError::Invalid(format!("timestamp {ms} ms is out of range"))
                })?;
                arguments.add(time)
            }
        };
        bound.map_err(|e| HostError::Invalid(format!("cannot bind a parameter: {e}")))?;
    }
    Ok(arguments)
}

fn decode_row(row: &PgRow) -> Result<Vec<Value>, HostError> {
    (0..row.columns().len())
        .map(|i| decode_value(row, i))
        .collect()
}

fn decode_value(row: &PgRow, index: usize) -> Result<Value, HostError> {
    let raw = row.try_get_raw(index).map_err(map_error)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let column = &row.columns()[index];
    let type_name = column.type_info().name().to_string();
    let decode_error =
        |e: sqlx::Error| HostError::Internal(format!("column {}: {e}", column.name()));
    let value = match type_name.as_str() {
        "BOOL" => Value::Boolean(row.try_get(index).map_err(decode_error)?),
        "INT2" => Value::Int(i64::from(
            row.try_get::<i16, _>(index).map_err(decode_error)?,
        )),
        "INT4" => Value::Int(i64::from(
            row.try_get::<i32, _>(index).map_err(decode_error)?,
        )),
        "INT8" => Value::Int(row.try_get(index).map_err(decode_error)?),
        "FLOAT4" => Value::Float(f64::from(
            row.try_get::<f32, _>(index).map_err(decode_error)?,
        )),
        "FLOAT8" => Value::Float(row.try_get(index).map_err(decode_error)?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
            Value::Text(row.try_get(index).map_err(decode_error)?)
        }
        "BYTEA" => Value::Bytes(row.try_get(index).map_err(decode_error)?),
        "JSON" | "JSONB" => {
            let json: serde_json::Value = row.try_get(index).map_err(decode_error)?;
            Value::Json(json.to_string())
        }
        "TIMESTAMPTZ" => {
            let time: chrono::DateTime<chrono::Utc> = row.try_get(index).map_err(decode_error)?;
            Value::TimestampMs(time.timestamp_millis())
        }
        other => {
            return Err(HostError::Invalid(format!(
                "column {} has type {other}, which the sql capability does not decode; cast it in SQL (e.g. ::text)",
                column.name()
            )));
        }
    };
    Ok(value)
}

/// Maps sqlx errors onto the contract. Messages come from the server or the
/// driver and never contain the DSN.
pub fn map_error(error: sqlx::Error) -> HostError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let message = db.message().to_string();
            match code.as_str() {
                "23505" | "40001" | "40P01" => HostError::Conflict(message),
                "57014" | "57P01" | "57P02" | "57P03" | "53300" => HostError::Unavailable(message),
                "28P01" | "28000" => HostError::Denied(format!("authentication failed: {message}")),
                "42501" => HostError::Denied(message),
                c if c.starts_with("08") => HostError::Unavailable(message),
                c if c.starts_with("42") || c.starts_with("22") || c.starts_with("23") => {
                    HostError::Invalid(message)
                }
                _ => HostError::Internal(format!("{message} (SQLSTATE {code})")),
            }
        }
        // rustls reports a certificate it does not trust as invalid data.
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            HostError::Unavailable(format!("TLS with the database failed: {e}"))
        }
        sqlx::Error::Io(e) => HostError::Unavailable(format!("database unreachable: {e}")),
        sqlx::Error::Tls(e) => HostError::Unavailable(format!("TLS with the database failed: {e}")),
        sqlx::Error::PoolTimedOut => {
            HostError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            HostError::Unavailable("the database connection closed".into())
        }
        sqlx::Error::Configuration(_) => {
            HostError::Invalid("the database connection settings are invalid".into())
        }
        sqlx::Error::Protocol(m) => HostError::Internal(format!("database protocol error: {m}")),
        _ => HostError::Internal(error.to_string()),
    }
}
