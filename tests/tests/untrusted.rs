//! A backend that serves bad ids, bad content, duplicates, huge versions or
//! wipes itself (the fault component): nothing it serves reaches the
//! workspace unchecked, the rest of each answer still applies, and a wipe
//! is refused and written back.

use std::path::Path;
use std::time::Duration;
use storehost::mirror::Workspace;
use storehost::mirror::ledger::{Ledger, MetaName, Quarantined};
use storehost_tests::{
    auth_files, eventually, fault_mirror, local_auth, quick_polls, remote_auth, set_fault,
};

struct Dirs {
    root: tempfile::TempDir,
    remote: std::path::PathBuf,
    ws: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let (remote, ws) = (root.path().join("remote"), root.path().join("ws"));
    Dirs { root, remote, ws }
}

fn put_remote(remote: &Path, id: &str, content: &str) {
    let path = remote.join("auths").join(id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn quarantined(ws: &Path) -> Vec<Quarantined> {
    Ledger::open(&Workspace::new(ws).state_dir())
        .unwrap()
        .quarantined()
        .unwrap()
}

fn quarantined_paths(ws: &Path) -> Vec<String> {
    quarantined(ws).into_iter().map(|q| q.path).collect()
}

/// Every file under `dir`, relative, with its content.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in walk(dir) {
        let relative = entry.strip_prefix(dir).unwrap().display().to_string();
        if !relative.starts_with(".storehost") {
            files.push((relative, std::fs::read(&entry).unwrap()));
        }
    }
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => found.extend(walk(&path)),
            false => found.push(path),
        }
    }
    found
}

