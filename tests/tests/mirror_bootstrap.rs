//! Bootstrap cases of the mirror, with the local backend on a second
//! directory as the remote.

use std::path::Path;
use storehost::{Storehost, StorehostError, StorehostOptions};
use storehost_tests::{auth_files, local_auth, remote_auth};

async fn mirror(remote: &Path, workspace: &Path) -> Storehost {
    Storehost::local_remote(remote, workspace, StorehostOptions::default())
        .await
        .unwrap()
}

fn write(dir: &Path, relative: &str, content: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let (remote, workspace) = (root.path().join("remote"), root.path().join("ws"));
    (root, remote, workspace)
}

#[tokio::test]
async fn a_remote_with_documents_fills_an_empty_workspace() {
    let (_root, remote, ws) = dirs();
    write(&remote, "config/config.yaml", "port: 1\n");
    write(&remote, "auths/a.json", "{\"a\":1}");
    write(&remote, "auths/team/b.json", "{\"b\":2}");
    let host = mirror(&remote, &ws).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.pulled, 3, "{report:?}");
    assert!(!report.config_seeded);
    assert_eq!(
        std::fs::read_to_string(ws.join("config/config.yaml")).unwrap(),
        "port: 1\n"
    );
    assert_eq!(auth_files(&ws), ["a.json", "team/b.json"]);
    assert!(
        report.lineage.is_some(),
        "a lineage is written to a remote without one"
    );
}

#[tokio::test]
async fn an_empty_remote_receives_everything_and_the_workspace_config() {
    let (_root, remote, ws) = dirs();
    write(&ws, "config/config.yaml", "port: 2\n");
    write(&ws, "auths/a.json", "{\"a\":1}");
    write(&ws, "auths/nested/deep/c.json", "{\"c\":3}");
    let host = mirror(&remote, &ws).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.uploaded, 3, "{report:?}");
    assert_eq!(host.outbox_len().await, 0);
    assert_eq!(auth_files(&remote), ["a.json", "nested/deep/c.json"]);
    assert_eq!(
        std::fs::read_to_string(remote.join("config/config.yaml")).unwrap(),
        "port: 2\n"
    );
}

#[tokio::test]
async fn an_empty_remote_and_workspace_get_the_example_config() {
    let (root, remote, ws) = dirs();
    let example = root.path().join("example.yaml");
    std::fs::write(&example, "port: 8317\n").unwrap();
    let options = StorehostOptions {
        example_config: Some(example),
        ..Default::default()
    };
    let host = Storehost::local_remote(&remote, &ws, options)
        .await
        .unwrap();
    assert!(host.bootstrap().await.unwrap().config_seeded);
    assert_eq!(
        std::fs::read_to_string(remote.join("config/config.yaml")).unwrap(),
        "port: 8317\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("config/config.yaml")).unwrap(),
        "port: 8317\n"
    );
}

#[tokio::test]
async fn never_synced_sides_merge_and_differences_keep_a_conflict_copy() {
    let (_root, remote, ws) = dirs();
    write(&remote, "auths/same.json", "{\"s\":1}");
    write(&remote, "auths/differs.json", "{\"side\":\"remote\"}");
    write(&remote, "auths/remote-only.json", "{}");
    write(&ws, "auths/same.json", "{\"s\":1}");
    write(&ws, "auths/differs.json", "{\"side\":\"local\"}");
    write(&ws, "auths/local-only.json", "{\"l\":1}");
    let host = mirror(&remote, &ws).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_eq!(
        local_auth(&ws, "differs.json").unwrap(),
        "{\"side\":\"remote\"}",
        "remote wins"
    );
    let copy = ws.join(&report.conflicts[0]);
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "{\"side\":\"local\"}",
        "the local copy is kept"
    );
    assert!(report.conflicts[0].starts_with("auths/differs.json.conflict-"));
    assert_eq!(
        remote_auth(&remote, "local-only.json").unwrap(),
        "{\"l\":1}"
    );
    assert_eq!(local_auth(&ws, "remote-only.json").unwrap(), "{}");
    let remote_ids = auth_files(&remote);
    assert!(
        !remote_ids.iter().any(|id| id.contains("conflict")),
        "conflict copies stay local: {remote_ids:?}"
    );
}

#[tokio::test]
async fn after_a_sync_changes_flow_three_ways() {
    let (_root, remote, ws) = dirs();
    for id in [
        "local-edit",
        "remote-edit",
        "both-edit",
        "local-delete",
        "remote-delete",
        "quiet",
    ] {
        write(&ws, &format!("auths/{id}.json"), "{\"v\":0}");
    }
    mirror(&remote, &ws).await.bootstrap().await.unwrap();

    write(&ws, "auths/local-edit.json", "{\"v\":\"local\"}");
    write(&remote, "auths/remote-edit.json", "{\"v\":\"remote\"}");
    write(&ws, "auths/both-edit.json", "{\"v\":\"local\"}");
    write(&remote, "auths/both-edit.json", "{\"v\":\"remote\"}");
    std::fs::remove_file(ws.join("auths/local-delete.json")).unwrap();
    std::fs::remove_file(remote.join("auths/remote-delete.json")).unwrap();

    let report = mirror(&remote, &ws).await.bootstrap().await.unwrap();
    assert_eq!(
        remote_auth(&remote, "local-edit.json").unwrap(),
        "{\"v\":\"local\"}",
        "pushed"
    );
    assert_eq!(
        local_auth(&ws, "remote-edit.json").unwrap(),
        "{\"v\":\"remote\"}",
        "pulled"
    );
    assert_eq!(
        local_auth(&ws, "both-edit.json").unwrap(),
        "{\"v\":\"remote\"}",
        "remote wins"
    );
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert!(
        remote_auth(&remote, "local-delete.json").is_none(),
        "a single local delete propagates"
    );
    assert!(
        local_auth(&ws, "remote-delete.json").is_none(),
        "a remote delete propagates"
    );
    assert_eq!(local_auth(&ws, "quiet.json").unwrap(), "{\"v\":0}");
    assert_eq!(remote_auth(&remote, "quiet.json").unwrap(), "{\"v\":0}");
}

