//! Prints Azure Blob costs against a real Azurite: a put through the
//! third-party plugin (wasi:http, SharedKey signed by the host) against
//! the same signed request made by the host directly on the same grant,
//! and a bootstrap of 1k auths. The put's p50 ratio is printed over all
//! rounds and per block of rounds, so a run shows how much it varies.
//! Run with `cargo bench -p storehost-tests --bench azure` (needs Azurite;
//! `bash .ci/install.sh` installs it).
//!
//! For a profiler or `strace -c`, `AZURE_BENCH_ONLY=plugin` (or `direct`)
//! runs that one path alone for 3000 puts and nothing else, on one thread
//! or, with `AZURE_BENCH_RUNTIME=two-workers`, on the two-worker runtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storehost::capabilities::http::HttpGrant;
use storehost::model::{Change, Key, Precondition};
use storehost::runtime::Plugin;
use storehost_tests::azure::Azurite;
use storehost_tests::{percentiles, quantile};

/// Rounds of the interleaved put, each one put of every variant.
const ROUNDS: usize = 2000;
/// Rounds per block: the ratio is printed per block too, since it moves
/// by a few hundredths from one run to the next on a shared machine.
const BLOCK: usize = 400;
/// Puts of the one path an `AZURE_BENCH_ONLY` run makes.
const PROFILE_ROUNDS: usize = 3000;

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
    content: String,
) -> http::Request<Vec<u8>> {
    let body = content.into_bytes();
    http::Request::put(format!("{}/{container}/auths/{id}", server.account_url()))
        .header("x-ms-version", "2021-08-06")
        .header("x-ms-blob-type", "BlockBlob")
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(body)
        .unwrap()
}

/// An unconditional put through the plugin, timed from building the change.
async fn put_via_plugin(plugin: &Plugin, id: String, content: String) -> Duration {
    let started = Instant::now();
    plugin.apply(vec![put(id, content)], "bench").await.unwrap();
    started.elapsed()
}

/// The same put made by the host on the plugin's grant, timed from sending.
async fn put_directly(
    server: &Azurite,
    grant: &HttpGrant,
    container: &str,
    id: &str,
    content: String,
) -> Duration {
    let request = direct_put(server, container, id, content);
    let started = Instant::now();
    let response = grant.send_direct(request).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 201);
    elapsed
}

/// CPU time of the calling thread. On a one-thread runtime every step of
/// both paths (guest, wasi:http, signing, hyper) runs on it, so the
/// difference is what the plugin costs in CPU, apart from the wire.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

