//! The contract is frozen per version: a released `wit/<version>/` never
//! changes, the host speaks the newest, and a component built against an
//! older version keeps loading and passing the conformance kit.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use storehost::capabilities::Grants;
use storehost::runtime::bindings::{BINDINGS_VERSION, CONTRACT_VERSION};
use storehost::runtime::{BackendError, Limits};
use storehost::{Change, Key, Precondition};
use storehost_tests::{conformance, load};

/// Every released version and the sha256 of its folder (file names and
/// contents, sorted by name). Never edit an entry: add a version.
const FROZEN: &[(&str, &str)] = &[
    (
        "0.1.0",
        "f4da811e9ac0fdf83cae393e8643d9165ce09ed3e9da09d6d0321df056210757",
    ),
    (
        "0.2.0",
        "ec5fb59cc0793586ee8bcbca094d8cc9ebfdcfabf4bb7288571fc8130038d6a8",
    ),
];

const FIXTURE_0_1_0: &[u8] = include_bytes!("../fixtures/contract-0.1.0/memory.wasm");

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// One file: its content's hash; several: the hash of name and content
/// pairs in name order.
fn folder_hash(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    if let [only] = files.as_slice() {
        return hex::encode(Sha256::digest(std::fs::read(only).unwrap()));
    }
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.file_name().unwrap().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file).unwrap());
    }
    hex::encode(hasher.finalize())
}

#[test]
fn a_released_contract_version_never_changes() {
    for (version, expected) in FROZEN {
        let actual = folder_hash(&wit_dir().join(version));
        assert_eq!(
            &actual, expected,
            "wit/{version}/ changed. A released contract is frozen: put the change in a new \
             version folder (and an adapter in the host), never in {version}"
        );
    }
}

#[test]
fn every_contract_folder_is_released_and_the_host_speaks_the_newest() {
    let mut folders: Vec<String> = std::fs::read_dir(wit_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let released: Vec<&str> = FROZEN.iter().map(|(version, _)| *version).collect();
    assert_eq!(
        folders, released,
        "each folder under wit/ is listed in FROZEN"
    );
    assert_eq!(CONTRACT_VERSION, *released.last().unwrap());
    assert_eq!(
        BINDINGS_VERSION, CONTRACT_VERSION,
        "the host's bindings are generated from the newest contract"
    );
}

#[tokio::test]
async fn a_component_built_against_0_1_0_loads_and_passes_the_conformance_kit() {
    let plugin = load(
        "memory-0.1.0",
        FIXTURE_0_1_0,
        Grants::minimal(),
        Limits::default(),
    );
    let info = plugin.info().await.unwrap();
    assert_eq!(info.name, "memory");
    conformance::run_single_instance(&plugin)
        .await
        .assert_all_passed();
}

#[test]
fn inspect_reads_the_fixture_as_contract_0_1_0() {
    let runtime = storehost::runtime::Runtime::shared().unwrap();
    let report =
        storehost::runtime::inspect::inspect(&runtime, "memory.wasm", FIXTURE_0_1_0).unwrap();
    let text = report.to_string();
    assert!(text.contains("storehost:plugin@0.1.0"), "{text}");
    assert!(text.contains("loadable: yes"), "{text}");
}

/// A 0.1.0 component has no cooldown documents: the host never hands it
/// one (a read answers absent in place, a write is refused before the
/// component sees it), while a current one stores them.
#[tokio::test]
async fn a_0_1_0_component_is_given_no_cooldown_documents() {
    let old = load(
        "memory-0.1.0",
        FIXTURE_0_1_0,
        Grants::minimal(),
        Limits::default(),
    );
    assert_eq!(old.contract_version(), "0.1.0");
    assert!(!old.has_cooldown());
    let cooldown = Key::cooldown("team/a_b.com.cds");
    let put = |key: &Key| Change::Put {
        key: key.clone(),
        content: br#"{"records":[]}"#.to_vec(),
        precondition: Precondition::Any,
    };
    let refused = old.apply(vec![put(&cooldown)], "m").await.unwrap_err();
    assert!(
        matches!(refused.backend(), Some(BackendError::Invalid(m)) if m.contains("0.1.0")),
        "{refused}"
    );
    old.apply(vec![put(&Key::auth("a.json"))], "m")
        .await
        .unwrap();
    let answers = old
        .read(&[cooldown.clone(), Key::auth("a.json"), Key::auth("b.json")])
        .await
        .unwrap();
    let found: Vec<bool> = answers.iter().map(Option::is_some).collect();
    assert_eq!(found, [false, true, false]);

    let current = storehost_tests::memory_plugin();
    assert_eq!(current.contract_version(), CONTRACT_VERSION);
    assert!(current.has_cooldown());
    current.apply(vec![put(&cooldown)], "m").await.unwrap();
    let back = current.read_one(&cooldown).await.unwrap().unwrap();
    assert_eq!(back.entry.key, cooldown);
}

/// A mirror on a 0.1.0 plugin keeps cooldown state in the workspace only,
/// and says so once at startup.
#[tokio::test(flavor = "current_thread")]
async fn a_mirror_on_a_0_1_0_plugin_keeps_cooldown_state_local_and_says_so() {
    let (_guard, captured) = storehost_tests::logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("auths")).unwrap();
    std::fs::write(ws.join("auths/a.json"), r#"{"a":1}"#).unwrap();
    let cds =
        r#"{"version":1,"records":[{"auth_id":"a.json","updated_at":"2026-12-05T03:00:00Z"}]}"#;
    std::fs::write(ws.join("auths/a.cds"), cds).unwrap();
    let plugin = storehost::CustomPlugin {
        name: "memory-0.1.0".into(),
        wasm: FIXTURE_0_1_0.to_vec(),
        settings: Vec::new(),
        grants: Grants::minimal(),
    };
    let host = storehost::Storehost::with_plugin(plugin, &ws, storehost_tests::quick_polls())
        .await
        .unwrap();
    host.bootstrap().await.unwrap();
    host.sync_workspace().await.unwrap();
    host.pull_remote().await.unwrap();
    let remote: Vec<Key> = host
        .plugin()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.key)
        .collect();
    assert!(remote.contains(&Key::auth("a.json")), "{remote:?}");
    assert!(!remote.iter().any(|k| k.id.ends_with(".cds")), "{remote:?}");
    assert_eq!(
        std::fs::read_to_string(ws.join("auths/a.cds")).unwrap(),
        cds
    );
    let logs = captured.text();
    let said = logs.matches("built against contract 0.1.0").count();
    assert_eq!(said, 1, "{logs}");
}
