//! The proxy's cooldown state on PostgreSQL, shared with the Go store: its
//! statements (reference §2) issued with `psql`, storehost on the same
//! database, in both orders.

use std::time::Duration;
use storehost_tests::eventually;
use storehost_tests::postgres::{self, PostgresServer};
use storehost_tests::scenarios::{cooldown_file, cooldown_records, proxy_write, records_of};

const DDL: &str = "CREATE TABLE IF NOT EXISTS cooldown_store (auth_id TEXT NOT NULL, \
    model TEXT NOT NULL DEFAULT '', content JSONB NOT NULL, deleted BOOLEAN NOT NULL DEFAULT FALSE, \
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), \
    PRIMARY KEY (auth_id, model))";

/// The Go store's guarded upsert of one record.
fn go_upsert(server: &PostgresServer, auth_id: &str, model: &str, second: u32) {
    let record = storehost_tests::scenarios::cooldown_record(auth_id, model, second);
    server.psql(&format!(
        "INSERT INTO cooldown_store (auth_id, model, content, deleted, created_at, updated_at) \
         VALUES ('{auth_id}', '{model}', '{record}'::jsonb, FALSE, NOW(), '2026-12-05T03:00:{second:02}Z') \
         ON CONFLICT (auth_id, model) DO UPDATE SET content = EXCLUDED.content, deleted = FALSE, \
         updated_at = EXCLUDED.updated_at WHERE cooldown_store.updated_at <= EXCLUDED.updated_at"
    ));
}

fn no_cds_auth_rows(server: &PostgresServer) {
    assert_eq!(
        server.psql("SELECT count(*) FROM auth_store WHERE lower(id) LIKE '%.cds'"),
        "0"
    );
}

#[tokio::test]
async fn the_go_store_first_then_storehost_with_the_guard_and_tombstones() {
    let server = PostgresServer::start();
    server.psql(DDL);
    go_upsert(&server, "team/a@b.com.json", "m1", 1);
    go_upsert(&server, "team/a@b.com.json", "m2", 2);
    go_upsert(&server, "claude:apikey:3f2a", "", 3);
    go_upsert(&server, "x@y.com", "", 4);
    // An earlier storehost pushed a .cds file as an auth row.
    server.psql(
        "CREATE TABLE auth_store (id TEXT PRIMARY KEY, content JSONB NOT NULL, \
         created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW())",
    );
    let old = cooldown_file(&[("old@row.json", "", 5)]);
    server.psql(&format!(
        "INSERT INTO auth_store (id, content) VALUES ('old_row.cds', '{}'::jsonb)",
        old.trim()
    ));

    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let host = postgres::host(&server.dsn(), "public", ws, Duration::from_secs(30)).await;
    host.bootstrap().await.unwrap();
    no_cds_auth_rows(&server);
    assert_eq!(
        server.psql("SELECT count(*) FROM cooldown_store WHERE auth_id = 'old@row.json'"),
        "1"
    );
    let team = cooldown_file(&[
        ("team/a@b.com.json", "m1", 1),
        ("team/a@b.com.json", "m2", 2),
    ]);
    assert_eq!(
        cooldown_records(ws, "team/a_b.com.cds"),
        Some(records_of(team.as_bytes()))
    );
    assert!(cooldown_records(ws, "claude_apikey_3f2a.cds").is_some());
    assert!(cooldown_records(ws, "x_y.cds").is_some());
    assert_eq!(
        cooldown_records(ws, "old_row.cds"),
        Some(records_of(old.as_bytes()))
    );

    // The proxy saves: m1 newer, m2 gone.
    proxy_write(
        ws,
        "team/a_b.com.cds",
        &cooldown_file(&[("team/a@b.com.json", "m1", 7)]),
    );
    host.sync_workspace().await.unwrap();
    assert_eq!(
        server.psql(
            "SELECT content->>'updated_at', deleted FROM cooldown_store \
             WHERE auth_id = 'team/a@b.com.json' ORDER BY model"
        ),
        "2026-12-05T03:00:07Z|f\n|t"
    );
    // An older write never wins, from either side.
    go_upsert(&server, "team/a@b.com.json", "m1", 6);
    assert_eq!(
        server.psql(
            "SELECT updated_at = '2026-12-05T03:00:07Z' FROM cooldown_store WHERE model = 'm1'"
        ),
        "t"
    );
    proxy_write(ws, "x_y.cds", &cooldown_file(&[("x@y.com", "", 2)]));
    host.sync_workspace().await.unwrap();
    host.pull_remote().await.unwrap();
    assert_eq!(
        server.psql("SELECT content->>'updated_at' FROM cooldown_store WHERE auth_id = 'x@y.com'"),
        "2026-12-05T03:00:04Z"
    );
    assert_eq!(
        cooldown_records(ws, "x_y.cds"),
        Some(records_of(cooldown_file(&[("x@y.com", "", 4)]).as_bytes()))
    );
    no_cds_auth_rows(&server);
}

