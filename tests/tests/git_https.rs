//! The Git backend over HTTPS (git2's OpenSSL transport), through a TLS
//! front with a throwaway CA. Alone in its binary because it points
//! `SSL_CERT_FILE` (which OpenSSL reads once, when libgit2 starts) at that
//! CA for the whole process.

use std::time::Duration;
use storehost_tests::git::{self, GitServer, git_text};

#[tokio::test]
async fn https_reaches_the_server_and_https_to_a_plain_port_is_a_tls_error() {
    let server = GitServer::start();
    server.create_repo("secure");
    let (tls_port, ca_file) = server.tls_front();
    // SAFETY: the only test of this binary sets it before libgit2 starts,
    // and nothing else here reads the environment concurrently.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };

    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://localhost:{tls_port}/secure.git");
    let host = git::host(&url, &dir.path().join("ws"), Duration::from_secs(60)).await;
    host.bootstrap().await.unwrap();
    let saved = host.save_auth("tls.json", b"{}").await.unwrap();
    assert!(
        host.wait_pushed(&saved, std::time::Duration::from_secs(30))
            .await
            .unwrap(),
        "{saved:?}"
    );
    let files = git_text(
        &server.repo_path("secure"),
        &["ls-tree", "-r", "--name-only", "main"],
    );
    assert!(files.contains("auths/tls.json"), "{files}");

    let plain = server.url("secure").replace("http://", "https://");
    let host = git::host(&plain, &dir.path().join("ws2"), Duration::from_secs(60)).await;
    let error = host.bootstrap().await.unwrap_err().to_string();
    assert!(error.contains("TLS") || error.contains("SSL"), "{error}");
    assert!(!error.contains(git::TOKEN), "{error}");
}
