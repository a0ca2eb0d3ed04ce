//! The mirror tested the way it is used, on any backend: several hosts on
//! one backend, the proxy writing plain files into each workspace at once,
//! the backend cut off mid-call, hosts starting together. Each backend's
//! test file runs these against its real server.

use crate::auth_files;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use storehost::Storehost;
use storehost::runtime::Plugin;

/// A backend the scenarios can run on.
pub trait Backend {
    /// A host mirroring `workspace` to the backend (polling quickly).
    fn host(&self, workspace: &Path) -> impl Future<Output = Storehost>;
    /// A fresh plugin on the backend, to see what it holds.
    fn reader(&self, scratch: &Path) -> Plugin;
    /// False for a server that checks a write's condition and then writes
    /// without holding the object (s3s-fs): a writer racing in between can
    /// displace an acknowledged write unseen. The host still keeps the
    /// displaced version, in the trash, and the scenario accepts it there.
    fn atomic_conditional_writes(&self) -> bool {
        true
    }
    /// Deletes every auth on the backend as another program would; by
    /// default through a fresh plugin instance.
    fn wipe(&self, scratch: &Path) -> impl Future<Output = ()> {
        async move {
            let plugin = self.reader(scratch);
            plugin.start().await.unwrap();
            let removes: Vec<storehost::Change> = plugin
                .pull(None)
                .await
                .unwrap()
                .documents
                .into_iter()
                .filter(|d| d.entry.key.kind == storehost::Kind::Auth)
                .map(|d| storehost::Change::Remove {
                    key: d.entry.key,
                    precondition: storehost::Precondition::Any,
                })
                .collect();
            plugin.apply(removes, "wipe").await.unwrap();
        }
    }
}

/// A backend whose server can be stopped (cutting calls in flight) and
/// started again.
pub trait Outage: Backend {
    fn stop(&mut self);
    fn resume(&mut self);
}

/// The auth documents on the backend, as JSON by id.
pub async fn backend_auths(backend: &impl Backend, scratch: &Path) -> BTreeMap<String, String> {
    let plugin = backend.reader(scratch);
    plugin.start().await.unwrap();
    let snapshot = plugin.pull(None).await.unwrap();
    snapshot
        .documents
        .into_iter()
        .filter(|d| d.entry.key.kind == storehost::Kind::Auth)
        .map(|d| (d.entry.key.id.clone(), canonical(&d.content)))
        .collect()
}

/// JSON with sorted keys and no spaces, so backends that store their own
/// form (PostgreSQL's JSONB) compare equal.
fn canonical(content: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(content)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| String::from_utf8_lossy(content).into_owned())
}

