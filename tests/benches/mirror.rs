//! Prints mirror costs: bootstrap of 1k and 10k auth files onto the local
//! backend (as a remote in a second directory), and write-through latency.
//! Run with `cargo bench -p storehost-tests --bench mirror`.

use std::time::{Duration, Instant};
use storehost::{Storehost, StorehostOptions};

fn seed_workspace(dir: &std::path::Path, count: usize) {
    std::fs::create_dir_all(dir.join("auths")).unwrap();
    for i in 0..count {
        let content = format!(
            "{{\"type\":\"claude\",\"email\":\"user{i}@example.com\",\"refresh_token\":\"rt-{i:08}\"}}"
        );
        std::fs::write(dir.join("auths").join(format!("user{i}.json")), content).unwrap();
    }
}

async fn bootstrap(count: usize) {
    let root = tempfile::tempdir().unwrap();
    let (remote, ws) = (root.path().join("remote"), root.path().join("ws"));
    seed_workspace(&ws, count);
    let started = Instant::now();
    let host = Storehost::local_remote(&remote, &ws, StorehostOptions::default())
        .await
        .unwrap();
    let report = host.bootstrap().await.unwrap();
    let upload = started.elapsed();
    assert_eq!(report.uploaded, count + 1);

    // A second workspace filled from that remote.
    let fresh = root.path().join("fresh");
    let started = Instant::now();
    let host = Storehost::local_remote(&remote, &fresh, StorehostOptions::default())
        .await
        .unwrap();
    let report = host.bootstrap().await.unwrap();
    let download = started.elapsed();
    assert_eq!(report.pulled, count + 1);

    let started = Instant::now();
    Storehost::local_remote(&remote, &fresh, StorehostOptions::default())
        .await
        .unwrap()
        .bootstrap()
        .await
        .unwrap();
    let unchanged = started.elapsed();
    println!(
        "bootstrap {count:>6} auths: upload from workspace {upload:>10.2?}  fill empty workspace {download:>10.2?}  restart, nothing changed {unchanged:>10.2?}"
    );
}

async fn write_through(count: usize) {
    let root = tempfile::tempdir().unwrap();
    let host = Storehost::local_remote(
        root.path().join("remote"),
        root.path().join("ws"),
        StorehostOptions::default(),
    )
    .await
    .unwrap();
    host.bootstrap().await.unwrap();
    let mut samples: Vec<Duration> = Vec::with_capacity(count);
    for i in 0..count {
        let content = format!("{{\"type\":\"claude\",\"n\":{i}}}");
        let started = Instant::now();
        host.save_auth(&format!("a{}.json", i % 50), content.as_bytes())
            .await
            .unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "write-through save_auth (workspace + outbox + local remote, all fsynced): n={count} p50={:.2?} p99={:.2?}",
        pick(0.5),
        pick(0.99)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        bootstrap(1_000).await;
        bootstrap(10_000).await;
        write_through(1_000).await;
    });
}
