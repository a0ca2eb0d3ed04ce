//! Prints Git costs against a real smart-HTTP server (`git http-backend`
//! behind basic auth) holding 10k auth files: committing and pushing one
//! changed file through storehost vs the `git` CLI doing the same, and a
//! bootstrap of that repository vs `git clone`.
//! Run with `cargo bench -p storehost-tests --bench git` (needs git;
//! `bash .ci/install.sh` installs it).

use std::path::Path;
use std::time::{Duration, Instant};
use storehost_tests::git::{self, GitServer};
use storehost_tests::percentiles;

const FILES: usize = 10_000;
const PUSHES: usize = 30;
const BOOTSTRAPS: usize = 3;

/// A repository with `FILES` auth files and a config, pushed with the CLI.
fn seed(server: &GitServer, work: &Path) {
    server.create_repo("bench");
    let seed = work.join("seed");
    git::clone(server, "bench", &seed);
    std::fs::create_dir_all(seed.join("auths")).unwrap();
    std::fs::create_dir_all(seed.join("config")).unwrap();
    std::fs::write(seed.join("config/config.yaml"), "port: 8317\n").unwrap();
    for i in 0..FILES {
        let content = format!(
            r#"{{"type":"claude","email":"user{i}@example.com","refresh_token":"rt-{i:08}"}}"#
        );
        std::fs::write(seed.join(format!("auths/user{i:05}.json")), content).unwrap();
    }
    git::git(&seed, &["add", "-A"]);
    git::git(&seed, &["commit", "--quiet", "-m", "10k tokens"]);
    git::git(&seed, &["push", "--quiet", "origin", "HEAD:main"]);
}

/// The plugin alone: fetch into an empty cache, then one complete pull.
async fn plugin_pull(server: &GitServer, work: &Path) {
    let plugin = git::plugin(&server.url("bench"), &work.join("plugin-cache"));
    plugin.start().await.unwrap();
    let started = Instant::now();
    plugin.prepare().await.unwrap();
    let fetched = started.elapsed();
    let snapshot = plugin.pull(None).await.unwrap();
    assert_eq!(snapshot.documents.len(), FILES + 1);
    println!(
        "plugin alone: first fetch {:.2?}, complete pull of 10k {:.2?}",
        fetched,
        started.elapsed() - fetched
    );
    let clone = work.join("clone-plugin");
    git::clone(server, "bench", &clone);
    let follower = work.join("clone-follower");
    git::clone(server, "bench", &follower);
    let mut cursor = snapshot.cursor;
    let mut deltas = Vec::new();
    let mut fetches = Vec::new();
    for i in 0..10 {
        cli_change(&clone, "user00045.json", &format!("delta-{i}"));
        let started = Instant::now();
        let delta = plugin.pull(Some(&cursor)).await.unwrap();
        deltas.push(started.elapsed());
        assert_eq!(delta.documents.len(), 1);
        cursor = delta.cursor;
        let started = Instant::now();
        git::git(&follower, &["fetch", "--quiet", "origin"]);
        fetches.push(started.elapsed());
    }
    percentiles("plugin alone: delta pull of one change", deltas);
    percentiles("git fetch of one change (CLI)", fetches);
}

async fn bootstrap(server: &GitServer, work: &Path) {
    let mut ours = Vec::new();
    let mut cli = Vec::new();
    for round in 0..BOOTSTRAPS {
        let workspace = work.join(format!("ws-{round}"));
        let started = Instant::now();
        let host = git::host(&server.url("bench"), &workspace, Duration::from_secs(3600)).await;
        let report = host.bootstrap().await.unwrap();
        ours.push(started.elapsed());
        assert_eq!(report.pulled, FILES + 1);
        let clone = work.join(format!("clone-{round}"));
        let started = Instant::now();
        git::clone(server, "bench", &clone);
        cli.push(started.elapsed());
    }
    println!(
        "peak RSS of this process after {BOOTSTRAPS} bootstraps (host, plugin, test server): {} MiB",
        peak_rss_kib() / 1024
    );
    let ours = percentiles("bootstrap of 10k files: storehost", ours);
    let cli = percentiles("bootstrap of 10k files: git clone", cli);
    println!(
        "ratio storehost/git clone at p50: {:.2}",
        ours.as_secs_f64() / cli.as_secs_f64()
    );
}

async fn commit_and_push(server: &GitServer, work: &Path) {
    let host = git::host(
        &server.url("bench"),
        &work.join("ws-push"),
        Duration::from_secs(3600),
    )
    .await;
    host.bootstrap().await.unwrap();
    let mut ours = Vec::new();
    for i in 0..PUSHES {
        let content = format!(r#"{{"type":"claude","refresh_token":"ours-{i}"}}"#);
        let started = Instant::now();
        host.save_auth("user00042.json", content.as_bytes())
            .await
            .unwrap();
        ours.push(started.elapsed());
    }
    let clone = work.join("clone-push");
    git::clone(server, "bench", &clone);
    let mut cli = Vec::new();
    for i in 0..PUSHES {
        cli.push(cli_change(&clone, "user00043.json", &format!("cli-{i}")));
    }
    let ours = percentiles("commit+push of 1 file in 10k: storehost", ours);
    let cli = percentiles("commit+push of 1 file in 10k: git CLI", cli);
    println!(
        "ratio storehost/git CLI at p50: {:.2}",
        ours.as_secs_f64() / cli.as_secs_f64()
    );
    poll_cost(&host, &clone).await;
}

/// Changes one auth file in `clone` and commits and pushes it with the git
/// CLI; returns how long the commit and push took.
fn cli_change(clone: &Path, id: &str, token: &str) -> Duration {
    let content = format!(r#"{{"type":"claude","refresh_token":"{token}"}}"#);
    std::fs::write(clone.join("auths").join(id), content).unwrap();
    let started = Instant::now();
    let message = format!("Update auths/{id}");
    git::git(clone, &["commit", "--quiet", "-am", &message]);
    git::git(clone, &["push", "--quiet", "origin", "HEAD:main"]);
    started.elapsed()
}

/// One poll at 10k files: nothing new, and one file changed by the CLI.
async fn poll_cost(host: &storehost::Storehost, clone: &Path) {
    host.pull_remote().await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..PUSHES {
        let started = Instant::now();
        assert_eq!(host.pull_remote().await.unwrap(), 0);
        idle.push(started.elapsed());
    }
    let mut changed = Vec::new();
    for i in 0..PUSHES {
        cli_change(clone, "user00044.json", &format!("poll-{i}"));
        let started = Instant::now();
        assert_eq!(host.pull_remote().await.unwrap(), 1);
        changed.push(started.elapsed());
    }
    percentiles("poll at 10k files, nothing new", idle);
    percentiles("poll at 10k files, one file changed", changed);
}

/// VmHWM from /proc: the most resident memory this process has had.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // As `serve` logs: the spans the bindings open then cost what they cost there.
    storehost::logging::init();
    let server = GitServer::start();
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    seed(&server, work.path());
    println!(
        "seeded {FILES} files with the git CLI in {:.2?}",
        started.elapsed()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        plugin_pull(&server, work.path()).await;
        bootstrap(&server, work.path()).await;
        commit_and_push(&server, work.path()).await;
    });
}
