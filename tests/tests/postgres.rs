//! The PostgreSQL backend against a real server: conformance, interop with
//! the seed table layout both ways, another schema, an outage, two hosts,
//! NOTIFY, and errors that keep the password out.

use std::path::Path;
use std::time::Duration;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::Plugin;
use storehost::selection::{BackendChoice, PostgresSettings, Selection};
use storehost::{Storehost, StorehostOptions};
use storehost_tests::postgres::{self, PostgresServer};
use storehost_tests::{conformance, eventually, local_auth, logs};

fn plugin(server: &PostgresServer, schema: &str) -> Plugin {
    postgres::plugin(&server.dsn(), schema)
}

async fn host(server: &PostgresServer, schema: &str, workspace: &Path) -> Storehost {
    postgres::host(&server.dsn(), schema, workspace, Duration::from_secs(30)).await
}

#[tokio::test]
async fn postgres_passes_the_conformance_kit_in_public_and_another_schema() {
    let server = PostgresServer::start();
    conformance::run(&plugin(&server, "public"))
        .await
        .assert_all_passed();
    conformance::run(&plugin(&server, "Tenant \"A\""))
        .await
        .assert_all_passed();
    assert_eq!(
        server.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'Tenant \"A\"'"),
        "1"
    );
}

#[tokio::test]
async fn rows_written_by_existing_deployments_reach_the_workspace_and_back() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The seed layout, as the existing Go store creates and fills it.
    server.psql("CREATE TABLE config_store (id TEXT PRIMARY KEY, content TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
         CREATE TABLE auth_store (id TEXT PRIMARY KEY, content JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(), updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
         INSERT INTO config_store (id, content) VALUES ('config', 'port: 8317\n');
         INSERT INTO auth_store (id, content) VALUES ('claude-a@b.com.json', '{\"type\":\"claude\",\"refresh_token\":\"rt\"}');
         INSERT INTO auth_store (id, content) VALUES ('team/codex.json', '{\"type\":\"codex\"}');",
    );
    let host = host(&server, "public", dir.path()).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.pulled, 3, "{report:?}");
    assert_eq!(
        std::fs::read_to_string(host.config_path()).unwrap(),
        "port: 8317\n"
    );
    let claude: serde_json::Value =
        serde_json::from_str(&local_auth(dir.path(), "claude-a@b.com.json").unwrap()).unwrap();
    assert_eq!(claude["refresh_token"], "rt");
    assert!(local_auth(dir.path(), "team/codex.json").is_some());

    // And the other way: what storehost writes is a row in the same layout.
    let saved = host
        .save_auth("gemini-x.json", br#"{"type":"gemini","n":1}"#)
        .await
        .unwrap();
    assert!(
        host.wait_pushed(&saved, std::time::Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        server.psql("SELECT content->>'type' FROM auth_store WHERE id = 'gemini-x.json'"),
        "gemini"
    );
    std::fs::write(host.config_path(), "port: 9000\n").unwrap();
    host.persist_config().await.unwrap();
    assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    assert_eq!(
        server.psql("SELECT content FROM config_store WHERE id = 'config'"),
        "port: 9000"
    );
    storehost_tests::delete_pushed(&host, "team/codex.json").await;
    assert_eq!(
        server.psql("SELECT count(*) FROM auth_store WHERE id = 'team/codex.json'"),
        "0"
    );
}

#[tokio::test]
async fn a_server_restart_mid_run_loses_nothing() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let host = host(&server, "public", dir.path()).await;
    host.bootstrap().await.unwrap();
    storehost_tests::save_pushed(&host, "before.json", b"{\"n\":0}").await;
    server.stop();
    storehost_tests::save_while_down(&host, 20).await;
    server.resume();
    assert_eq!(host.flush(Duration::from_secs(60)).await.unwrap(), 0);
    assert_eq!(
        server.psql("SELECT count(*) FROM auth_store WHERE id LIKE 'during-%'"),
        "20"
    );
    assert_eq!(
        server.psql("SELECT content->>'n' FROM auth_store WHERE id = 'during-19.json'"),
        "19"
    );
}

#[tokio::test]
async fn two_hosts_on_one_database_converge_and_notify_arrives_fast() {
    let server = PostgresServer::start();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(&server, "public", a_dir.path()).await;
    a.bootstrap().await.unwrap();
    let b = host(&server, "public", b_dir.path()).await;
    b.bootstrap().await.unwrap();
    let sync_a = a.start_sync().await.unwrap().unwrap();
    let sync_b = b.start_sync().await.unwrap().unwrap();
    // Polling is every 30 s here: only NOTIFY can deliver within the limit.
    tokio::time::sleep(Duration::from_millis(200)).await;
    storehost_tests::save_pushed(&b, "from-b.json", b"{\"by\":\"b\"}").await;
    let latency = eventually(
        "NOTIFY brings b's write to a",
        Duration::from_secs(5),
        || local_auth(a_dir.path(), "from-b.json").is_some(),
    )
    .await;
    // Speed is the benchmark's business (benches/postgres.rs); arriving
    // long before the 30 s poll is what shows NOTIFY at work.
    eprintln!("NOTIFY to workspace: {latency:?}");
    storehost_tests::save_pushed(&a, "from-a.json", b"{\"by\":\"a\"}").await;
    eventually("a's write reaches b", Duration::from_secs(5), || {
        local_auth(b_dir.path(), "from-a.json").is_some()
    })
    .await;
    sync_a.shutdown().await;
    sync_b.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_password_or_a_dead_server_is_a_clear_error_without_the_password() {
    let (_guard, captured) = logs::capture();
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    for dsn in [
        format!(
            "postgresql://storehost:wrong-pw-4242@127.0.0.1:{}/postgres",
            server.port()
        ),
        "postgresql://storehost:wrong-pw-4242@127.0.0.1:1/postgres".to_string(),
    ] {
        let selection = Selection {
            backend: BackendChoice::Postgres(PostgresSettings {
                dsn: SecretValue::new(dsn),
                schema: "public".into(),
            }),
            workspace: dir.path().join("ws"),
            ignored: Vec::new(),
            migrate_from: None,
        };
        let error = match Storehost::from_selection(selection, StorehostOptions::default()).await {
            Ok(_) => panic!("opening must fail"),
            Err(error) => error,
        };
        let shown = format!("{error} {error:?}");
        assert!(
            shown.contains("authentication failed") || shown.contains("unreachable"),
            "{shown}"
        );
        assert!(!shown.contains("wrong-pw-4242"), "{shown}");
    }
    assert!(!captured.text().contains("wrong-pw-4242"));
}
