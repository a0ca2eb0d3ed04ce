//! Prints object-storage costs against a real S3-compatible server
//! (s3s-fs): put latency through the plugin vs aws-sdk-s3 directly, and
//! bootstrap of 1k and 10k objects and a sync of 1k changed files, each
//! next to `rclone copy` doing the same against the same server.
//! Run with `cargo bench -p storehost-tests --bench object` (needs s3s-fs
//! and rclone; `bash .ci/install.sh` installs both).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use storehost::model::{Change, Key, Precondition};
use storehost_tests::percentiles;
use storehost_tests::s3::{self, S3Server};

async fn put_latency(server: &S3Server) {
    let plugin = s3::plugin(&server.endpoint(), "latency");
    plugin.prepare().await.unwrap();
    let mut through_plugin = Vec::new();
    for i in 0..300 {
        let change = Change::Put {
            key: Key::auth(format!("p{}.json", i % 50)),
            content: format!("{{\"n\":{i}}}").into_bytes(),
            precondition: Precondition::Any,
        };
        let started = Instant::now();
        plugin.apply(vec![change], "bench").await.unwrap();
        through_plugin.push(started.elapsed());
    }
    let client = s3::client(&server.endpoint());
    let mut direct = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        client
            .put_object()
            .bucket("latency")
            .key(format!("auths/d{}.json", i % 50))
            .content_type("application/json")
            .body(format!("{{\"n\":{i}}}").into_bytes().into())
            .send()
            .await
            .unwrap();
        direct.push(started.elapsed());
    }
    let plugin_p50 = percentiles("put via plugin", through_plugin);
    let direct_p50 = percentiles("put with aws-sdk-s3 directly", direct);
    println!(
        "ratio plugin/direct at p50: {:.2}",
        plugin_p50.as_secs_f64() / direct_p50.as_secs_f64()
    );
}

/// Fills `bucket` with `count` auth objects, 32 uploads at a time.
async fn seed(server: &S3Server, bucket: &str, count: usize) {
    let client = s3::client(&server.endpoint());
    client.create_bucket().bucket(bucket).send().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        if tasks.len() >= 32 {
            tasks.join_next().await.unwrap().unwrap();
        }
        let (client, bucket) = (client.clone(), bucket.to_string());
        tasks.spawn(async move {
            let body = format!(
                "{{\"type\":\"claude\",\"email\":\"u{i}@example.com\",\"refresh_token\":\"rt-{i:08}\"}}"
            );
            client
                .put_object()
                .bucket(bucket)
                .key(format!("auths/bulk-{i}.json"))
                .body(body.into_bytes().into())
                .send()
                .await
                .unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// `rclone <args>` against the server, configured by environment (the
/// on-the-fly `:s3:` remote); returns how long it took.
fn rclone(server: &S3Server, args: &[&str]) -> Duration {
    let started = Instant::now();
    let output = Command::new("rclone")
        .args(args)
        // As many requests in flight as storehost's host-side fan-out.
        .args(["--transfers", "32", "--checkers", "32"])
        .env("RCLONE_CONFIG", "/dev/null")
        // rclone's AWS SDK cannot use a CA bundle with its own transport.
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_S3_PROVIDER", "Other")
        .env("RCLONE_S3_ENDPOINT", server.endpoint())
        .env("RCLONE_S3_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("RCLONE_S3_SECRET_ACCESS_KEY", s3::SECRET_KEY)
        .env("RCLONE_S3_FORCE_PATH_STYLE", "true")
        .output()
        .expect("rclone (Debian package `rclone`; `bash .ci/install.sh` installs it)");
    assert!(
        output.status.success(),
        "rclone failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

fn rewrite_all(dir: &Path, count: usize, generation: u32) {
    for i in 0..count {
        let body = format!("{{\"type\":\"claude\",\"n\":{i},\"generation\":{generation}}}");
        std::fs::write(dir.join(format!("bulk-{i}.json")), body).unwrap();
    }
}

async fn bootstrap_and_sync(server: &S3Server, count: usize) {
    let bucket = format!("boot-{count}");
    seed(server, &bucket, count).await;
    // The bucket root with a filter: s3s-fs answers a HEAD on `auths` (a
    // directory on its disk) with 500, which rclone would retry for minutes.
    let remote = format!(":s3:{bucket}");
    let only_auths = ["--include", "auths/**"];

    let workspace = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let host = s3::host(
        &server.endpoint(),
        &bucket,
        workspace.path(),
        Duration::from_secs(600),
    )
    .await;
    let report = host.bootstrap().await.unwrap();
    let storehost_boot = started.elapsed();
    let copy_dir = tempfile::tempdir().unwrap();
    let local = copy_dir.path().display().to_string();
    let rclone_boot = rclone(
        server,
        &[&["copy", &remote, &local][..], &only_auths].concat(),
    );
    println!(
        "bootstrap of {} objects: storehost {storehost_boot:.2?}, rclone copy {rclone_boot:.2?}",
        report.pulled
    );

    if count == 1000 {
        rewrite_all(&workspace.path().join("auths"), count, 1);
        let started = Instant::now();
        host.sync_workspace().await.unwrap();
        let storehost_sync = started.elapsed();
        assert_eq!(host.outbox_len().await, 0);
        rewrite_all(&copy_dir.path().join("auths"), count, 2);
        let rclone_sync = rclone(
            server,
            &[&["copy", &local, &remote][..], &only_auths].concat(),
        );
        println!(
            "sync of {count} changed files up: storehost {storehost_sync:.2?}, rclone copy {rclone_sync:.2?}"
        );
    }
}

fn main() {
    // As `serve` logs: the spans the bindings open then cost what they cost there.
    storehost::logging::init();
    let server = S3Server::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        put_latency(&server).await;
        bootstrap_and_sync(&server, 1000).await;
        bootstrap_and_sync(&server, 10_000).await;
    });
}
