//! How the sql capability reaches a real server: TLS by `sslmode` (disable,
//! prefer, require, verify-full) against a server with a test CA, the
//! Unix-socket forms (`?host=/dir` and libpq's `host=/dir …`), and DSN
//! parameters sqlx would log being dropped by name only.

use std::time::Duration;
use storehost_tests::postgres::{self, PostgresServer};
use storehost_tests::{local_auth, logs};

/// Whether the connections opened under `application_name` use TLS, and
/// whether they came over the Unix socket (no connection is a failure).
fn transport(server: &PostgresServer, application: &str) -> (bool, bool) {
    let answer = server.psql(&format!(
        "SELECT bool_and(s.ssl), bool_and(a.client_addr IS NULL) \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = '{application}'"
    ));
    match answer.as_str() {
        "t|t" => (true, true),
        "t|f" => (true, false),
        "f|t" => (false, true),
        "f|f" => (false, false),
        other => panic!("no connection from {application}: {other:?}"),
    }
}

fn uses_tls(server: &PostgresServer, application: &str) -> bool {
    transport(server, application).0
}

/// Opens a host on `dsn` and proves it works with one write-through.
async fn works(server: &PostgresServer, dsn: &str, id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let host = postgres::host(dsn, "public", dir.path(), Duration::from_secs(30)).await;
    host.bootstrap().await.unwrap();
    storehost_tests::save_pushed(&host, id, br#"{"ok":true}"#).await;
    assert!(local_auth(dir.path(), id).is_some());
    assert_eq!(
        server.psql(&format!(
            "SELECT count(*) FROM auth_store WHERE id = '{id}'"
        )),
        "1"
    );
}

#[tokio::test]
async fn sslmode_is_honoured_against_a_tls_server() {
    let server = PostgresServer::start_with_tls();
    let password = server.password().to_string();
    let port = server.port();
    let url = |host: &str, query: &str| {
        format!("postgresql://storehost:{password}@{host}:{port}/postgres?{query}")
    };
    let ca = server.ca_file();

    for (mode, tls) in [("disable", false), ("prefer", true), ("require", true)] {
        let application = format!("sh-{mode}");
        let dsn = url(
            "127.0.0.1",
            &format!("sslmode={mode}&application_name={application}"),
        );
        let dir = tempfile::tempdir().unwrap();
        let host = postgres::host(&dsn, "public", dir.path(), Duration::from_secs(30)).await;
        host.bootstrap().await.unwrap();
        assert_eq!(uses_tls(&server, &application), tls, "sslmode={mode}");
    }
    let verified = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}&application_name=sh-verify"),
    );
    works(&server, &verified, "verified.json").await;

    // The right name signed by the wrong CA: refused, clearly, no password.
    let (_guard, captured) = logs::capture();
    let other_ca = server.socket_dir().join("other-ca.pem");
    postgres::write_unrelated_ca(&other_ca);
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
    );
    let error = postgres::try_host(&wrong_ca, "public", dir.path(), Duration::from_secs(30))
        .await
        .err()
        .expect("an untrusted certificate must be refused");
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("TLS"), "{shown}");
    assert!(!shown.contains(&password), "{shown}");
    assert!(!captured.text().contains(&password));
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_a_clear_error() {
    let server = PostgresServer::start();
    let dsn = format!(
        "postgresql://storehost:{}@127.0.0.1:{}/postgres?sslmode=require",
        server.password(),
        server.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let error = postgres::try_host(&dsn, "public", dir.path(), Duration::from_secs(30))
        .await
        .err()
        .expect("require must not fall back to plain text");
    let shown = format!("{error} {error:?}");
    assert!(shown.to_lowercase().contains("tls"), "{shown}");
    assert!(!shown.contains(server.password()), "{shown}");
}

#[tokio::test]
async fn unix_socket_dsns_in_url_and_keyword_form() {
    let server = PostgresServer::start();
    let socket = server.socket_dir().display().to_string();
    let (password, port) = (server.password(), server.socket_port());
    let url_form = format!(
        "postgresql://storehost:{password}@/postgres?host={socket}&port={port}&application_name=sh-url-socket"
    );
    works(&server, &url_form, "by-url-socket.json").await;
    assert_eq!(transport(&server, "sh-url-socket"), (false, true));
    let keyword_form = format!(
        "host={socket} port={port} dbname=postgres user=storehost password='{password}' application_name=sh-kw-socket"
    );
    works(&server, &keyword_form, "by-keyword-socket.json").await;
    assert_eq!(transport(&server, "sh-kw-socket"), (false, true));
}

#[tokio::test(flavor = "current_thread")]
async fn dsn_parameters_sqlx_would_log_are_dropped_by_name_only() {
    let (_guard, captured) = logs::capture();
    let server = PostgresServer::start();
    let dsn = format!(
        "{}?connect_timeout=5&sslpassword=canary-dsn-5521",
        server.dsn()
    );
    works(&server, &dsn, "extra-params.json").await;
    let text = captured.text();
    assert!(
        text.contains("sslpassword"),
        "the dropped name is logged: {text}"
    );
    assert!(!text.contains("canary-dsn-5521"), "{text}");
    assert!(!text.contains(server.password()), "{text}");
}
