//! Exercises the `sql` capability for the host's tests. `read` of one auth
//! id runs a scenario against the database behind the granted secret `dsn`
//! and returns what it saw, one line per step.

use storehost_sdk::capabilities::{secrets, sql};
use storehost_sdk::{Backend, Change, Document, Entry, Error, Features, Info, Key, Settings};

pub struct SqlProbe;

impl Backend for SqlProbe {
    fn open(_settings: Settings) -> Result<Self, Error> {
        Ok(SqlProbe)
    }

    fn info(&self) -> Info {
        Info {
            name: "sqlprobe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::empty(),
        }
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        let key = keys
            .first()
            .cloned()
            .ok_or_else(|| Error::Invalid("no key".into()))?;
        let lines = run(&key.id).unwrap_or_else(|e| vec![format!("error: {e:?}")]);
        let content = lines.join("\n").into_bytes();
        let entry = Entry {
            key,
            version: "1".into(),
            size: content.len() as u64,
            modified_ms: None,
        };
        Ok(vec![Some(Document { entry, content })])
    }

    fn apply(&self, _changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        Err(Error::Denied("read-only".into()))
    }
}

type Step = Result<Vec<String>, sql::HostError>;

fn connect() -> Result<sql::Connection, sql::HostError> {
    let dsn = secrets::get("dsn")?;
    sql::connect(&dsn)
}

fn run(scenario: &str) -> Step {
    let db = connect()?;
    match scenario {
        "types" => types(&db),
        "conflict" => conflict(&db),
        "transactions" => transactions(&db),
        "notify" => notify(&db),
        "bad-sql" => db
            .execute("SELEC nothing", &[])
            .map(|n| vec![n.to_string()]),
        _ => Ok(vec!["connected".into()]),
    }
}

fn types(db: &sql::Connection) -> Step {
    use sql::Value;
    let params = [
        Value::Int(42),
        Value::Text("héllo".into()),
        Value::Boolean(true),
        Value::Float(1.5),
        Value::Bytes(vec![0, 1, 255]),
        Value::Json("{\"a\":[1,2]}".into()),
        Value::TimestampMs(1_700_000_000_123),
        Value::Null,
    ];
    let rows = db.query("SELECT $1::int8 AS i, $2 AS t, $3 AS b, $4 AS f, $5 AS y, $6::jsonb AS j, $7 AS ts, $8::text AS n", &params)?;
    Ok(vec![
        format!("{:?}", rows.columns),
        format!("{:?}", rows.rows),
    ])
}

fn conflict(db: &sql::Connection) -> Step {
    db.execute(
        "CREATE TABLE IF NOT EXISTS probe_unique (id TEXT PRIMARY KEY)",
        &[],
    )?;
    db.execute("DELETE FROM probe_unique", &[])?;
    let insert = "INSERT INTO probe_unique (id) VALUES ($1)";
    db.execute(insert, &[sql::Value::Text("x".into())])?;
    let second = db.execute(insert, &[sql::Value::Text("x".into())]);
    Ok(vec![format!("{second:?}")])
}

fn transactions(db: &sql::Connection) -> Step {
    db.execute("CREATE TABLE IF NOT EXISTS probe_tx (n INT8)", &[])?;
    db.execute("DELETE FROM probe_tx", &[])?;
    {
        let tx = db.begin()?;
        tx.execute("INSERT INTO probe_tx VALUES (1)", &[])?;
        // Dropped without commit: rolled back.
    }
    let tx = db.begin()?;
    tx.execute("INSERT INTO probe_tx VALUES (2)", &[])?;
    let inside = tx.query("SELECT count(*) FROM probe_tx", &[])?;
    sql::Transaction::commit(tx)?;
    let after = db.query("SELECT n FROM probe_tx ORDER BY n", &[])?;
    Ok(vec![
        format!("inside {:?}", inside.rows),
        format!("after {:?}", after.rows),
    ])
}

fn notify(db: &sql::Connection) -> Step {
    db.listen("probe_channel")?;
    let none = db.wait_notification(50)?;
    db.execute("SELECT pg_notify('probe_channel', 'hello')", &[])?;
    let some = db.wait_notification(5_000)?;
    Ok(vec![
        format!("{none:?}"),
        format!("{:?}", some.map(|n| (n.channel, n.payload))),
    ])
}

storehost_sdk::export_backend!(SqlProbe);
