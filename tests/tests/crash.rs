//! A writer killed with SIGKILL at random moments loses no acknowledged
//! write: after every restart each one is in the workspace and the remote,
//! with the last acknowledged content of every rewritten file, and no
//! conflict copy (a single writer never conflicts with itself).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};
use storehost::StorehostOptions;
use storehost_tests::{local_auth, remote_auth, set_fault};

const ROUNDS: usize = 20;

/// Rounds whose writer acknowledged writes while the remote was down.
static QUEUED_ROUNDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A kill delay between 5 and 200 ms, from the clock (no RNG needed).
fn random_delay() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Duration::from_millis(5 + u64::from(nanos % 195))
}

/// Runs one writer until `ready` (its start replays what an earlier one
/// left queued) and checks that everything acknowledged `before` is on both
/// sides; then lets it write, during an outage of the remote when `outage`,
/// kills it with SIGKILL and returns the ids it acknowledged.
fn run_round(
    remote: &Path,
    workspace: &Path,
    round: usize,
    outage: bool,
    before: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let prefix = format!("r{round:02}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .args([remote.as_os_str(), workspace.as_os_str(), prefix.as_ref()])
        .env(
            "RUST_LOG",
            std::env::var("CRASH_LOG").unwrap_or_else(|_| "off".into()),
        )
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the writer started");
    assert_eq!(first, "ready");
    assert_all_present(remote, workspace, before, round);
    if outage {
        set_fault(remote, Some("unavailable"));
    }
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    std::thread::sleep(random_delay());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    set_fault(remote, None);
    reader.join().unwrap();
    let acks: Vec<String> = rx
        .try_iter()
        .filter_map(|line| line.strip_prefix("ack ").map(str::to_owned))
        .collect();
    if outage && !acks.is_empty() {
        QUEUED_ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // In order, so a rewritten file keeps its last acknowledged content.
    acks.into_iter()
        .filter_map(|ack| {
            let (id, content) = ack.split_once(' ')?;
            Some((id.to_string(), content.to_string()))
        })
        .collect()
}

fn assert_all_present(
    remote: &Path,
    workspace: &Path,
    acked: &BTreeMap<String, String>,
    round: usize,
) {
    for (id, last) in acked {
        let content =
            local_auth(workspace, id).unwrap_or_else(|| panic!("round {round}: {id} lost locally"));
        let remote_content =
            remote_auth(remote, id).unwrap_or_else(|| panic!("round {round}: {id} lost remotely"));
        assert_eq!(content, remote_content, "round {round}: {id}");
        // A write the writer made but was killed before acknowledging may
        // be there too: it is newer, never older, than the last ack.
        assert!(
            write_order(&content) >= write_order(last),
            "round {round}: {id} went back from {last} to {content}"
        );
    }
}

/// (round prefix, n) of a writer's content: later writes compare greater.
fn write_order(content: &str) -> (String, u64) {
    let value: serde_json::Value = serde_json::from_str(content).unwrap();
    (
        value["by"].as_str().unwrap().to_string(),
        value["n"].as_u64().unwrap(),
    )
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    // CRASH_KEEP=1 keeps the directories of a failed run to look at.
    let root = tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("CRASH_KEEP").is_some())
        .tempdir()
        .unwrap();
    eprintln!("crash test directory: {}", root.path().display());
    let (remote, workspace) = (root.path().join("remote"), root.path().join("ws"));
    let mut acked = BTreeMap::new();
    for round in 0..ROUNDS {
        let new = run_round(&remote, &workspace, round, round % 2 == 1, &acked);
        acked.extend(new);
    }
    assert!(
        acked.len() > ROUNDS,
        "the writer got to write: {} acks",
        acked.len()
    );
    let queued_rounds = QUEUED_ROUNDS.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        queued_rounds >= 3,
        "outage rounds must queue writes for replay (got {queued_rounds})"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let host =
            storehost_tests::fault_mirror(&remote, &workspace, StorehostOptions::default()).await;
        host.bootstrap().await.unwrap();
        assert_eq!(host.outbox_len().await, 0);
    });
    assert_all_present(&remote, &workspace, &acked, ROUNDS);
    let conflicts: Vec<String> = storehost_tests::auth_files(&workspace)
        .into_iter()
        .filter(|id| id.contains(".conflict-"))
        .collect();
    assert!(
        conflicts.is_empty(),
        "a crash is not a conflict: {conflicts:?}"
    );
}
