//! Every built-in plugin, and the in-memory test backend, pass the kit.

use storehost_tests::{conformance, local_plugin, memory_plugin};

#[tokio::test]
async fn local_plugin_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = local_plugin(dir.path());
    conformance::run(&plugin).await.assert_all_passed();
}

#[tokio::test]
async fn memory_test_backend_passes_the_conformance_kit() {
    conformance::run(&memory_plugin()).await.assert_all_passed();
}

#[tokio::test]
async fn local_plugin_keeps_the_layout_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = local_plugin(dir.path());
    conformance::run(&plugin).await.assert_all_passed();
    let key = storehost::Key::auth("team/a.json");
    let put = storehost::Change::Put {
        key,
        content: b"{}".to_vec(),
        precondition: storehost::Precondition::Any,
    };
    plugin
        .apply(vec![put, config_put()], "layout")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("auths/team/a.json")).unwrap(),
        b"{}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("config/config.yaml")).unwrap(),
        b"a: 1\n"
    );
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.contains(".storehost-tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn refused_ids_never_touch_files_outside_the_store() {
    let outer = tempfile::tempdir().unwrap();
    let store = outer.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let plugin = local_plugin(&store);
    for id in ["../escape.json", "../../escape.json", "/escape.json"] {
        let put = storehost::Change::Put {
            key: storehost::Key::auth(id),
            content: b"{}".to_vec(),
            precondition: storehost::Precondition::Any,
        };
        assert!(plugin.apply(vec![put], "escape").await.is_err(), "{id}");
    }
    assert_eq!(
        walk(outer.path()),
        Vec::<String>::new(),
        "nothing may be created"
    );
}

fn config_put() -> storehost::Change {
    storehost::Change::Put {
        key: storehost::Key::config(),
        content: b"a: 1\n".to_vec(),
        precondition: storehost::Precondition::Any,
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}
