//! The PostgreSQL change feed against a real server: pulls after the first
//! are deltas by `updated_at`; deletions by any writer (plain SQL here, as
//! the Go store does them) are noticed; a TRUNCATE or a foreign cursor falls
//! back to a complete snapshot; and plain-SQL writes reach a running host by
//! NOTIFY from the triggers, long before the next poll.

use std::collections::BTreeSet;
use std::time::Duration;
use storehost::model::{Key, Kind, Snapshot};
use storehost_tests::postgres::{self, PostgresServer};
use storehost_tests::{auth_files, eventually, local_auth};

fn auth_ids(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .documents
        .iter()
        .filter(|d| d.entry.key.kind == Kind::Auth)
        .map(|d| d.entry.key.id.clone())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test]
async fn pulls_are_deltas_that_see_updates_and_deletions_by_any_writer() {
    let server = PostgresServer::start();
    let plugin = postgres::plugin(&server.dsn(), "public");
    plugin.prepare().await.unwrap();
    // Rows last touched an hour ago: outside any overlap window.
    server.psql(
        "INSERT INTO auth_store (id, content, updated_at) VALUES
           ('old-a.json', '{\"n\":1}', NOW() - INTERVAL '1 hour'),
           ('old-b.json', '{\"n\":1}', NOW() - INTERVAL '1 hour'),
           ('old-c.json', '{\"n\":1}', NOW() - INTERVAL '1 hour')",
    );
    let full = plugin.pull(None).await.unwrap();
    assert!(full.complete);
    assert_eq!(
        auth_ids(&full),
        set(&["old-a.json", "old-b.json", "old-c.json"])
    );

    // What the Go store and a DBA do: upsert, plain UPDATE, plain DELETE.
    server.psql(
        "INSERT INTO auth_store (id, content, created_at, updated_at) VALUES ('new.json', '{\"n\":2}', NOW(), NOW())
           ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, updated_at = NOW();
         UPDATE auth_store SET content = '{\"n\":3}', updated_at = NOW() WHERE id = 'old-a.json';
         DELETE FROM auth_store WHERE id = 'old-b.json';",
    );
    let delta = plugin.pull(Some(&full.cursor)).await.unwrap();
    assert!(!delta.complete, "a pull with a fresh cursor is a delta");
    assert_eq!(auth_ids(&delta), set(&["new.json", "old-a.json"]));
    assert_eq!(delta.removed, vec![Key::auth("old-b.json")]);
    let updated = delta
        .documents
        .iter()
        .find(|d| d.entry.key.id == "old-a.json")
        .unwrap();
    assert_eq!(updated.content, br#"{"n": 3}"#);

    // Deleted and written again: present, not removed.
    server.psql("INSERT INTO auth_store (id, content) VALUES ('old-b.json', '{\"n\":4}')");
    let again = plugin.pull(Some(&delta.cursor)).await.unwrap();
    assert!(!again.complete);
    assert!(auth_ids(&again).contains("old-b.json"));
    assert!(again.removed.is_empty(), "{:?}", again.removed);

    // A TRUNCATE leaves no row tombstones: only a complete pull can tell.
    server.psql("TRUNCATE auth_store");
    let after_truncate = plugin.pull(Some(&again.cursor)).await.unwrap();
    assert!(after_truncate.complete);
    assert!(auth_ids(&after_truncate).is_empty());

    // A cursor this version did not write is a complete pull, not an error.
    let foreign = plugin.pull(Some("0")).await.unwrap();
    assert!(foreign.complete);
}

#[tokio::test]
async fn plain_sql_changes_reach_a_running_host_by_notify() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Polling every 30 s: only the triggers' NOTIFY can beat the limits below.
    let host = postgres::host(&server.dsn(), "public", dir.path(), Duration::from_secs(30)).await;
    host.bootstrap().await.unwrap();
    storehost_tests::save_pushed(&host, "kept.json", br#"{"n":1}"#).await;
    storehost_tests::save_pushed(&host, "doomed.json", br#"{"n":1}"#).await;
    let sync = host.start_sync().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.psql("DELETE FROM auth_store WHERE id = 'doomed.json'");
    eventually(
        "a plain DELETE removes the file",
        Duration::from_secs(5),
        || local_auth(dir.path(), "doomed.json").is_none(),
    )
    .await;
    server.psql(
        "UPDATE auth_store SET content = '{\"n\":2}', updated_at = NOW() WHERE id = 'kept.json'",
    );
    eventually(
        "a plain UPDATE rewrites the file",
        Duration::from_secs(5),
        || local_auth(dir.path(), "kept.json").is_some_and(|c| c.contains('2')),
    )
    .await;
    server.psql("INSERT INTO auth_store (id, content) VALUES ('by-sql.json', '{\"n\":3}')");
    eventually("a plain INSERT adds a file", Duration::from_secs(5), || {
        local_auth(dir.path(), "by-sql.json").is_some()
    })
    .await;
    sync.shutdown().await;
    let files = auth_files(dir.path());
    assert!(
        files.iter().all(|f| !f.contains(".conflict-")),
        "remote-only changes are not conflicts: {files:?}"
    );
}

#[tokio::test]
async fn without_rights_to_add_triggers_every_pull_is_complete_and_still_correct() {
    let server = PostgresServer::start();
    // Tables owned by someone else, as in a deployment where storehost's
    // role may read and write rows but not alter the tables.
    server.psql(
        "CREATE SCHEMA legacy;
         CREATE TABLE legacy.config_store (id TEXT PRIMARY KEY, content TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
         CREATE TABLE legacy.auth_store (id TEXT PRIMARY KEY, content JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
         INSERT INTO legacy.auth_store (id, content) VALUES ('a.json', '{}'), ('b.json', '{}');
         CREATE ROLE limited LOGIN PASSWORD 'limited-pw';
         GRANT USAGE, CREATE ON SCHEMA legacy TO limited;
         GRANT SELECT, INSERT, UPDATE, DELETE ON legacy.config_store, legacy.auth_store TO limited;",
    );
    let (_guard, captured) = storehost_tests::logs::capture();
    let plugin = postgres::plugin(&server.dsn_as("limited", "limited-pw"), "legacy");
    plugin.prepare().await.unwrap();
    assert!(
        captured.text().contains("cannot install change tracking"),
        "{}",
        captured.text()
    );
    let first = plugin.pull(None).await.unwrap();
    assert_eq!(auth_ids(&first), set(&["a.json", "b.json"]));
    server.psql("DELETE FROM legacy.auth_store WHERE id = 'b.json'");
    let second = plugin.pull(Some(&first.cursor)).await.unwrap();
    assert!(second.complete, "no tombstones, so no deltas");
    assert_eq!(auth_ids(&second), set(&["a.json"]));
}
