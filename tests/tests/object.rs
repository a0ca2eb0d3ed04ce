//! The object-storage backend against a real S3-compatible server (s3s-fs):
//! conformance, interop with a plain S3 client both ways, keys that would
//! escape the layout, a lost race on a server that ignores a conditional
//! header, an outage, two hosts on one bucket, and wrong keys.

use std::time::Duration;
use storehost::StorehostError;
use storehost::model::{Change, Key, Precondition};
use storehost::test_servers::ServiceKind;
use storehost_tests::s3::{self, S3Server};
use storehost_tests::{auth_files, conformance, eventually, local_auth, logs};

async fn object_text(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Option<(String, String)> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let content_type = object.content_type().unwrap_or_default().to_string();
    let body = object.body.collect().await.unwrap().into_bytes();
    Some((String::from_utf8(body.to_vec()).unwrap(), content_type))
}

async fn put_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str, content: &str) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(content.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

/// A plain S3 client on `server`, with the bucket `name` made.
async fn bucket(server: &S3Server, name: &str) -> aws_sdk_s3::Client {
    let client = s3::client(&server.endpoint());
    client.create_bucket().bucket(name).send().await.unwrap();
    client
}

#[tokio::test]
async fn object_storage_passes_the_conformance_kit() {
    let server = S3Server::start();
    let plugin = s3::plugin(&server.endpoint(), "conformance");
    conformance::run_on(&plugin, ServiceKind::Object.store_traits())
        .await
        .assert_all_passed();
    assert!(
        server.root().join("conformance").is_dir(),
        "prepare made the bucket"
    );
}

#[tokio::test]
async fn objects_from_a_plain_s3_client_reach_the_workspace_and_back() {
    let server = S3Server::start();
    let client = bucket(&server, "tokens").await;
    put_object(&client, "tokens", "config/config.yaml", "port: 8317\n").await;
    put_object(
        &client,
        "tokens",
        "auths/claude-a@b.com.json",
        r#"{"type":"claude"}"#,
    )
    .await;
    put_object(
        &client,
        "tokens",
        "auths/team/codex.json",
        r#"{"type":"codex"}"#,
    )
    .await;
    // Keys that would escape the layout are never files.
    put_object(&client, "tokens", "auths/../escape.json", "{}").await;

    let dir = tempfile::tempdir().unwrap();
    let host = s3::host(
        &server.endpoint(),
        "tokens",
        dir.path(),
        Duration::from_secs(60),
    )
    .await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.pulled, 3, "{report:?}");
    assert_eq!(
        auth_files(dir.path()),
        ["claude-a@b.com.json", "team/codex.json"]
    );
    assert!(!dir.path().join("escape.json").exists());
    assert_eq!(
        std::fs::read_to_string(host.config_path()).unwrap(),
        "port: 8317\n"
    );

    let saved = host
        .save_auth("gemini-x.json", br#"{"type":"gemini"}"#)
        .await
        .unwrap();
    assert!(
        host.wait_pushed(&saved, std::time::Duration::from_secs(30))
            .await
            .unwrap()
    );
    let (content, content_type) = object_text(&client, "tokens", "auths/gemini-x.json")
        .await
        .unwrap();
    assert_eq!(content, r#"{"type":"gemini"}"#);
    assert_eq!(content_type, "application/json");
    std::fs::write(host.config_path(), "port: 9000\n").unwrap();
    host.persist_config().await.unwrap();
    assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    let (config, config_type) = object_text(&client, "tokens", "config/config.yaml")
        .await
        .unwrap();
    assert_eq!(
        (config.as_str(), config_type.as_str()),
        ("port: 9000\n", "application/x-yaml")
    );
    storehost_tests::delete_pushed(&host, "team/codex.json").await;
    assert!(
        object_text(&client, "tokens", "auths/team/codex.json")
            .await
            .is_none()
    );
}

/// Another client stored a key with a control character, which a listing
/// in XML 1.0 cannot carry: the pull fails saying the answer could not be
/// read (not that a request was refused), and the workspace is left as it
/// was, never emptied.
#[tokio::test]
async fn an_unreadable_listing_is_a_clear_error_and_empties_nothing() {
    let server = S3Server::start();
    let client = bucket(&server, "tokens").await;
    put_object(&client, "tokens", "auths/a.json", r#"{"a":1}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let host = s3::host(
        &server.endpoint(),
        "tokens",
        dir.path(),
        Duration::from_secs(60),
    )
    .await;
    host.bootstrap().await.unwrap();
    assert_eq!(auth_files(dir.path()), ["a.json"]);

    put_object(&client, "tokens", "auths/ctl-\u{1}.json", "{}").await;
    let error = host.pull_remote().await.unwrap_err().to_string();
    assert!(
        error.contains("answer could not be read (HTTP 200)") && !error.contains("refused"),
        "{error}"
    );
    assert_eq!(auth_files(dir.path()), ["a.json"]);
}

#[tokio::test]
async fn a_lost_race_is_a_conflict_even_where_the_server_ignores_if_match_on_delete() {
    let (_guard, captured) = logs::capture();
    let server = S3Server::start();
    let plugin = s3::plugin(&server.endpoint(), "race");
    plugin.prepare().await.unwrap();
    assert!(
        captured.text().contains("(put: honoured, delete: ignored)"),
        "s3s-fs 0.14 honours If-Match on put, ignores it on delete, and the probe says so: {}",
        captured.text()
    );
    let key = Key::auth("raced.json");
    let put = |content: &str, precondition| Change::Put {
        key: key.clone(),
        content: content.as_bytes().to_vec(),
        precondition,
    };
    let first = plugin
        .apply(vec![put(r#"{"n":1}"#, Precondition::Absent)], "t")
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    // Another writer replaces it behind our back.
    put_object(
        &s3::client(&server.endpoint()),
        "race",
        "auths/raced.json",
        r#"{"n":2}"#,
    )
    .await;
    let stale = Precondition::Matches(first.version.clone());
    let overwrite = plugin
        .apply(vec![put(r#"{"n":3}"#, stale.clone())], "t")
        .await;
    assert!(overwrite.is_err(), "a stale put must not overwrite");
    let remove = Change::Remove {
        key: key.clone(),
        precondition: stale,
    };
    assert!(
        plugin.apply(vec![remove], "t").await.is_err(),
        "a stale delete must not delete"
    );
    let kept = plugin.read_one(&key).await.unwrap().unwrap();
    assert_eq!(kept.content, br#"{"n":2}"#);
}

#[tokio::test]
async fn a_server_outage_mid_run_loses_nothing() {
    let mut server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let host = s3::host(
        &server.endpoint(),
        "outage",
        dir.path(),
        Duration::from_secs(60),
    )
    .await;
    host.bootstrap().await.unwrap();
    storehost_tests::save_pushed(&host, "before.json", b"{\"n\":0}").await;
    server.stop();
    storehost_tests::save_while_down(&host, 20).await;
    server.resume();
    assert_eq!(host.flush(Duration::from_secs(60)).await.unwrap(), 0);
    let client = s3::client(&server.endpoint());
    for i in 0..20 {
        let (content, _) = object_text(&client, "outage", &format!("auths/during-{i}.json"))
            .await
            .unwrap_or_else(|| panic!("during-{i}.json reached the bucket"));
        assert_eq!(content, format!("{{\"n\":{i}}}"));
    }
}

#[tokio::test]
async fn two_hosts_on_one_bucket_converge_by_polling() {
    let server = S3Server::start();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let poll = Duration::from_millis(200);
    let a = s3::host(&server.endpoint(), "shared", a_dir.path(), poll).await;
    a.bootstrap().await.unwrap();
    let b = s3::host(&server.endpoint(), "shared", b_dir.path(), poll).await;
    b.bootstrap().await.unwrap();
    let sync_a = a.start_sync().await.unwrap().unwrap();
    let sync_b = b.start_sync().await.unwrap().unwrap();
    storehost_tests::save_pushed(&b, "from-b.json", b"{\"by\":\"b\"}").await;
    storehost_tests::save_pushed(&a, "from-a.json", b"{\"by\":\"a\"}").await;
    let limit = Duration::from_secs(10);
    eventually("b's write reaches a", limit, || {
        local_auth(a_dir.path(), "from-b.json").is_some()
    })
    .await;
    eventually("a's write reaches b", limit, || {
        local_auth(b_dir.path(), "from-a.json").is_some()
    })
    .await;
    storehost_tests::delete_pushed(&a, "from-b.json").await;
    eventually("a's delete reaches b", limit, || {
        local_auth(b_dir.path(), "from-b.json").is_none()
    })
    .await;
    sync_a.shutdown().await;
    sync_b.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_keys_are_a_clear_error_without_the_secret() {
    let (_guard, captured) = logs::capture();
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = server.endpoint();
    let vars = [
        ("OBJECTSTORE_ENDPOINT", endpoint.as_str()),
        ("OBJECTSTORE_BUCKET", "tokens"),
        ("OBJECTSTORE_SECRET_KEY", "wrong-secret-canary-8812"),
    ];
    let host = s3::try_host(&vars, dir.path(), Duration::from_secs(60)).await;
    let error: StorehostError = match host {
        Ok(host) => host.bootstrap().await.expect_err("wrong keys must fail"),
        Err(error) => error,
    };
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("refused the keys"), "{shown}");
    assert!(!shown.contains("wrong-secret-canary-8812"), "{shown}");
    assert!(!shown.contains(s3::ACCESS_KEY), "{shown}");
    let logged = captured.text();
    assert!(!logged.contains("wrong-secret-canary-8812"));
    assert!(!logged.contains(s3::SECRET_KEY));
    // The access key id too: aws-smithy prints it at DEBUG and TRACE, which
    // the host caps for the SDK crates.
    assert!(!logged.contains(s3::ACCESS_KEY), "{logged}");
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_with_backoff_and_then_reported() {
    let server = S3Server::start();
    // Two refusals: within the retry budget (4 attempts per call).
    let (port, refused) = server.flaky_front(2);
    let plugin = s3::plugin(&format!("http://127.0.0.1:{port}"), "throttled");
    plugin.prepare().await.unwrap();
    let key = Key::auth("after-retries.json");
    let put = Change::Put {
        key: key.clone(),
        content: b"{}".to_vec(),
        precondition: Precondition::Any,
    };
    plugin.apply(vec![put], "t").await.unwrap();
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(plugin.read_one(&key).await.unwrap().is_some());

    // More refusals than attempts: a clear `unavailable`, which the mirror
    // keeps in its outbox and replays.
    let (port, _) = server.flaky_front(100);
    let plugin = s3::plugin(&format!("http://127.0.0.1:{port}"), "throttled");
    let error = plugin.prepare().await.expect_err("the budget runs out");
    let shown = error.to_string();
    assert!(shown.contains("unavailable"), "{shown}");
}
