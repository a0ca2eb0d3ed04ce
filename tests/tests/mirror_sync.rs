//! Write-through, the outbox under outage, two hosts on one remote, the
//! deletion guard and the workspace watcher.

use std::path::Path;
use std::time::{Duration, Instant};
use storehost::Saved;
use storehost_tests::{
    auth_files, eventually, fault_mirror, local_auth, quick_polls, remote_auth, set_fault,
};

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let (remote, workspace) = (root.path().join("remote"), root.path().join("ws"));
    (root, remote, workspace)
}

#[tokio::test]
async fn writes_go_through_to_the_remote_at_once() {
    let (_root, remote, ws) = dirs();
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    let saved = host.save_auth("a.json", b"{\"v\":1}").await.unwrap();
    assert!(matches!(saved, Saved::Queued(_)), "{saved:?}");
    assert!(
        host.wait_pushed(&saved, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert_eq!(remote_auth(&remote, "a.json").unwrap(), "{\"v\":1}");
    assert_eq!(local_auth(&ws, "a.json").unwrap(), "{\"v\":1}");
    let deleted = host.delete_auth("a.json").await.unwrap();
    assert!(local_auth(&ws, "a.json").is_none(), "gone locally at once");
    assert!(
        host.wait_pushed(&deleted, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert!(remote_auth(&remote, "a.json").is_none());
}

#[tokio::test]
async fn an_outage_queues_500_writes_and_replays_them_all_in_order() {
    let (_root, remote, ws) = dirs();
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    set_fault(&remote, Some("unavailable"));
    for i in 0..500 {
        let id = format!("acct-{:03}.json", i % 250);
        let content = format!("{{\"write\":{i}}}");
        let saved = host.save_auth(&id, content.as_bytes()).await.unwrap();
        assert!(matches!(saved, Saved::Queued(_)), "write {i}");
        assert_eq!(
            local_auth(&ws, &id).unwrap(),
            content,
            "the workspace has it at once"
        );
    }
    // A write of a document not yet sent supersedes the one before it:
    // each document's latest content goes out, once.
    assert_eq!(host.outbox_len().await, 250);
    assert!(
        auth_files(&remote).is_empty(),
        "nothing reached the remote during the outage"
    );

    set_fault(&remote, None);
    assert_eq!(host.flush(Duration::from_secs(60)).await.unwrap(), 0);
    let ids = auth_files(&remote);
    assert_eq!(ids.len(), 250, "none lost, none duplicated");
    for i in 0..250 {
        // Each id was written twice; the later write (i + 250) must win.
        let id = format!("acct-{i:03}.json");
        assert_eq!(
            remote_auth(&remote, &id).unwrap(),
            format!("{{\"write\":{}}}", i + 250),
            "{id}"
        );
    }
}

#[tokio::test]
async fn the_replay_loop_retries_with_backoff_until_the_backend_returns() {
    let (_root, remote, ws) = dirs();
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    let sync = host.start_sync().await.unwrap().unwrap();
    set_fault(&remote, Some("unavailable"));
    assert!(matches!(
        host.save_auth("late.json", b"{}").await.unwrap(),
        Saved::Queued(_)
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(remote_auth(&remote, "late.json").is_none());
    set_fault(&remote, None);
    eventually(
        "the queued write reaches the remote",
        Duration::from_secs(10),
        || remote_auth(&remote, "late.json").is_some(),
    )
    .await;
    assert_eq!(sync.shutdown().await, 0);
}

#[tokio::test]
async fn shutdown_flushes_the_outbox_within_its_bound() {
    let (_root, remote, ws) = dirs();
    let mut options = quick_polls();
    options.mirror.shutdown_flush = Duration::from_millis(500);
    let host = fault_mirror(&remote, &ws, options).await;
    host.bootstrap().await.unwrap();
    let sync = host.start_sync().await.unwrap().unwrap();
    set_fault(&remote, Some("unavailable"));
    host.save_auth("kept.json", b"{}").await.unwrap();
    let started = Instant::now();
    assert_eq!(
        sync.shutdown().await,
        1,
        "still down: the change stays queued on disk"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    set_fault(&remote, None);
    drop(host);
    // The next start replays it.
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    assert_eq!(remote_auth(&remote, "kept.json").unwrap(), "{}");
}

#[tokio::test]
async fn two_hosts_on_one_remote_converge() {
    let root = tempfile::tempdir().unwrap();
    let remote = root.path().join("remote");
    let (ws_a, ws_b) = (root.path().join("a"), root.path().join("b"));
    let a = fault_mirror(&remote, &ws_a, quick_polls()).await;
    a.bootstrap().await.unwrap();
    let b = fault_mirror(&remote, &ws_b, quick_polls()).await;
    b.bootstrap().await.unwrap();

    let writes_a = async {
        for i in 0..20 {
            storehost_tests::save_pushed(&a, &format!("a-{i}.json"), b"{\"by\":\"a\"}").await;
        }
    };
    let writes_b = async {
        for i in 0..20 {
            storehost_tests::save_pushed(&b, &format!("b-{i}.json"), b"{\"by\":\"b\"}").await;
        }
    };
    tokio::join!(writes_a, writes_b);
    a.pull_remote().await.unwrap();
    b.pull_remote().await.unwrap();
    assert_eq!(auth_files(&ws_a).len(), 40);
    assert_eq!(auth_files(&ws_a), auth_files(&ws_b));
    assert_eq!(auth_files(&ws_a), auth_files(&remote));

    // The same id from both: the first to reach the remote wins; the other
    // keeps its version as a conflict copy.
    storehost_tests::save_pushed(&a, "shared.json", b"{\"by\":\"a\"}").await;
    storehost_tests::save_pushed(&b, "shared.json", b"{\"by\":\"b\"}").await;
    a.pull_remote().await.unwrap();
    b.pull_remote().await.unwrap();
    assert_eq!(local_auth(&ws_a, "shared.json").unwrap(), "{\"by\":\"a\"}");
    assert_eq!(local_auth(&ws_b, "shared.json").unwrap(), "{\"by\":\"a\"}");
    let copies: Vec<String> = auth_files(&ws_b)
        .into_iter()
        .filter(|id| id.starts_with("shared.json.conflict-"))
        .collect();
    assert_eq!(copies.len(), 1, "{:?}", auth_files(&ws_b));
    assert_eq!(local_auth(&ws_b, &copies[0]).unwrap(), "{\"by\":\"b\"}");
}

#[tokio::test]
async fn the_state_a_conflict_leaves_is_saved_at_once() {
    let root = tempfile::tempdir().unwrap();
    let remote = root.path().join("remote");
    let (ws_a, ws_b) = (root.path().join("a"), root.path().join("b"));
    let a = fault_mirror(&remote, &ws_a, quick_polls()).await;
    a.bootstrap().await.unwrap();
    let b = fault_mirror(&remote, &ws_b, quick_polls()).await;
    b.bootstrap().await.unwrap();
    storehost_tests::save_pushed(&a, "shared.json", b"{\"by\":\"a\"}").await;
    // b's only change meets a conflict: nothing is applied, yet the state
    // now knows the remote's version and must say so on disk.
    storehost_tests::save_pushed(&b, "shared.json", b"{\"by\":\"b\"}").await;
    let ledger = storehost::mirror::ledger::Ledger::open(&ws_b.join(".storehost")).unwrap();
    assert!(
        ledger.base(&storehost::Key::auth("shared.json")).is_some(),
        "{:?}",
        ledger.bases().keys().collect::<Vec<_>>()
    );
    assert_eq!(ledger.conflicts().unwrap().len(), 1);
    assert_eq!(ledger.outbox_len().unwrap(), 0);
}

#[tokio::test]
async fn removing_the_auth_folder_deletes_nothing_remotely() {
    let (_root, remote, ws) = dirs();
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    for i in 0..8 {
        storehost_tests::save_pushed(&host, &format!("{i}.json"), b"{}").await;
    }
    std::fs::remove_dir_all(ws.join("auths")).unwrap();
    host.sync_workspace().await.unwrap();
    assert_eq!(
        auth_files(&remote).len(),
        8,
        "a vanished folder is not a deletion"
    );
    assert_eq!(
        auth_files(&ws).len(),
        8,
        "the workspace is restored from the remote"
    );

    for i in 0..5 {
        std::fs::remove_file(ws.join(format!("auths/{i}.json"))).unwrap();
    }
    host.sync_workspace().await.unwrap();
    assert_eq!(
        auth_files(&remote).len(),
        8,
        "5 of 8 at once is over the share: refused"
    );
    assert_eq!(auth_files(&ws).len(), 8);

    std::fs::remove_file(ws.join("auths/7.json")).unwrap();
    host.sync_workspace().await.unwrap();
    assert!(
        remote_auth(&remote, "7.json").is_none(),
        "a single deliberate removal propagates"
    );
    assert_eq!(auth_files(&remote).len(), 7);
}

fn write_as_another_process(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf '%s' \"$1\" > \"$2.part\" && mv \"$2.part\" \"$2\"")
        .arg("sh")
        .arg(content)
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn the_watcher_pushes_files_other_processes_write() {
    let (_root, remote, ws) = dirs();
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    let sync = host.start_sync().await.unwrap().unwrap();

    write_as_another_process(&ws.join("auths/proxy.json"), "{\"from\":\"proxy\"}");
    write_as_another_process(&ws.join("auths/team/nested/x.json"), "{\"nested\":true}");
    write_as_another_process(&ws.join("auths/broken.json"), "{\"oops\"");
    write_as_another_process(&ws.join("config/config.yaml"), "port: 9\n");
    eventually(
        "the proxy's files reach the remote",
        Duration::from_secs(10),
        || {
            remote_auth(&remote, "proxy.json").is_some()
                && remote_auth(&remote, "team/nested/x.json").is_some()
        },
    )
    .await;
    eventually(
        "the config reaches the remote",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(remote.join("config/config.yaml"))
                .is_ok_and(|c| c == "port: 9\n")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        remote_auth(&remote, "broken.json").is_none(),
        "invalid JSON is never pushed"
    );

    // And the other way: a change on the remote reaches the workspace.
    std::fs::write(remote.join("auths/from-remote.json"), "{\"r\":1}").unwrap();
    eventually(
        "the change feed brings remote changes",
        Duration::from_secs(10),
        || local_auth(&ws, "from-remote.json").is_some(),
    )
    .await;
    sync.shutdown().await;
}

/// The proxy held a file open across a pull and writes through that
/// handle later, into the copy now in the trash. With no poll due, the
/// watcher sees the trash change, and the late write is kept as a
/// conflict copy beside the backend's version (not left only in the trash).
#[tokio::test]
async fn the_watcher_finds_a_late_write_into_a_file_a_pull_replaced() {
    use std::io::{Seek, Write};
    let (_root, remote, ws) = dirs();
    let no_polls = storehost::StorehostOptions {
        mirror: storehost::MirrorOptions {
            poll_interval: Duration::from_secs(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let host = fault_mirror(&remote, &ws, no_polls).await;
    host.bootstrap().await.unwrap();
    storehost_tests::save_pushed(&host, "t.json", b"{\"v\":1}").await;
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .open(ws.join("auths/t.json"))
        .unwrap();
    std::fs::write(remote.join("auths/t.json"), "{\"v\":2}").unwrap();
    assert_eq!(host.pull_remote().await.unwrap(), 1);
    let sync = host.start_sync().await.unwrap().unwrap();

    handle.set_len(0).unwrap();
    handle.rewind().unwrap();
    handle.write_all(b"{\"proxy\":3}").unwrap();
    drop(handle);
    let copy_of_late_write = || {
        auth_files(&ws)
            .into_iter()
            .filter(|id| id.starts_with("t.json.conflict-"))
            .filter_map(|id| local_auth(&ws, &id))
            .collect::<Vec<_>>()
    };
    eventually(
        "the late write is kept as a conflict copy",
        Duration::from_secs(10),
        || !copy_of_late_write().is_empty(),
    )
    .await;
    assert_eq!(copy_of_late_write(), ["{\"proxy\":3}"]);
    assert_eq!(local_auth(&ws, "t.json").unwrap(), "{\"v\":2}");
    assert_eq!(remote_auth(&remote, "t.json").unwrap(), "{\"v\":2}");
    sync.shutdown().await;
}

#[tokio::test]
async fn an_apply_answering_the_wrong_count_keeps_the_changes_queued() {
    let (_root, remote, ws) = dirs();
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    set_fault(&remote, Some("wrong-apply-count"));
    for id in ["a.json", "b.json"] {
        host.save_auth(id, b"{\"v\":1}").await.unwrap();
    }
    assert_eq!(
        host.flush(Duration::from_millis(500)).await.unwrap(),
        2,
        "kept in the outbox"
    );
    set_fault(&remote, None);
    assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    for id in ["a.json", "b.json"] {
        assert_eq!(remote_auth(&remote, id).unwrap(), "{\"v\":1}");
        assert_eq!(local_auth(&ws, id).unwrap(), "{\"v\":1}");
    }
    assert!(
        auth_files(&ws).iter().all(|id| !id.contains(".conflict-")),
        "its own writes are not conflicts"
    );
}

#[tokio::test]
async fn a_plugin_that_acknowledges_and_stores_nothing_loses_no_file() {
    let (_root, remote, ws) = dirs();
    let mut options = quick_polls();
    // A delta shows no change where nothing was stored; the periodic
    // complete pull is what finds the lie.
    options.mirror.complete_pull_interval = Duration::ZERO;
    let host = fault_mirror(&remote, &ws, options).await;
    host.bootstrap().await.unwrap();
    set_fault(&remote, Some("lying-apply"));
    for i in 0..5 {
        let saved = host
            .save_auth(&format!("l{i}.json"), b"{\"v\":1}")
            .await
            .unwrap();
        assert!(
            host.wait_pushed(&saved, Duration::from_secs(10))
                .await
                .unwrap()
        );
    }
    assert!(auth_files(&remote).is_empty(), "the plugin lied");
    // The next complete pull shows them all gone: a wipe, refused.
    host.pull_remote().await.unwrap();
    assert_eq!(auth_files(&ws).len(), 5);
    set_fault(&remote, None);
    assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    assert_eq!(auth_files(&remote).len(), 5, "written back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_spinning_in_wait_for_change_neither_stops_writes_nor_holds_shutdown() {
    let (_root, remote, ws) = dirs();
    let mut options = quick_polls();
    options.mirror.poll_interval = Duration::from_secs(30);
    // Far longer than the wait's own bound (its timeout plus a grace).
    options.limits.call_deadline = Duration::from_secs(300);
    options.mirror.shutdown_flush = Duration::from_secs(5);
    std::fs::create_dir_all(&remote).unwrap();
    set_fault(&remote, Some("spin-watch"));
    let host = fault_mirror(&remote, &ws, options).await;
    host.bootstrap().await.unwrap();
    let sync = host.start_sync().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let saved = host.save_auth("w.json", b"{\"v\":1}").await.unwrap();
    assert!(
        host.wait_pushed(&saved, Duration::from_secs(10))
            .await
            .unwrap(),
        "writes go through while the watch spins"
    );
    let started = Instant::now();
    assert_eq!(sync.shutdown().await, 0);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown waited for the spinning call: {took:?}"
    );
}

/// Links someone left in the store (one dangling, one to another file, one
/// to another directory of auths) are no documents, nor is anything
/// beneath them: writes to their ids are refused one by one, the others
/// still go through at once, and no other file's content comes back under
/// a linked id, or is overwritten through one.
#[tokio::test]
async fn a_symlink_in_the_store_holds_up_no_other_document() {
    let (_root, remote, ws) = dirs();
    std::fs::create_dir_all(remote.join("auths/team")).unwrap();
    std::fs::create_dir_all(remote.join("config")).unwrap();
    std::fs::write(remote.join("config/other"), br#"{"other":1}"#).unwrap();
    std::fs::write(remote.join("auths/team/a.json"), br#"{"team":1}"#).unwrap();
    std::os::unix::fs::symlink("nowhere.json", remote.join("auths/dangling.json")).unwrap();
    std::os::unix::fs::symlink("../config/other", remote.join("auths/linked.json")).unwrap();
    std::os::unix::fs::symlink("team", remote.join("auths/linked-team")).unwrap();
    let host = fault_mirror(&remote, &ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    assert_eq!(auth_files(&ws), ["team/a.json"]);
    let linked = ["dangling.json", "linked.json", "linked-team/a.json"];
    for id in linked.iter().chain(&["plain.json"]) {
        let content = format!(r#"{{"id":"{id}"}}"#);
        let saved = host.save_auth(id, content.as_bytes()).await.unwrap();
        assert!(
            host.wait_pushed(&saved, Duration::from_secs(10))
                .await
                .unwrap(),
            "{id} was held up"
        );
    }
    assert_eq!(
        remote_auth(&remote, "plain.json").unwrap(),
        r#"{"id":"plain.json"}"#
    );
    host.pull_remote().await.unwrap();
    assert_eq!(
        auth_files(&ws),
        [
            "dangling.json",
            "linked-team/a.json",
            "linked.json",
            "plain.json",
            "team/a.json"
        ],
        "no conflict copies"
    );
    for id in linked {
        assert_eq!(local_auth(&ws, id).unwrap(), format!(r#"{{"id":"{id}"}}"#));
        let link = id.split_once('/').map_or(id, |(dir, _)| dir);
        let link = remote.join("auths").join(link);
        assert!(link.symlink_metadata().unwrap().is_symlink(), "{id}");
    }
    let other = std::fs::read(remote.join("config/other")).unwrap();
    assert_eq!(other, br#"{"other":1}"#);
    assert_eq!(
        remote_auth(&remote, "team/a.json").unwrap(),
        r#"{"team":1}"#
    );
}