async fn put_latency(server: Arc<Azurite>, scratch: PathBuf, one_thread: bool) {
    let (server, scratch) = (&*server, scratch.as_path());
    let container = "latency";
    let credential = server.shared_key();
    let plugin = server.plugin(&scratch.join("plugin"), container, &credential);
    plugin.prepare().await.unwrap();
    // The plugin's own grant: the same rule, credential and pooled
    // connection its requests use.
    let grant = plugin.grants().http().unwrap().clone();
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut cpu: [Vec<Duration>; 3] = Default::default();
    // Interleaved, so all three see the same server state and machine
    // load, and in a rotating order, so none is always the one that
    // follows another.
    for i in 0..ROUNDS {
        for turn in 0..3 {
            let variant = (i + turn) % 3;
            let content = format!("{{\"type\":\"claude\",\"n\":{i}}}");
            // (a task on the two-worker runtime may change threads, so
            // only the one-thread runtime measures CPU)
            let cpu_before = one_thread.then(thread_cpu);
            let elapsed = match variant {
                0 => put_via_plugin(&plugin, format!("p{}.json", i % 50), content).await,
                1 => {
                    let id = format!("d{}.json", i % 50);
                    put_directly(server, &grant, container, &id, content).await
                }
                _ => {
                    // From a spawned task, as wasmtime-wasi-http sends every
                    // plugin request: what the task hop itself costs.
                    let request =
                        direct_put(server, container, &format!("s{}.json", i % 50), content);
                    let task_grant = grant.clone();
                    let started = Instant::now();
                    let response =
                        tokio::spawn(async move { task_grant.send_direct(request).await })
                            .await
                            .unwrap()
                            .unwrap();
                    let elapsed = started.elapsed();
                    assert_eq!(response.status(), 201);
                    elapsed
                }
            };
            if let Some(before) = cpu_before {
                cpu[variant].push(thread_cpu().saturating_sub(before));
            }
            samples[variant].push(elapsed);
        }
    }
    let [through_plugin, direct, spawned] = samples;
    print_gap(&through_plugin, &direct);
    print_block_ratios(&through_plugin, &direct);
    if one_thread {
        let [plugin_cpu, direct_cpu, _] = cpu;
        percentiles("CPU of a put via the plugin (this thread)", plugin_cpu);
        percentiles("CPU of a put made directly (this thread)", direct_cpu);
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

/// The one path `AZURE_BENCH_ONLY` names, alone, so that whatever a
/// profiler or `strace -c` counts belongs to it.
async fn put_alone(server: Arc<Azurite>, scratch: PathBuf, through_plugin: bool, one_thread: bool) {
    let (server, scratch) = (&*server, scratch.as_path());
    let container = "alone";
    let plugin = server.plugin(&scratch.join("plugin"), container, &server.shared_key());
    plugin.prepare().await.unwrap();
    let grant = plugin.grants().http().unwrap().clone();
    let (mut latency, mut cpu) = (Vec::new(), Vec::new());
    for i in 0..PROFILE_ROUNDS {
        let id = format!("a{}.json", i % 50);
        let content = format!("{{\"type\":\"claude\",\"n\":{i}}}");
        let cpu_before = thread_cpu();
        latency.push(match through_plugin {
            true => put_via_plugin(&plugin, id, content).await,
            false => put_directly(server, &grant, container, &id, content).await,
        });
        cpu.push(thread_cpu().saturating_sub(cpu_before));
    }
    let path = if through_plugin {
        "the plugin"
    } else {
        "the host directly"
    };
    percentiles(&format!("put via {path}, alone"), latency);
    if one_thread {
        percentiles("CPU of that put (this thread)", cpu);
    }
}

/// The path and runtime `AZURE_BENCH_ONLY` and `AZURE_BENCH_RUNTIME` ask
/// for: whether through the plugin, and whether on one thread.
fn alone_from_env() -> Option<(bool, bool)> {
    let only = std::env::var("AZURE_BENCH_ONLY").ok()?;
    let through_plugin = match only.as_str() {
        "plugin" => true,
        "direct" => false,
        other => panic!("AZURE_BENCH_ONLY={other:?}: expected plugin or direct"),
    };
    let one_thread = match std::env::var("AZURE_BENCH_RUNTIME").as_deref() {
        Err(_) | Ok("one-thread") => true,
        Ok("two-workers") => false,
        Ok(other) => panic!("AZURE_BENCH_RUNTIME={other:?}: expected one-thread or two-workers"),
    };
    Some((through_plugin, one_thread))
}

fn runtime(one_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = match one_thread {
        true => tokio::runtime::Builder::new_current_thread(),
        false => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.worker_threads(2).enable_all().build().unwrap()
}

/// What the plugin adds over the direct request across the distribution:
/// a constant shows as the same gap at every quantile.
fn print_gap(through_plugin: &[Duration], direct: &[Duration]) {
    let gaps: Vec<String> = [0.1, 0.25, 0.5, 0.75]
        .iter()
        .map(|&q| {
            let gap = quantile(through_plugin, q).as_secs_f64() - quantile(direct, q).as_secs_f64();
            format!("p{:.0} {:.0}µs", q * 100.0, gap * 1e6)
        })
        .collect();
    println!("plugin minus direct: {}", gaps.join(", "));
}

/// The p50 ratio of each block of [`BLOCK`] rounds, with their median and
/// range: how far one short run's ratio may stray.
fn print_block_ratios(through_plugin: &[Duration], direct: &[Duration]) {
    let mut ratios: Vec<f64> = through_plugin
        .chunks(BLOCK)
        .zip(direct.chunks(BLOCK))
        .map(|(plugin, direct)| {
            quantile(plugin, 0.5).as_secs_f64() / quantile(direct, 0.5).as_secs_f64()
        })
        .collect();
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "ratio plugin/direct at p50 per {BLOCK} rounds: {} (median {:.2}, range {:.2}-{:.2})",
        listed.join(" "),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
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
    // As `serve` logs: the spans the bindings open then cost what they cost there.
    storehost::logging::init();
    let server = Arc::new(Azurite::start());
    let scratch = tempfile::tempdir().unwrap();
    if let Some((through_plugin, one_thread)) = alone_from_env() {
        let alone = put_alone(
            server,
            scratch.path().to_path_buf(),
            through_plugin,
            one_thread,
        );
        let runtime = runtime(one_thread);
        let task = runtime.spawn(alone);
        runtime.block_on(task).unwrap();
        return;
    }
    // The put twice: on one thread, where the plugin's own cost shows, and
    // on the two-worker runtime `serve` uses, where wasmtime-wasi-http's
    // task per request may also hop threads.
    for one_thread in [true, false] {
        let flavor = if one_thread {
            "one thread"
        } else {
            "two workers"
        };
        println!("-- tokio runtime: {flavor}");
        let runtime = runtime(one_thread);
        let scratch = scratch.path().join(flavor.replace(' ', "-"));
        // In a task, as `serve` makes its plugin calls.
        let latency = runtime.spawn(put_latency(server.clone(), scratch.clone(), one_thread));
        runtime.block_on(latency).unwrap();
        if !one_thread {
            runtime.block_on(bootstrap(&server, &scratch, 1000));
        }
    }
}
