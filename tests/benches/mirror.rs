//! Prints mirror costs with the local backend on a second directory as the
//! remote: bootstrap of 1k and 10k auth files, acknowledgement latency of a
//! file the proxy writes (backend up and down), write-through at 10 and 10k
//! documents, what one poll costs the host beyond the plugin's pull, and
//! the CPU a serving host spends when nothing changes.
//! Run with `cargo bench -p storehost-tests --bench mirror`.

use std::path::Path;
use std::time::{Duration, Instant};
use storehost::mirror::ledger::Ledger;
use storehost::{Storehost, StorehostOptions};
use storehost_tests::scenarios::proxy_write;
use storehost_tests::{bench_selected, fault_mirror, local_plugin, percentiles, set_fault};

fn auth(i: usize) -> String {
    format!(
        "{{\"type\":\"claude\",\"email\":\"user{i}@example.com\",\"refresh_token\":\"rt-{i:08}\"}}"
    )
}

fn seed(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir.join("auths")).unwrap();
    for i in 0..count {
        std::fs::write(dir.join("auths").join(format!("user{i}.json")), auth(i)).unwrap();
    }
}

async fn bootstrap(count: usize) {
    let root = tempfile::tempdir().unwrap();
    let (remote, ws) = (root.path().join("remote"), root.path().join("ws"));
    seed(&ws, count);
    let started = Instant::now();
    let host = Storehost::local_remote(&remote, &ws, StorehostOptions::default())
        .await
        .unwrap();
    let report = host.bootstrap().await.unwrap();
    assert_eq!(host.flush(Duration::from_secs(120)).await.unwrap(), 0);
    let upload = started.elapsed();
    assert_eq!(report.uploaded, count + 1);
    drop(host);

    let fresh = root.path().join("fresh");
    let started = Instant::now();
    let host = Storehost::local_remote(&remote, &fresh, StorehostOptions::default())
        .await
        .unwrap();
    let report = host.bootstrap().await.unwrap();
    let download = started.elapsed();
    assert_eq!(report.pulled, count + 1);
    drop(host);

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

/// True once the ledger holds `content` for `id`: queued, or already
/// pushed and recorded.
fn acknowledged(ledger: &Ledger, id: &str, content: &str) -> bool {
    let key = storehost::Key::auth(id);
    let hash = storehost::mirror::hash::doc_hash(&key, content.as_bytes());
    ledger
        .committed_base(&key)
        .unwrap()
        .is_some_and(|b| b.hash == hash)
        || ledger
            .pending_for(&key)
            .unwrap()
            .iter()
            .any(|p| p.hash.as_deref() == Some(hash.as_str()))
}

/// From the proxy's rename to the change being durable in the ledger.
async fn watched_write_ack(backend_down: bool) {
    let root = tempfile::tempdir().unwrap();
    let (remote, ws) = (root.path().join("remote"), root.path().join("ws"));
    let host = fault_mirror(&remote, &ws, StorehostOptions::default()).await;
    host.bootstrap().await.unwrap();
    let sync = host.start_sync().await.unwrap().unwrap();
    if backend_down {
        set_fault(&remote, Some("unavailable"));
    }
    let ledger = Ledger::open(&ws.join(".storehost")).unwrap();
    let mut samples = Vec::new();
    for i in 0..300 {
        let (id, content) = (format!("w{}.json", i % 40), format!("{{\"n\":{i}}}"));
        let started = Instant::now();
        proxy_write(&ws, &id, &content);
        // Each query is a read transaction of its own, which sees every
        // commit made before it started.
        while !acknowledged(&ledger, &id, &content) {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        samples.push(started.elapsed());
    }
    let label = match backend_down {
        false => "ack of a watched file write, backend up",
        true => "ack of a watched file write, backend down",
    };
    percentiles(label, samples);
    set_fault(&remote, None);
    sync.shutdown().await;
}

/// A host in step with a remote directory of `documents` auths.
async fn host_over(root: &Path, documents: usize) -> Storehost {
    host_with(root, documents, StorehostOptions::default()).await
}

async fn host_with(root: &Path, documents: usize, options: StorehostOptions) -> Storehost {
    let (remote, ws) = (root.join("remote"), root.join("ws"));
    seed(&remote, documents);
    let host = Storehost::local_remote(&remote, &ws, options)
        .await
        .unwrap();
    host.bootstrap().await.unwrap();
    host
}

/// `save_auth` (the acknowledgement) and save until the remote has it.
async fn write_through(documents: usize) {
    let root = tempfile::tempdir().unwrap();
    let host = host_over(root.path(), documents).await;
    let (mut acks, mut pushed) = (Vec::new(), Vec::new());
    for i in 0..300 {
        let content = format!("{{\"type\":\"claude\",\"n\":{i}}}");
        let started = Instant::now();
        let saved = host
            .save_auth(&format!("user{}.json", i % 50), content.as_bytes())
            .await
            .unwrap();
        acks.push(started.elapsed());
        assert!(
            host.wait_pushed(&saved, Duration::from_secs(10))
                .await
                .unwrap()
        );
        pushed.push(started.elapsed());
    }
    percentiles(&format!("save_auth ack, {documents} documents"), acks);
    percentiles(
        &format!("save_auth until on the remote, {documents} documents"),
        pushed,
    );
}

/// A poll after one remote change: the host's whole poll, and the plugin's
/// own pull of the same change, a delta from its last cursor as the
/// host's is.
async fn poll_cost(documents: usize) {
    let root = tempfile::tempdir().unwrap();
    let remote = root.path().join("remote");
    let host = host_over(root.path(), documents).await;
    let reader = local_plugin(&remote);
    reader.start().await.unwrap();
    let mut cursor = reader.pull(None).await.unwrap().cursor;
    let (mut polls, mut pulls) = (Vec::new(), Vec::new());
    for i in 0..20 {
        std::fs::write(remote.join("auths/user7.json"), format!("{{\"n\":{i}}}")).unwrap();
        let started = Instant::now();
        assert_eq!(host.pull_remote().await.unwrap(), 1);
        polls.push(started.elapsed());
        let started = Instant::now();
        let delta = reader.pull(Some(&cursor)).await.unwrap();
        pulls.push(started.elapsed());
        assert_eq!(delta.documents.len(), 1, "a delta of the one change");
        cursor = delta.cursor;
    }
    let poll = percentiles(
        &format!("poll with one change, {documents} documents"),
        polls,
    );
    let pull = percentiles("  of which the plugin's own pull", pulls);
    println!(
        "{:<44} {:>9.2?}",
        "  host time beyond the pull (p50)",
        poll.saturating_sub(pull)
    );
}

/// CPU time of this whole process so far (all threads), from /proc.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command name in parentheses: utime and stime are fields 14
    // and 15, in clock ticks (100 per second on Linux).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// A serving host with nothing changing: the CPU it spends (the watcher,
/// the polls of the remote, the periodic scans), as a share of one core.
async fn idle_cpu(documents: usize, poll: Duration) {
    let root = tempfile::tempdir().unwrap();
    let options = StorehostOptions {
        mirror: storehost::MirrorOptions {
            poll_interval: poll,
            ..Default::default()
        },
        ..Default::default()
    };
    let host = host_with(root.path(), documents, options).await;
    let sync = host.start_sync().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = Duration::from_secs(20);
    let (cpu, started) = (process_cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let spent = process_cpu().saturating_sub(cpu);
    let elapsed = started.elapsed();
    println!(
        "idle CPU, {documents} documents, poll every {poll:?}: {spent:.2?} in {elapsed:.2?} = {:.2} % of a core",
        100.0 * spent.as_secs_f64() / elapsed.as_secs_f64()
    );
    sync.shutdown().await;
}

fn main() {
    // As `serve` logs: the spans the bindings open then cost what they cost there.
    storehost::logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if bench_selected("write_through") {
            write_through(10).await;
            write_through(10_000).await;
        }
        if bench_selected("ack") {
            watched_write_ack(false).await;
            watched_write_ack(true).await;
        }
        if bench_selected("bootstrap") {
            bootstrap(1_000).await;
            bootstrap(10_000).await;
        }
        if bench_selected("poll") {
            poll_cost(10_000).await;
        }
        if bench_selected("idle") {
            idle_cpu(10_000, Duration::from_secs(5)).await;
            // The watcher and the rest alone, without the polls.
            idle_cpu(10_000, Duration::from_secs(3600)).await;
        }
    });
}
