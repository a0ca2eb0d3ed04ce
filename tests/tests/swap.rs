//! The same host code (the embedding API) against the local plugin, where
//! the workspace is the store, and against the in-memory component, which
//! the workspace mirrors: the same results.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use storehost::capabilities::Grants;
use storehost::{CustomPlugin, Mode, Storehost, StorehostError, StorehostOptions};
use storehost_tests::guests;

async fn local(dir: &std::path::Path) -> Storehost {
    Storehost::local(dir, StorehostOptions::default())
        .await
        .unwrap()
}

async fn memory(dir: &std::path::Path) -> Storehost {
    let plugin = CustomPlugin {
        name: "memory".into(),
        wasm: guests::MEMORY.to_vec(),
        settings: Vec::new(),
        grants: Grants::minimal(),
    };
    Storehost::with_plugin(plugin, dir, StorehostOptions::default())
        .await
        .unwrap()
}

async fn auth_ids(host: &Storehost) -> Vec<String> {
    host.list_auths()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key.id)
        .collect()
}

/// A fixed script through the embedding API; returns what it observed.
async fn script(host: &Storehost) -> Vec<String> {
    let mut seen = Vec::new();
    let report = host.bootstrap().await.unwrap();
    seen.push(format!("seeded={}", report.config_seeded));
    storehost_tests::save_pushed(host, "claude-a@b.com.json", br#"{"type":"claude"}"#).await;
    storehost_tests::save_pushed(host, "team/codex.json", br#"{"type":"codex"}"#).await;
    storehost_tests::save_pushed(host, "claude-a@b.com.json", br#"{"type":"claude","n":2}"#).await;
    for (id, content) in [
        ("../x.json", &b"{}"[..]),
        ("bad.json", b"[1,2]"),
        ("worse.json", b"{"),
    ] {
        let error = host.save_auth(id, content).await.unwrap_err();
        seen.push(format!(
            "refused {id}: {}",
            matches!(error, StorehostError::Workspace(_))
        ));
    }
    let mut ids: Vec<(String, u64)> = host
        .list_auths()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key.id, e.size))
        .collect();
    ids.sort();
    seen.push(format!("list={ids:?}"));
    storehost_tests::delete_pushed(host, "team/codex.json").await;
    let ids = auth_ids(host).await;
    seen.push(format!("after delete={ids:?}"));
    std::fs::write(host.config_path(), "port: 8317\r\n").unwrap();
    host.persist_config().await.unwrap();
    assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    let config = host
        .plugin()
        .read_one(&storehost::Key::config())
        .await
        .unwrap()
        .unwrap();
    seen.push(format!(
        "config={:?}",
        String::from_utf8(config.content).unwrap()
    ));
    std::fs::write(host.config_path(), "port: [8317").unwrap();
    seen.push(format!(
        "bad config refused={}",
        host.persist_config().await.is_err()
    ));
    let file = host.auth_dir().join("claude-a@b.com.json");
    seen.push(format!(
        "workspace file={}",
        std::fs::read_to_string(&file).unwrap()
    ));
    seen.push(format!(
        "mode={:o}",
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777
    ));
    seen
}

#[tokio::test]
async fn local_and_memory_backends_give_the_same_results() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let local = local(a.path()).await;
    let memory = memory(b.path()).await;
    assert_eq!(local.mode(), Mode::Direct);
    assert_eq!(memory.mode(), Mode::Mirrored);
    let from_local = script(&local).await;
    let from_memory = script(&memory).await;
    assert_eq!(from_local, from_memory);
    assert!(
        from_local.contains(&"config=\"port: 8317\\n\"".to_string()),
        "{from_local:?}"
    );
    assert!(
        from_local.contains(&"mode=600".to_string()),
        "{from_local:?}"
    );
    assert!(from_local.contains(&"bad config refused=true".to_string()));
}

#[tokio::test]
async fn bootstrap_seeds_the_config_from_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let example = dir.path().join("config.example.yaml");
    std::fs::write(&example, "port: 8317\r\nauth-dir: x\r\n").unwrap();
    let options = StorehostOptions {
        example_config: Some(example),
        ..Default::default()
    };
    let host = Storehost::local(dir.path().join("ws"), options)
        .await
        .unwrap();
    assert!(host.bootstrap().await.unwrap().config_seeded);
    assert_eq!(
        std::fs::read_to_string(host.config_path()).unwrap(),
        "port: 8317\nauth-dir: x\n"
    );
    // A second bootstrap keeps the existing config.
    std::fs::write(host.config_path(), "port: 1\n").unwrap();
    assert!(!host.bootstrap().await.unwrap().config_seeded);
    assert_eq!(
        std::fs::read_to_string(host.config_path()).unwrap(),
        "port: 1\n"
    );
}

#[tokio::test]
async fn mirrored_bootstrap_uploads_workspace_auths_to_an_empty_backend() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("auths/team")).unwrap();
    std::fs::write(dir.path().join("auths/team/a.json"), "{\"a\":1}").unwrap();
    std::fs::write(dir.path().join("auths/broken.json"), "{not json").unwrap();
    let host = memory(dir.path()).await;
    let report = host.bootstrap().await.unwrap();
    assert_eq!(
        report.uploaded, 2,
        "the auth and the seeded config: {report:?}"
    );
    let ids = auth_ids(&host).await;
    assert_eq!(ids, ["team/a.json"], "invalid JSON is not uploaded");
    assert!(
        dir.path().join("auths/broken.json").exists(),
        "the broken file is left for the user"
    );
}
