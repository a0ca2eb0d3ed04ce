//! The runtime around plugins: the component cache, plugin stderr, and the
//! generated list of test guests.

use std::os::unix::fs::PermissionsExt;
use storehost::Key;
use storehost::capabilities::Grants;
use storehost::runtime::inspect::inspect;
use storehost::runtime::{ComponentCache, Limits, Plugin, PluginSpec, Runtime};
use storehost_tests::{guests, logs};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_cache_is_private_keyed_by_content_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let runtime = Runtime::new(Some(ComponentCache::new(&cache_dir))).unwrap();
    let cache = ComponentCache::new(&cache_dir);
    let local_path = cache.artifact_path(runtime.engine(), storehost::builtin::local());
    let memory_path = cache.artifact_path(runtime.engine(), guests::MEMORY);
    assert_ne!(
        local_path, memory_path,
        "different components, different keys"
    );

    runtime
        .component("local", storehost::builtin::local())
        .unwrap();
    assert_eq!(mode(&cache_dir), 0o700);
    assert_eq!(mode(&local_path), 0o600);
    let written = std::fs::metadata(&local_path).unwrap().len();
    assert!(written > 0);

    // A damaged artifact is never trusted: the component is compiled again
    // and the artifact rewritten.
    std::fs::write(&local_path, b"not an artifact").unwrap();
    runtime
        .component("local", storehost::builtin::local())
        .unwrap();
    assert_eq!(std::fs::metadata(&local_path).unwrap().len(), written);
}

#[tokio::test(flavor = "current_thread")]
async fn plugin_stderr_goes_to_the_log_tagged_with_the_plugin() {
    let (_guard, captured) = logs::capture();
    let spec = PluginSpec {
        name: "hostile".into(),
        grants: Grants::minimal(),
        limits: Limits::default(),
        settings: Vec::new(),
    };
    let plugin = Plugin::load(&Runtime::shared().unwrap(), spec, guests::HOSTILE).unwrap();
    assert!(plugin.read_one(&Key::auth("panic")).await.is_err());
    let logged = captured.text();
    let line = logged
        .lines()
        .find(|l| l.contains("hostile plugin panics on purpose"))
        .expect(&logged);
    assert!(
        line.contains("plugin=hostile") && line.contains("stderr:"),
        "{line}"
    );
}

/// Every guest built from `tests/guests/` has an expectation here; a new
/// guest without one fails this test.
#[test]
fn every_test_guest_is_a_loadable_plugin_of_the_contract() {
    let runtime = Runtime::new(None).unwrap();
    assert!(!guests::ALL.is_empty());
    for (name, wasm) in guests::ALL {
        let inspection = inspect(&runtime, name, wasm).unwrap_or_else(|e| panic!("{name}: {e}"));
        let capabilities: Vec<&str> = inspection
            .capabilities
            .iter()
            .map(|c| c.interface())
            .collect();
        let expected: &[&str] = match *name {
            "memory" | "fault" => &[],
            "hostile" => &["secrets", "sql", "objects", "git"],
            "sqlprobe" => &["secrets", "sql"],
            "httpprobe" => &[],
            other => panic!("test guest `{other}` has no expectation in this test"),
        };
        let mut capabilities_sorted = capabilities.clone();
        capabilities_sorted.sort();
        let mut expected_sorted = expected.to_vec();
        expected_sorted.sort();
        assert_eq!(capabilities_sorted, expected_sorted, "{name}");
        assert_eq!(inspection.contract_version, "0.2.0");
        assert!(
            inspection.loadable.is_ok(),
            "{name}: {:?}",
            inspection.loadable
        );
    }
}
