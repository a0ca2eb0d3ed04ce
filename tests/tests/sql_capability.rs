//! The `sql` capability against a real PostgreSQL server.

use storehost::Key;
use storehost::capabilities::secrets::SecretValue;
use storehost::capabilities::{Capability, Grants};
use storehost::runtime::{Limits, Plugin};
use storehost_tests::postgres::PostgresServer;
use storehost_tests::{guests, load, logs};

fn probe(dsn: &str) -> Plugin {
    let grants = Grants::minimal()
        .with_capability(Capability::Sql)
        .with_secret("dsn", SecretValue::new(dsn));
    load("sqlprobe", guests::SQLPROBE, grants, Limits::default())
}

async fn scenario(plugin: &Plugin, name: &str) -> String {
    let document = plugin.read_one(&Key::auth(name)).await.unwrap().unwrap();
    String::from_utf8(document.content).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn sql_capability_against_a_real_server() {
    let (_guard, captured) = logs::capture();
    let server = PostgresServer::start();
    let plugin = probe(&server.dsn());

    let types = scenario(&plugin, "types").await;
    assert_eq!(
        types,
        "[\"i\", \"t\", \"b\", \"f\", \"y\", \"j\", \"ts\", \"n\"]\n\
         [[Value::Int(42), Value::Text(\"héllo\"), Value::Boolean(true), Value::Float(1.5), Value::Bytes([0, 1, 255]), Value::Json(\"{\\\"a\\\":[1,2]}\"), Value::TimestampMs(1700000000123), Value::Null]]"
    );
    let conflict = scenario(&plugin, "conflict").await;
    assert!(
        conflict.starts_with("Err(HostError::Conflict(") && conflict.contains("duplicate key"),
        "{conflict}"
    );
    let transactions = scenario(&plugin, "transactions").await;
    assert_eq!(
        transactions,
        "inside [[Value::Int(1)]]\nafter [[Value::Int(2)]]"
    );
    let notify = scenario(&plugin, "notify").await;
    assert_eq!(notify, "None\nSome((\"probe_channel\", \"hello\"))");
    let bad = scenario(&plugin, "bad-sql").await;
    assert!(
        bad.starts_with("error: HostError::Invalid(") && bad.contains("syntax error"),
        "{bad}"
    );

    // The password never shows up in what the guest saw or the host logged.
    for text in [types, conflict, transactions, notify, bad, captured.text()] {
        assert!(!text.contains(server.password()), "{text}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn connection_failures_are_clear_and_keep_the_password_out() {
    let (_guard, captured) = logs::capture();
    let server = PostgresServer::start();
    let wrong = format!(
        "postgresql://storehost:wrong-pw-31337@127.0.0.1:{}/postgres",
        server.port()
    );
    let outcome = scenario(&probe(&wrong), "connect").await;
    assert!(
        outcome.starts_with("error: HostError::Denied(\"authentication failed"),
        "{outcome}"
    );
    assert!(!outcome.contains("wrong-pw-31337"));

    server.stop();
    let outcome = scenario(&probe(&server.dsn()), "connect").await;
    assert!(
        outcome.starts_with("error: HostError::Unavailable("),
        "{outcome}"
    );
    let outcome = scenario(&probe("not a dsn wrong-pw-31337"), "connect").await;
    assert_eq!(
        outcome,
        "error: HostError::Invalid(\"the DSN is not a valid PostgreSQL connection string\")"
    );
    assert!(!captured.text().contains("wrong-pw-31337"));
    assert!(!captured.text().contains(server.password()));
}

#[tokio::test]
async fn sql_is_denied_without_the_grant() {
    let grants =
        Grants::minimal().with_secret("dsn", SecretValue::new("postgresql://u:p@127.0.0.1:1/db"));
    let plugin = load("sqlprobe", guests::SQLPROBE, grants, Limits::default());
    let outcome = scenario(&plugin, "connect").await;
    assert!(
        outcome.contains("Denied") && outcome.contains("not granted the `sql` capability"),
        "{outcome}"
    );
}