#[tokio::test]
async fn a_workspace_is_never_reconciled_against_another_remote() {
    let root = tempfile::tempdir().unwrap();
    let (remote_a, remote_b, ws) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("ws"),
    );
    write(&ws, "auths/x.json", "{}");
    mirror(&remote_a, &ws).await.bootstrap().await.unwrap();
    mirror(&remote_b, &root.path().join("other"))
        .await
        .bootstrap()
        .await
        .unwrap();
    let error = mirror(&remote_b, &ws).await.bootstrap().await.unwrap_err();
    assert!(
        matches!(error, StorehostError::LineageMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("another remote"), "{error}");
    assert_eq!(
        local_auth(&ws, "x.json").unwrap(),
        "{}",
        "the workspace is untouched"
    );
    assert!(
        remote_auth(&remote_b, "x.json").is_none(),
        "nothing was uploaded to the other remote"
    );
}

#[tokio::test]
async fn invalid_local_files_are_not_pushed_and_the_remote_keeps_its_version() {
    let (_root, remote, ws) = dirs();
    write(&ws, "auths/a.json", "{\"good\":true}");
    write(&ws, "config/config.yaml", "port: 1\n");
    mirror(&remote, &ws).await.bootstrap().await.unwrap();
    write(&ws, "auths/a.json", "{\"truncated\":");
    write(&ws, "config/config.yaml", "port: [1\n");
    mirror(&remote, &ws).await.bootstrap().await.unwrap();
    assert_eq!(remote_auth(&remote, "a.json").unwrap(), "{\"good\":true}");
    assert_eq!(
        std::fs::read_to_string(remote.join("config/config.yaml")).unwrap(),
        "port: 1\n"
    );
    assert_eq!(
        local_auth(&ws, "a.json").unwrap(),
        "{\"truncated\":",
        "the local file is left for the user"
    );
}

#[tokio::test]
async fn a_vanished_auth_folder_deletes_nothing_remotely_at_bootstrap() {
    let (_root, remote, ws) = dirs();
    for i in 0..5 {
        write(&ws, &format!("auths/{i}.json"), "{}");
    }
    mirror(&remote, &ws).await.bootstrap().await.unwrap();
    std::fs::remove_dir_all(ws.join("auths")).unwrap();
    mirror(&remote, &ws).await.bootstrap().await.unwrap();
    assert_eq!(auth_files(&remote).len(), 5, "nothing deleted remotely");
    assert_eq!(
        auth_files(&ws).len(),
        5,
        "the workspace is restored from the remote"
    );
}

async fn mirror_migrating_from(remote: &Path, workspace: &Path, previous: &Path) -> Storehost {
    let mut options = StorehostOptions::default();
    options.mirror.migrate_from = Some(previous.to_path_buf());
    Storehost::local_remote(remote, workspace, options)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_empty_remote_takes_the_previous_local_store_which_is_left_alone() {
    let (root, remote, ws) = dirs();
    let previous = root.path().join("localstore");
    write(&previous, "config/config.yaml", "port: 7\n");
    write(&previous, "auths/a.json", "{\"a\":1}");
    write(&previous, "auths/team/b.json", "{\"b\":2}");
    write(
        &previous,
        "auths/a.json.conflict-1700000000000",
        "{\"a\":0}",
    );
    write(&ws, "auths/team/b.json", "{\"b\":\"workspace\"}");
    let host = mirror_migrating_from(&remote, &ws, &previous).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.migrated, 2, "a.json and the config: {report:?}");
    assert_eq!(auth_files(&remote), ["a.json", "team/b.json"]);
    assert_eq!(
        remote_auth(&remote, "team/b.json").unwrap(),
        "{\"b\":\"workspace\"}",
        "what the workspace has wins over the old store"
    );
    assert_eq!(
        std::fs::read_to_string(remote.join("config/config.yaml")).unwrap(),
        "port: 7\n"
    );
    assert_eq!(
        auth_files(&previous).len(),
        3,
        "the old store is not touched"
    );
}

#[tokio::test]
async fn a_remote_with_auths_ignores_the_previous_local_store() {
    let (root, remote, ws) = dirs();
    let previous = root.path().join("localstore");
    write(&previous, "auths/stale.json", "{\"old\":true}");
    write(&remote, "auths/current.json", "{\"new\":true}");
    let host = mirror_migrating_from(&remote, &ws, &previous).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(report.migrated, 0, "{report:?}");
    assert_eq!(auth_files(&ws), ["current.json"]);
    assert_eq!(auth_files(&remote), ["current.json"]);
}