/// A host with `n` auths and the config mirrored both ways.
async fn mirrored(dirs: &Dirs, n: usize) -> storehost::Storehost {
    for i in 0..n {
        put_remote(
            &dirs.remote,
            &format!("a{i}.json"),
            &format!(r#"{{"i":{i}}}"#),
        );
    }
    let host = fault_mirror(&dirs.remote, &dirs.ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    assert_eq!(auth_files(&dirs.ws).len(), n);
    host
}

#[tokio::test]
async fn documents_with_bad_ids_are_quarantined_and_the_rest_still_arrives() {
    let dirs = dirs();
    put_remote(&dirs.remote, "good.json", r#"{"good":1}"#);
    set_fault(&dirs.remote, Some("bad-ids"));
    let host = fault_mirror(&dirs.remote, &dirs.ws, quick_polls()).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(local_auth(&dirs.ws, "good.json").unwrap(), r#"{"good":1}"#);
    assert_eq!(report.pulled, 1, "{report:?}");
    let outside: Vec<_> = std::fs::read_dir(dirs.root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        outside.len(),
        2,
        "nothing beside remote and ws: {outside:?}"
    );
    assert!(auth_files(&dirs.ws).iter().all(|id| !id.contains("escape")));
    let config = std::fs::read_to_string(dirs.ws.join("config/config.yaml")).unwrap_or_default();
    assert!(
        !config.contains("escaped"),
        "a config under another id: {config}"
    );
    let paths = quarantined_paths(&dirs.ws);
    assert_eq!(paths.len(), 5, "four auths and one config: {paths:?}");
    assert!(paths.iter().all(|path| !path.contains("unknown-meta")));
    for q in quarantined(&dirs.ws) {
        assert!(!q.problem.is_empty(), "{q:?}");
    }

    // Arriving later, they stop nothing: the next change still comes.
    put_remote(&dirs.remote, "later.json", r#"{"later":1}"#);
    host.pull_remote().await.unwrap();
    assert_eq!(
        local_auth(&dirs.ws, "later.json").unwrap(),
        r#"{"later":1}"#
    );
    assert_eq!(quarantined_paths(&dirs.ws), paths, "one entry per document");
}

#[tokio::test]
async fn bad_content_never_replaces_a_good_file_and_is_released_when_fixed() {
    let dirs = dirs();
    let host = mirrored(&dirs, 4).await;
    std::fs::create_dir_all(dirs.ws.join("config")).unwrap();
    std::fs::write(dirs.ws.join("config/config.yaml"), "port: 8317\n").unwrap();
    host.sync_workspace().await.unwrap();
    assert_eq!(host.flush(Duration::from_secs(10)).await.unwrap(), 0);
    let before = tree(&dirs.ws);

    set_fault(&dirs.remote, Some("bad-content"));
    host.pull_remote().await.unwrap();
    host.pull_remote().await.unwrap();
    assert_eq!(tree(&dirs.ws), before, "the workspace is untouched");
    let problems: Vec<_> = quarantined(&dirs.ws)
        .into_iter()
        .map(|q| (q.path, q.problem))
        .collect();
    assert_eq!(problems.len(), 5, "four auths and the config: {problems:?}");
    assert!(
        problems
            .iter()
            .any(|(path, _)| path == "config/config.yaml")
    );
    assert!(
        problems
            .iter()
            .any(|(_, problem)| problem.contains("bytes")),
        "the 5 MiB one is refused for its size: {problems:?}"
    );

    // A new workspace bootstrapping from the bad backend gets nothing bad,
    // and the bootstrap completes.
    let fresh = dirs.root.path().join("fresh");
    let other = fault_mirror(&dirs.remote, &fresh, quick_polls()).await;
    other.bootstrap().await.unwrap();
    assert!(auth_files(&fresh).is_empty());
    drop(other);

    set_fault(&dirs.remote, None);
    host.pull_remote().await.unwrap();
    assert!(quarantined(&dirs.ws).is_empty(), "released once fixed");
    assert_eq!(tree(&dirs.ws), before);
}

#[tokio::test]
async fn a_duplicated_key_is_trusted_in_neither_copy_and_never_rewritten() {
    let dirs = dirs();
    let host = mirrored(&dirs, 2).await;
    let file = dirs.ws.join("auths/a0.json");
    let written = std::fs::metadata(&file).unwrap().modified().unwrap();
    set_fault(&dirs.remote, Some("duplicates"));
    put_remote(&dirs.remote, "new.json", r#"{"new":1}"#);
    for _ in 0..3 {
        host.pull_remote().await.unwrap();
    }
    assert_eq!(local_auth(&dirs.ws, "a0.json").unwrap(), r#"{"i":0}"#);
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        written
    );
    assert_eq!(local_auth(&dirs.ws, "new.json"), None, "neither copy taken");
    assert_eq!(
        quarantined_paths(&dirs.ws),
        [
            "auths/a0.json",
            "auths/a1.json",
            "auths/new.json",
            "config/config.yaml",
        ]
    );
    set_fault(&dirs.remote, None);
    host.pull_remote().await.unwrap();
    assert_eq!(local_auth(&dirs.ws, "new.json").unwrap(), r#"{"new":1}"#);
    assert!(quarantined(&dirs.ws).is_empty());
}

#[tokio::test]
async fn huge_versions_are_refused() {
    let dirs = dirs();
    let host = mirrored(&dirs, 2).await;
    let before = tree(&dirs.ws);
    set_fault(&dirs.remote, Some("huge-versions"));
    put_remote(&dirs.remote, "a0.json", r#"{"changed":1}"#);
    put_remote(&dirs.remote, "new.json", r#"{"new":1}"#);
    host.pull_remote().await.unwrap();
    assert_eq!(tree(&dirs.ws), before);
    let problems: Vec<_> = quarantined(&dirs.ws)
        .into_iter()
        .map(|q| (q.path, q.problem))
        .collect();
    let paths: Vec<_> = problems.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "auths/a0.json",
            "auths/a1.json",
            "auths/new.json",
            "config/config.yaml"
        ]
    );
    assert!(
        problems.iter().all(|(_, p)| p.contains("version")),
        "{problems:?}"
    );
    set_fault(&dirs.remote, None);
    host.pull_remote().await.unwrap();
    assert_eq!(local_auth(&dirs.ws, "a0.json").unwrap(), r#"{"changed":1}"#);
    assert_eq!(local_auth(&dirs.ws, "new.json").unwrap(), r#"{"new":1}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_wiped_while_serving_is_refused_and_written_back() {
    let dirs = dirs();
    let host = mirrored(&dirs, 10).await;
    let before = tree(&dirs.ws);
    std::fs::write(dirs.remote.join(".fault-pulls"), "0").unwrap();
    set_fault(&dirs.remote, Some("wipe-after:2"));
    let sync = host.start_sync().await.unwrap().unwrap();
    eventually("the wipe happens", Duration::from_secs(20), || {
        auth_files(&dirs.remote).len() < 10
    })
    .await;
    eventually("written back", Duration::from_secs(30), || {
        auth_files(&dirs.remote).len() == 10
    })
    .await;
    for i in 0..10 {
        let id = format!("a{i}.json");
        assert_eq!(
            remote_auth(&dirs.remote, &id).unwrap(),
            format!(r#"{{"i":{i}}}"#)
        );
    }
    assert_eq!(tree(&dirs.ws), before, "the workspace kept every file");
    let refused = Ledger::open(&Workspace::new(&dirs.ws).state_dir())
        .unwrap()
        .meta(MetaName::RemoteDeletionsRefused)
        .unwrap();
    assert!(
        refused.as_deref().is_some_and(|r| r.starts_with("11 ")),
        "status shows the refusal of 10 auths and the config: {refused:?}"
    );
    assert_eq!(sync.shutdown().await, 0);
}

/// Auth files (`*.json`, any case) and the proxy's cooldown state
/// (`*.cds`) are mirrored, either way; temp files and editor backups are
/// neither pushed nor deleted and are said once; a cooldown file that does
/// not parse is skipped like any invalid document; deleting every `.cds`
/// file at once is an ordinary deletion, not a wipe of the auths.
#[tokio::test(flavor = "current_thread")]
async fn auth_and_cooldown_files_are_mirrored_and_nothing_else() {
    let (_guard, captured) = storehost_tests::logs::capture();
    let dirs = dirs();
    let cooldown = |auth: &str| {
        format!(
            r#"{{"version":1,"updated_at":"2026-12-05T03:00:00Z","records":[{{"auth_id":"{auth}","model":"m","status":"cooling","next_retry_after":"2026-12-05T04:00:00Z","quota":{{"exceeded":true,"next_recover_at":"0001-01-01T00:00:00Z"}},"updated_at":"2026-12-05T03:00:00Z"}}]}}"#
        )
    };
    put_remote(&dirs.remote, "remote.json", r#"{"r":1}"#);
    put_remote(&dirs.remote, "REMOTE-UPPER.JSON", r#"{"r":2}"#);
    put_remote(&dirs.remote, "remote_row.cds", &cooldown("remote.json"));
    put_remote(&dirs.remote, "broken.cds", r#"{"records":"not a list"}"#);
    put_remote(&dirs.remote, "team/half-written.json.tmp", r#"{"r":3}"#);
    let local_cooldowns = [
        ("a_b.com.cds", cooldown("a@b.com.json")),
        ("team/c_d.com.cds", cooldown("team/c@d.com.json")),
    ];
    let local_only = [("x.json.123.tmp", r#"{"x":1}"#), ("notes.txt~", "scratch")];
    let local_files = local_cooldowns
        .iter()
        .map(|(id, content)| (*id, content.as_str()))
        .chain(local_only);
    for (id, content) in local_files {
        let path = dirs.ws.join("auths").join(id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    std::fs::write(dirs.ws.join("auths/LOCAL.JSON"), r#"{"l":1}"#).unwrap();

    let host = fault_mirror(&dirs.remote, &dirs.ws, quick_polls()).await;
    host.bootstrap().await.unwrap();
    host.sync_workspace().await.unwrap();
    host.pull_remote().await.unwrap();

    assert_eq!(local_auth(&dirs.ws, "remote.json").unwrap(), r#"{"r":1}"#);
    assert_eq!(
        local_auth(&dirs.ws, "REMOTE-UPPER.JSON").unwrap(),
        r#"{"r":2}"#
    );
    assert_eq!(
        local_auth(&dirs.ws, "remote_row.cds").unwrap(),
        cooldown("remote.json")
    );
    assert_eq!(
        remote_auth(&dirs.remote, "LOCAL.JSON").unwrap(),
        r#"{"l":1}"#
    );
    for (id, content) in &local_cooldowns {
        assert_eq!(
            remote_auth(&dirs.remote, id).as_ref(),
            Some(content),
            "{id}"
        );
    }
    assert_eq!(local_auth(&dirs.ws, "broken.cds"), None);
    assert_eq!(quarantined_paths(&dirs.ws), ["auths/broken.cds"]);
    assert_eq!(local_auth(&dirs.ws, "team/half-written.json.tmp"), None);
    for (id, content) in local_only {
        assert_eq!(remote_auth(&dirs.remote, id), None, "{id} was pushed");
        assert_eq!(
            local_auth(&dirs.ws, id).as_deref(),
            Some(content),
            "{id} was touched"
        );
    }

    // The proxy deletes every .cds file it did not write: ordinary
    // deletions, however many, while the auths stay.
    for id in ["a_b.com.cds", "team/c_d.com.cds", "remote_row.cds"] {
        std::fs::remove_file(dirs.ws.join("auths").join(id)).unwrap();
    }
    for (id, _) in local_only {
        std::fs::remove_file(dirs.ws.join("auths").join(id)).unwrap();
    }
    host.sync_workspace().await.unwrap();
    for id in ["a_b.com.cds", "team/c_d.com.cds", "remote_row.cds"] {
        assert_eq!(remote_auth(&dirs.remote, id), None, "{id} was not deleted");
    }
    assert_eq!(
        remote_auth(&dirs.remote, "LOCAL.JSON").unwrap(),
        r#"{"l":1}"#
    );
    assert_eq!(
        remote_auth(&dirs.remote, "remote.json").unwrap(),
        r#"{"r":1}"#
    );

    let logs = captured.text();
    assert!(!logs.contains("REFUSING"), "{logs}");
    for id in ["notes.txt~", "x.json.123.tmp"] {
        let said = logs
            .lines()
            .filter(|line| line.contains("not mirrored") && line.contains(id))
            .count();
        assert_eq!(said, 1, "{id} said {said} times in:\n{logs}");
    }
}