/// Writes a file as the proxy does: a temp file, then a rename.
pub fn proxy_write(workspace: &Path, id: &str, content: &str) {
    let path = workspace.join("auths").join(id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let temp = path.with_extension("json.tmp-proxy");
    std::fs::write(&temp, content).unwrap();
    std::fs::rename(&temp, &path).unwrap();
}

/// Rewrites a file in place as the Go file store does (`O_TRUNC`, no temp
/// file), in two writes with a pause between, so a host may meet it
/// truncated or half written.
pub fn proxy_write_in_place(workspace: &Path, id: &str, content: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = workspace.join("auths").join(id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let (head, tail) = content.as_bytes().split_at(content.len() / 2);
    file.write_all(head).unwrap();
    std::thread::sleep(Duration::from_micros(200));
    file.write_all(tail).unwrap();
}

/// Both ways the proxy writes, taking turns.
fn proxy_write_either(workspace: &Path, id: &str, content: &str, in_place: bool) {
    match in_place {
        true => proxy_write_in_place(workspace, id, content),
        false => proxy_write(workspace, id, content),
    }
}

/// The documents in a workspace (no conflict copies), as JSON by id.
pub fn workspace_auths(workspace: &Path) -> BTreeMap<String, String> {
    auth_files(workspace)
        .into_iter()
        .filter(|id| !id.contains(".conflict-") && !id.contains(".tmp-proxy"))
        .map(|id| {
            let content = std::fs::read(workspace.join("auths").join(&id)).unwrap_or_default();
            (id, canonical(&content))
        })
        .collect()
}

/// Conflict copies of `id` in a workspace, as JSON.
fn conflict_copies(workspace: &Path, id: &str) -> Vec<String> {
    auth_files(workspace)
        .into_iter()
        .filter(|name| name.starts_with(&format!("{id}.conflict-")))
        .map(|name| canonical(&std::fs::read(workspace.join("auths").join(name)).unwrap()))
        .collect()
}

/// Versions of `id` kept in a workspace's trash, as JSON.
fn trashed(workspace: &Path, id: &str) -> Vec<String> {
    let dir = storehost::mirror::Workspace::new(workspace).trash_dir();
    storehost::mirror::trash::list(&storehost::mirror::Workspace::new(workspace))
        .unwrap()
        .into_iter()
        .filter(|entry| entry.path == format!("auths/{id}"))
        .filter_map(|entry| std::fs::read(dir.join(entry.file)).ok())
        .map(|content| canonical(&content))
        .collect()
}

fn trash_reasons(workspace: &Path) -> Vec<String> {
    storehost::mirror::trash::list(&storehost::mirror::Workspace::new(workspace))
        .unwrap()
        .into_iter()
        .map(|entry| format!("{}: {}", entry.path, entry.reason))
        .collect()
}

const DISTINCT: usize = 300;
const SHARED: usize = 20;

fn distinct_content(by: &str, i: usize) -> String {
    format!(r#"{{"by":"{by}","i":{i}}}"#)
}

fn shared_content(by: &str, k: usize) -> String {
    format!(r#"{{"by":"{by}","shared":{k}}}"#)
}

/// Two hosts on one backend, the proxy beside each writing 300 files of
/// its own and, at the same instant as the other, the same 20 shared
/// files. Nothing is lost: every file is on the backend and in both
/// workspaces, every shared write is on the backend or in a conflict copy,
/// and nothing was deleted.
pub async fn two_hosts_writing_at_once(backend: &impl Backend) {
    let root = tempfile::tempdir().unwrap();
    let workspaces = [root.path().join("a"), root.path().join("b")];
    let a = backend.host(&workspaces[0]).await;
    a.bootstrap().await.unwrap();
    let b = backend.host(&workspaces[1]).await;
    b.bootstrap().await.unwrap();
    let syncs = [
        a.start_sync().await.unwrap().unwrap(),
        b.start_sync().await.unwrap().unwrap(),
    ];
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .zip(workspaces.clone())
        .map(|(by, workspace)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || proxy_writes(by, &workspace, &barrier))
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let scratch = root.path().join("reader");
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for by in ["a", "b"] {
        expected.extend((0..DISTINCT).map(|i| format!("{by}-{i:03}.json")));
    }
    expected.extend((0..SHARED).map(|k| format!("shared-{k:02}.json")));
    let in_step = |workspace: &PathBuf, remote: &BTreeMap<String, String>| {
        workspace_auths(workspace) == *remote
    };
    let mut remote = BTreeMap::new();
    let started = std::time::Instant::now();
    loop {
        let done = remote.keys().cloned().collect::<BTreeSet<_>>() == expected
            && workspaces.iter().all(|w| in_step(w, &remote));
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the hosts did not converge: backend has {} of {}; differences: {:?}",
            remote.len(),
            expected.len(),
            differences(&remote, &workspaces)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        remote = backend_auths(backend, &scratch).await;
    }
    for by in ["a", "b"] {
        for i in 0..DISTINCT {
            let id = format!("{by}-{i:03}.json");
            assert_eq!(
                remote[&id],
                canonical(distinct_content(by, i).as_bytes()),
                "{id}"
            );
        }
    }
    for k in 0..SHARED {
        let id = format!("shared-{k:02}.json");
        let mut kept: Vec<String> = vec![remote[&id].clone()];
        for workspace in &workspaces {
            kept.extend(conflict_copies(workspace, &id));
            if !backend.atomic_conditional_writes() {
                kept.extend(trashed(workspace, &id));
            }
        }
        for by in ["a", "b"] {
            let write = canonical(shared_content(by, k).as_bytes());
            assert!(
                kept.contains(&write),
                "{by}'s write of {id} is neither on the backend nor in a conflict copy: {kept:?}"
            );
        }
    }
    for workspace in &workspaces {
        let deleted: Vec<String> = trash_reasons(workspace)
            .into_iter()
            .filter(|r| r.contains("deleted"))
            .collect();
        assert!(deleted.is_empty(), "nobody deleted anything: {deleted:?}");
    }
    for sync in syncs {
        assert_eq!(sync.shutdown().await, 0);
    }
    for workspace in &workspaces {
        every_kept_file_is_listed(workspace);
    }
}

/// Once its host has stopped, every file in a workspace's trash directory
/// has its trash entry, so `restore` can bring it back.
pub fn every_kept_file_is_listed(workspace: &Path) {
    let workspace = storehost::mirror::Workspace::new(workspace);
    let unlisted = storehost::mirror::trash::unlisted(&workspace).unwrap();
    assert!(unlisted.is_empty(), "kept but not listed: {unlisted:?}");
}

/// Documents where a workspace and the backend differ, with both sides.
fn differences(remote: &BTreeMap<String, String>, workspaces: &[PathBuf]) -> Vec<String> {
    let mut found = Vec::new();
    for workspace in workspaces {
        let local = workspace_auths(workspace);
        for id in remote.keys().chain(local.keys()).collect::<BTreeSet<_>>() {
            if remote.get(id) != local.get(id) {
                found.push(format!(
                    "{}: {id}: backend {:?}, workspace {:?}",
                    workspace.display(),
                    remote.get(id),
                    local.get(id)
                ));
            }
        }
    }
    found.truncate(6);
    found
}

/// One proxy: its own files, and a shared one after every 15th, in step
/// with the other proxy so both write it at once; by rename and in place,
/// in turn.
fn proxy_writes(by: &str, workspace: &Path, barrier: &Barrier) {
    for i in 0..DISTINCT {
        proxy_write_either(
            workspace,
            &format!("{by}-{i:03}.json"),
            &distinct_content(by, i),
            i % 2 == 1,
        );
        if i % (DISTINCT / SHARED) == 0 {
            let k = i / (DISTINCT / SHARED);
            barrier.wait();
            proxy_write_either(
                workspace,
                &format!("shared-{k:02}.json"),
                &shared_content(by, k),
                by == "a",
            );
        }
    }
}

/// The proxy rewrites 20 files over and over (by rename and in place, in
/// turn) while the backend is cut off mid-call and comes back: every file
/// ends on the backend with its last content, and a single writer never
/// meets itself as a conflict.
pub async fn backend_cut_off_mid_push(backend: &mut impl Outage) {
    let root = tempfile::tempdir().unwrap();
    let workspace = root.path().join("ws");
    let host = backend.host(&workspace).await;
    host.bootstrap().await.unwrap();
    let sync = host.start_sync().await.unwrap().unwrap();
    let mut last = BTreeMap::new();
    for round in 0..6 {
        for i in 0..20 {
            let id = format!("rw-{i:02}.json");
            let content = format!(r#"{{"round":{round},"i":{i}}}"#);
            proxy_write_either(&workspace, &id, &content, i % 2 == 1);
            last.insert(id, canonical(content.as_bytes()));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        match round {
            1 | 3 => backend.stop(),
            2 | 4 => backend.resume(),
            _ => {}
        }
    }
    let scratch = root.path().join("reader");
    let started = std::time::Instant::now();
    loop {
        let remote = backend_auths(backend, &scratch).await;
        if remote == last && host.outbox_len().await == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the backend did not get the last writes: {} of {} right, outbox {}",
            last.iter()
                .filter(|(id, c)| remote.get(*id) == Some(c))
                .count(),
            last.len(),
            host.outbox_len().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(workspace_auths(&workspace), last);
    let copies: Vec<String> = auth_files(&workspace)
        .into_iter()
        .filter(|id| id.contains(".conflict-"))
        .collect();
    assert!(copies.is_empty(), "one writer made conflicts: {copies:?}");
    assert_eq!(sync.shutdown().await, 0);
    every_kept_file_is_listed(&workspace);
}

/// Three hosts start together on an empty backend; all bootstrap, share
/// one lineage, and start again cleanly.
pub async fn three_hosts_start_together(backend: &impl Backend) {
    let root = tempfile::tempdir().unwrap();
    let workspaces: Vec<PathBuf> = (0..3).map(|i| root.path().join(format!("h{i}"))).collect();
    for (i, workspace) in workspaces.iter().enumerate() {
        proxy_write(
            workspace,
            &format!("own-{i}.json"),
            &format!(r#"{{"host":{i}}}"#),
        );
    }
    let (h0, h1, h2) = tokio::join!(
        backend.host(&workspaces[0]),
        backend.host(&workspaces[1]),
        backend.host(&workspaces[2])
    );
    let (r0, r1, r2) = tokio::join!(h0.bootstrap(), h1.bootstrap(), h2.bootstrap());
    let lineages: Vec<String> = [r0, r1, r2]
        .into_iter()
        .map(|r| r.unwrap().lineage.unwrap())
        .collect();
    assert!(
        lineages.iter().all(|l| l == &lineages[0]),
        "one lineage: {lineages:?}"
    );
    for host in [&h0, &h1, &h2] {
        assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    }
    drop((h0, h1, h2));
    for workspace in &workspaces {
        let host = backend.host(workspace).await;
        let report = host
            .bootstrap()
            .await
            .unwrap_or_else(|e| panic!("{} restarts cleanly: {e}", workspace.display()));
        assert_eq!(report.lineage.as_ref(), Some(&lineages[0]));
        assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    }
    let remote = backend_auths(backend, &root.path().join("reader")).await;
    let expected: BTreeSet<String> = (0..3).map(|i| format!("own-{i}.json")).collect();
    assert_eq!(remote.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for workspace in &workspaces {
        let ids: BTreeSet<String> = workspace_auths(workspace).into_keys().collect();
        assert_eq!(ids, expected, "{}", workspace.display());
    }
}

/// Waits until the backend holds exactly `expected`.
async fn backend_converges(
    backend: &impl Backend,
    scratch: &Path,
    expected: &BTreeMap<String, String>,
    what: &str,
) {
    let started = std::time::Instant::now();
    loop {
        let remote = backend_auths(backend, scratch).await;
        if remote == *expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: the backend has {} of {} documents",
            remote.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Someone deletes every auth on the backend, while the host runs and
/// again while it is stopped: the workspace keeps every file, the host
/// writes them back, nothing goes to the trash. A single deletion still
/// goes through.
pub async fn backend_wiped(backend: &impl Backend) {
    let root = tempfile::tempdir().unwrap();
    let (workspace, scratch) = (root.path().join("ws"), root.path().join("reader"));
    let host = backend.host(&workspace).await;
    host.bootstrap().await.unwrap();
    let sync = host.start_sync().await.unwrap().unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..20 {
        let (id, content) = (format!("wipe-{i:02}.json"), format!(r#"{{"i":{i}}}"#));
        proxy_write(&workspace, &id, &content);
        expected.insert(id, canonical(content.as_bytes()));
    }
    backend_converges(backend, &scratch, &expected, "first push").await;
    backend.wipe(&scratch).await;
    backend_converges(backend, &scratch, &expected, "written back after a wipe").await;
    assert_eq!(workspace_auths(&workspace), expected);
    assert!(trash_reasons(&workspace).is_empty(), "nothing trashed");
    // One deletion is an ordinary one.
    let plugin = backend.reader(&scratch);
    plugin.start().await.unwrap();
    plugin
        .apply(
            vec![storehost::Change::Remove {
                key: storehost::Key::auth("wipe-00.json"),
                precondition: storehost::Precondition::Any,
            }],
            "delete one",
        )
        .await
        .unwrap();
    expected.remove("wipe-00.json");
    let started = std::time::Instant::now();
    // The file leaves the workspace (into the trash directory) just before
    // the ledger records the trash entry: wait for both.
    while workspace_auths(&workspace) != expected || trash_reasons(&workspace).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a single remote deletion did not reach the workspace"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        trash_reasons(&workspace),
        ["auths/wipe-00.json: deleted on the backend"]
    );
    assert_eq!(sync.shutdown().await, 0);
    drop(host);
    // Wiped while the host is stopped: the bootstrap refuses it too.
    backend.wipe(&scratch).await;
    let host = backend.host(&workspace).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.deleted_locally, 0, "{report:?}");
    assert_eq!(workspace_auths(&workspace), expected);
    assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    backend_converges(
        backend,
        &scratch,
        &expected,
        "written back after a wipe while stopped",
    )
    .await;
}

/// A cooldown file as the proxy writes it: `(auth id, model, second)`
/// per record, `second` its `updated_at` within a fixed minute.
pub fn cooldown_file(records: &[(&str, &str, u32)]) -> String {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(auth_id, model, second)| cooldown_record(auth_id, model, *second))
        .collect();
    let file = serde_json::json!({
        "version": 1,
        "updated_at": "2026-12-05T03:00:59Z",
        "records": records,
    });
    format!("{}\n", serde_json::to_string_pretty(&file).unwrap())
}

/// One record as the proxy writes it (`model` left out when empty).
pub fn cooldown_record(auth_id: &str, model: &str, second: u32) -> serde_json::Value {
    let mut record = serde_json::json!({
        "auth_id": auth_id,
        "status": "cooling",
        "next_retry_after": "2026-12-05T04:00:00Z",
        "reason": "quota",
        "quota": {"exceeded": true, "next_recover_at": "2026-12-05T04:00:00Z"},
        "updated_at": format!("2026-12-05T03:00:{second:02}Z"),
    });
    if !model.is_empty() {
        record["model"] = model.into();
    }
    record
}

/// The records of a cooldown file, canonical and sorted (a backend may
/// give back its own file around the same records); `None` if absent.
pub fn cooldown_records(workspace: &Path, id: &str) -> Option<Vec<String>> {
    let content = std::fs::read(workspace.join("auths").join(id)).ok()?;
    Some(records_of(&content))
}

/// [`cooldown_records`] of file content.
pub fn records_of(content: &[u8]) -> Vec<String> {
    let file: serde_json::Value = serde_json::from_slice(content).unwrap();
    let mut records: Vec<String> = file["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    records.sort();
    records
}

/// The proxy's cooldown state (`*.cds` beside the auths) written in one
/// host's workspace reaches a second host on the same backend, and so do
/// its next save (a record fewer) and the deletion of another file; the
/// backend holds them as cooldown documents, never as auths.
pub async fn cooldown_state_reaches_a_second_host(backend: &impl Backend) {
    let root = tempfile::tempdir().unwrap();
    let (a_ws, b_ws) = (root.path().join("a"), root.path().join("b"));
    let a = backend.host(&a_ws).await;
    a.bootstrap().await.unwrap();
    let b = backend.host(&b_ws).await;
    b.bootstrap().await.unwrap();
    let team = "team/a_b.com.cds";
    let config_auth = "claude_apikey_3f2a.cds";
    proxy_write(&a_ws, "team/a@b.com.json", r#"{"type":"claude"}"#);
    let first = cooldown_file(&[
        ("team/a@b.com.json", "m1", 1),
        ("team/a@b.com.json", "m2", 2),
    ]);
    proxy_write(&a_ws, team, &first);
    let other = cooldown_file(&[("claude:apikey:3f2a", "", 3)]);
    proxy_write(&a_ws, config_auth, &other);
    a.sync_workspace().await.unwrap();
    b.pull_remote().await.unwrap();
    assert_eq!(
        cooldown_records(&b_ws, team),
        Some(records_of(first.as_bytes()))
    );
    assert_eq!(
        cooldown_records(&b_ws, config_auth),
        Some(records_of(other.as_bytes()))
    );

    let reader = backend.reader(&root.path().join("reader"));
    reader.start().await.unwrap();
    let held = reader.pull(None).await.unwrap().documents;
    let cooldowns: BTreeSet<&str> = held
        .iter()
        .filter(|d| d.entry.key.kind == storehost::Kind::Cooldown)
        .map(|d| d.entry.key.id.as_str())
        .collect();
    assert_eq!(cooldowns, BTreeSet::from([config_auth, team]));
    let auths: Vec<&str> = held
        .iter()
        .filter(|d| d.entry.key.kind == storehost::Kind::Auth)
        .map(|d| d.entry.key.id.as_str())
        .collect();
    assert_eq!(auths, ["team/a@b.com.json"]);

    let second = cooldown_file(&[("team/a@b.com.json", "m1", 4)]);
    proxy_write(&a_ws, team, &second);
    std::fs::remove_file(a_ws.join("auths").join(config_auth)).unwrap();
    a.sync_workspace().await.unwrap();
    b.pull_remote().await.unwrap();
    assert_eq!(
        cooldown_records(&b_ws, team),
        Some(records_of(second.as_bytes()))
    );
    assert_eq!(cooldown_records(&b_ws, config_auth), None);
    assert_eq!(
        cooldown_records(&a_ws, team),
        Some(records_of(second.as_bytes()))
    );
}

/// The proxy turns `a.json` into a directory of documents (`a.json/b.json`)
/// in one host's workspace, and back again: each time the backend and a
/// second host follow, and the second host keeps the versions it replaced
/// in its trash.
pub async fn a_document_becomes_a_directory_of_documents_and_back(backend: &impl Backend) {
    let root = tempfile::tempdir().unwrap();
    let (a_ws, b_ws) = (root.path().join("a"), root.path().join("b"));
    let scratch = root.path().join("reader");
    let a = backend.host(&a_ws).await;
    a.bootstrap().await.unwrap();
    let b = backend.host(&b_ws).await;
    b.bootstrap().await.unwrap();
    let both_follow = |expected: &[(&str, &str)], step: &'static str| {
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(id, content)| (id.to_string(), canonical(content.as_bytes())))
            .collect();
        let (a, b, scratch) = (&a, &b, &scratch);
        let b_ws = &b_ws;
        async move {
            a.sync_workspace().await.unwrap();
            assert_eq!(backend_auths(backend, scratch).await, expected, "{step}");
            b.pull_remote().await.unwrap();
            assert_eq!(workspace_auths(b_ws), expected, "{step}");
        }
    };
    let auths = a_ws.join("auths");

    proxy_write(&a_ws, "a.json", r#"{"v":1}"#);
    both_follow(&[("a.json", r#"{"v":1}"#)], "a document").await;

    std::fs::remove_file(auths.join("a.json")).unwrap();
    proxy_write(&a_ws, "a.json/b.json", r#"{"v":2}"#);
    both_follow(&[("a.json/b.json", r#"{"v":2}"#)], "now a directory").await;

    std::fs::remove_file(auths.join("a.json/b.json")).unwrap();
    std::fs::remove_dir(auths.join("a.json")).unwrap();
    proxy_write(&a_ws, "a.json", r#"{"v":3}"#);
    both_follow(&[("a.json", r#"{"v":3}"#)], "a document again").await;

    assert_eq!(trashed(&b_ws, "a.json"), [canonical(br#"{"v":1}"#)]);
    assert_eq!(trashed(&b_ws, "a.json/b.json"), [canonical(br#"{"v":2}"#)]);
}
