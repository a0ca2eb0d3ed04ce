//! The contract is frozen per version: a released `wit/<version>/` never
//! changes, the host speaks the newest, and a component built against an
//! older version keeps loading and passing the conformance kit.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use storehost::capabilities::Grants;
use storehost::runtime::Limits;
use storehost::runtime::bindings::{BINDINGS_VERSION, CONTRACT_VERSION};
use storehost_tests::{conformance, load};

/// Every released version and the sha256 of its folder (file names and
/// contents, sorted by name). Never edit an entry: add a version.
const FROZEN: &[(&str, &str)] = &[(
    "0.1.0",
    "f4da811e9ac0fdf83cae393e8643d9165ce09ed3e9da09d6d0321df056210757",
)];

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
}
