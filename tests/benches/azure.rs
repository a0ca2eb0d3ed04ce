//! Prints Azure Blob costs against a real Azurite: a put through the
//! third-party plugin (wasi:http, SharedKey signed by the host) against
//! the same signed request made by the host directly on the same grant,
//! and a bootstrap of 1k auths.
//! Run with `cargo bench -p storehost-tests --bench azure` (needs Azurite;
//! `bash .ci/install.sh` installs it).

use std::time::{Duration, Instant};
use storehost::model::{Change, Key, Precondition};
use storehost_tests::azure::{self, Azurite};
use storehost_tests::percentiles;

const ROUNDS: usize = 400;

fn put(id: String, content: String) -> Change {
    Change::Put {
        key: Key::auth(id),
        content: content.into_bytes(),
        precondition: Precondition::Any,
    }
}

/// The request the plugin sends for an unconditional put, made by the host.
fn direct_put(
    server: &Azurite,
    container: &str,
    id: &str,
    body: Vec<u8>,
) -> http::Request<Vec<u8>> {
    http::Request::put(format!("{}/{container}/auths/{id}", server.account_url()))
        .header("x-ms-version", "2021-08-06")
        .header("x-ms-blob-type", "BlockBlob")
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(body)
        .unwrap()
}

async fn put_latency(server: &Azurite, scratch: &std::path::Path) {
    let container = "latency";
    let credential = server.shared_key();
    let plugin = server.plugin(&scratch.join("plugin"), container, &credential);
    plugin.prepare().await.unwrap();
    let manifest = server.manifest(&scratch.join("direct"), container, &credential);
    let grants = azure::load(&manifest).grants;
    let grant = grants.http().unwrap();
    let grant = grant.clone();
    let (mut through_plugin, mut direct, mut spawned) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so both see the same server state and machine load.
    for i in 0..ROUNDS {
        let content = format!("{{\"type\":\"claude\",\"n\":{i}}}");
        let started = Instant::now();
        plugin
            .apply(
                vec![put(format!("p{}.json", i % 50), content.clone())],
                "bench",
            )
            .await
            .unwrap();
        through_plugin.push(started.elapsed());

        let request = direct_put(
            server,
            container,
            &format!("d{}.json", i % 50),
            content.clone().into_bytes(),
        );
        let started = Instant::now();
        let response = grant.send_direct(request).await.unwrap();
        direct.push(started.elapsed());
        assert_eq!(response.status(), 201);
        // The same again from a spawned task, as wasmtime-wasi-http sends
        // every plugin request: what the task hop itself costs.
        let request = direct_put(
            server,
            container,
            &format!("s{}.json", i % 50),
            content.into_bytes(),
        );
        let task_grant = grant.clone();
        let started = Instant::now();
        let response = tokio::spawn(async move { task_grant.send_direct(request).await })
            .await
            .unwrap()
            .unwrap();
        spawned.push(started.elapsed());
        assert_eq!(response.status(), 201);
    }
    let mut empty = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        plugin.apply(Vec::new(), "bench").await.unwrap();
        empty.push(started.elapsed());
    }
    percentiles("plugin call with nothing to do (apply of none)", empty);
    let plugin_p50 = percentiles("put via the azure-blob plugin", through_plugin);
    let direct_p50 = percentiles("put by the host directly (same grant)", direct);
    percentiles("the same from a spawned task", spawned);
    println!(
        "ratio plugin/direct at p50: {:.2}",
        plugin_p50.as_secs_f64() / direct_p50.as_secs_f64()
    );
}

async fn bootstrap(server: &Azurite, scratch: &std::path::Path, count: usize) {
    let container = format!("boot-{count}");
    let seeder = server.plugin(&scratch.join("seed"), &container, &server.shared_key());
    seeder.prepare().await.unwrap();
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let changes = chunk
            .iter()
            .map(|i| {
                let body = format!(
                    "{{\"type\":\"claude\",\"email\":\"u{i}@example.com\",\"refresh_token\":\"rt-{i:08}\"}}"
                );
                put(format!("bulk-{i}.json"), body)
            })
            .collect();
        seeder.apply(changes, "seed").await.unwrap();
    }
    let workspace = scratch.join(format!("ws-{count}"));
    let started = Instant::now();
    let host = server
        .host(&workspace, &container, Duration::from_secs(600))
        .await;
    let report = host.bootstrap().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.pulled, count);
    println!(
        "bootstrap of {count} auths from Azurite: {elapsed:.2?} ({:.0} documents/s)",
        count as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    // The put twice: on one thread, where the plugin's own cost shows, and
    // on the two-worker runtime `serve` uses, where wasmtime-wasi-http's
    // task per request may also hop threads.
    for (flavor, mut builder) in [
        ("one thread", tokio::runtime::Builder::new_current_thread()),
        ("two workers", tokio::runtime::Builder::new_multi_thread()),
    ] {
        println!("-- tokio runtime: {flavor}");
        let runtime = builder.worker_threads(2).enable_all().build().unwrap();
        let scratch = scratch.path().join(flavor.replace(' ', "-"));
        runtime.block_on(put_latency(&server, &scratch));
        if flavor == "two workers" {
            runtime.block_on(bootstrap(&server, &scratch, 1000));
        }
    }
}