#[tokio::test]
async fn storehost_first_then_the_go_store_reads_and_tombstones() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let host = postgres::host(&server.dsn(), "public", ws, Duration::from_secs(30)).await;
    host.bootstrap().await.unwrap();
    // The table is the reference's.
    assert_eq!(
        server.psql(
            "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_name = 'cooldown_store'"
        ),
        "auth_id:text,model:text,content:jsonb,deleted:boolean,\
         created_at:timestamp with time zone,updated_at:timestamp with time zone"
    );
    proxy_write(ws, "a@b.com.json", "{}");
    proxy_write(
        ws,
        "a_b.com.cds",
        &cooldown_file(&[("a@b.com.json", "", 1)]),
    );
    host.sync_workspace().await.unwrap();
    // The Go store's load.
    assert_eq!(
        server.psql(
            "SELECT content->>'auth_id', content ? 'model' FROM cooldown_store WHERE deleted = FALSE"
        ),
        "a@b.com.json|f"
    );
    // The Go store's tombstone, then storehost's pull removes the file.
    server.psql(
        "UPDATE cooldown_store SET content = '{}'::jsonb, deleted = TRUE, updated_at = NOW() \
         WHERE auth_id = 'a@b.com.json' AND NOT deleted",
    );
    host.pull_remote().await.unwrap();
    assert_eq!(cooldown_records(ws, "a_b.cds"), None);
    assert_eq!(cooldown_records(ws, "a_b.com.cds"), None);
    no_cds_auth_rows(&server);
}

/// A cooldown change, from the Go store, another host or an operator's
/// DELETE, reaches a host through NOTIFY: both poll only every 30 s here.
#[tokio::test]
async fn a_cooldown_change_reaches_a_second_host_through_notify() {
    let server = PostgresServer::start();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_ws, b_ws) = (a_dir.path(), b_dir.path());
    let poll = Duration::from_secs(30);
    let a = postgres::host(&server.dsn(), "public", a_ws, poll).await;
    a.bootstrap().await.unwrap();
    let b = postgres::host(&server.dsn(), "public", b_ws, poll).await;
    b.bootstrap().await.unwrap();
    let sync_a = a.start_sync().await.unwrap().unwrap();
    let sync_b = b.start_sync().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let within = Duration::from_secs(10);

    go_upsert(&server, "go@x.com.json", "m1", 1);
    let go_file = records_of(cooldown_file(&[("go@x.com.json", "m1", 1)]).as_bytes());
    let latency = eventually("the Go store's row reaches both hosts", within, || {
        [a_ws, b_ws]
            .iter()
            .all(|ws| cooldown_records(ws, "go_x.com.cds").as_ref() == Some(&go_file))
    })
    .await;
    eprintln!("cooldown row to both workspaces: {latency:?}");

    let from_a = cooldown_file(&[("a@b.com.json", "", 2)]);
    proxy_write(a_ws, "a_b.com.cds", &from_a);
    eventually("a's cooldown file reaches b", within, || {
        cooldown_records(b_ws, "a_b.com.cds") == Some(records_of(from_a.as_bytes()))
    })
    .await;

    // The Go store's tombstone empties the file on both hosts.
    server.psql(
        "UPDATE cooldown_store SET content = '{}'::jsonb, deleted = TRUE, updated_at = NOW() \
         WHERE auth_id = 'go@x.com.json' AND NOT deleted",
    );
    eventually(
        "the tombstone removes the file on both hosts",
        within,
        || {
            [a_ws, b_ws]
                .iter()
                .all(|ws| cooldown_records(ws, "go_x.com.cds").is_none())
        },
    )
    .await;
    assert!(cooldown_records(b_ws, "a_b.com.cds").is_some());

    // Rows deleted outright (the Go store never does; an operator may)
    // are seen by the next delta, not only by a complete pull.
    server.psql("DELETE FROM cooldown_store WHERE auth_id = 'a@b.com.json'");
    eventually("the DELETE removes the file on both", within, || {
        [a_ws, b_ws]
            .iter()
            .all(|ws| cooldown_records(ws, "a_b.com.cds").is_none())
    })
    .await;
    no_cds_auth_rows(&server);
    sync_a.shutdown().await;
    sync_b.shutdown().await;
}
