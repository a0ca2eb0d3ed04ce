//! Prints what plugin calls and loading cost. Run with
//! `cargo bench -p storehost-tests --bench roundtrip`.

use std::time::{Duration, Instant};
use storehost::capabilities::Grants;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::plugin::GUEST_STORE_DIR;
use storehost::runtime::{ComponentCache, Limits, Plugin, PluginSpec, Runtime};
use storehost::{Change, Key, Precondition};
use storehost_tests::guests;

fn spec(name: &str, grants: Grants) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        grants,
        limits: Limits::default(),
        settings: vec![("root".into(), GUEST_STORE_DIR.into())],
    }
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{label:<48} n={:<6} p50={:>10.2?} p99={:>10.2?} min={:>10.2?}",
        samples.len(),
        pick(0.5),
        pick(0.99),
        samples[0]
    );
}

async fn time_calls<F, Fut>(label: &str, n: usize, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        call().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    report(label, samples);
}

fn main() {
    // As `serve` logs: the spans the bindings open then cost what they cost there.
    storehost::logging::init();
    load_costs();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(None).unwrap();
    let local = Plugin::load(
        &runtime,
        spec("local", Grants::minimal().with_directory(dir.path())),
        storehost::builtin::local(),
    )
    .unwrap();
    let memory = Plugin::load(&runtime, spec("memory", Grants::minimal()), guests::MEMORY).unwrap();
    let hostile = Plugin::load(
        &runtime,
        spec(
            "hostile",
            Grants::minimal().with_secret("granted", SecretValue::new("x")),
        ),
        guests::HOSTILE,
    )
    .unwrap();
    for plugin in [&local, &memory, &hostile] {
        plugin.start().await.unwrap();
    }

    time_calls("host->plugin->host: info (no import)", 20_000, || async {
        memory.info().await.unwrap();
    })
    .await;
    time_calls(
        "host->plugin->host->plugin: one host import",
        20_000,
        || async {
            hostile
                .read_one(&Key::auth("secret:granted"))
                .await
                .unwrap();
        },
    )
    .await;
    time_calls("memory: read one missing key", 20_000, || async {
        memory.read_one(&Key::auth("missing.json")).await.unwrap();
    })
    .await;
    let content = br#"{"type":"claude","refresh_token":"rt-0123456789abcdef"}"#.to_vec();
    time_calls("memory: put one 60-byte auth", 20_000, || async {
        let put = Change::Put {
            key: Key::auth("a.json"),
            content: content.clone(),
            precondition: Precondition::Any,
        };
        memory.apply(vec![put], "bench").await.unwrap();
    })
    .await;
    time_calls("local: read one auth (WASI fs)", 5_000, || async {
        local.read_one(&Key::auth("a.json")).await.unwrap();
    })
    .await;
    time_calls("local: put one auth (atomic, fsync)", 500, || async {
        let put = Change::Put {
            key: Key::auth("a.json"),
            content: content.clone(),
            precondition: Precondition::Any,
        };
        local.apply(vec![put], "bench").await.unwrap();
    })
    .await;
}

/// Compile from scratch vs load from the on-disk cache, and instantiation.
fn load_costs() {
    let cache_dir = tempfile::tempdir().unwrap();
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for round in 0..5 {
        let runtime = Runtime::new(None).unwrap();
        let started = Instant::now();
        runtime
            .component("local", storehost::builtin::local())
            .unwrap();
        cold.push(started.elapsed());
        let runtime = Runtime::new(Some(ComponentCache::new(cache_dir.path()))).unwrap();
        if round == 0 {
            runtime
                .component("local", storehost::builtin::local())
                .unwrap();
        }
        let started = Instant::now();
        runtime
            .component("local", storehost::builtin::local())
            .unwrap();
        cached.push(started.elapsed());
    }
    report("load local component: compile (no cache)", cold);
    report("load local component: from disk cache", cached);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(Some(ComponentCache::new(cache_dir.path()))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut samples = Vec::new();
    for _ in 0..200 {
        let plugin = Plugin::load(
            &runtime,
            spec("local", Grants::minimal().with_directory(dir.path())),
            storehost::builtin::local(),
        )
        .unwrap();
        let started = Instant::now();
        rt.block_on(plugin.start()).unwrap();
        samples.push(started.elapsed());
    }
    report("instantiate + open local plugin", samples);
}
