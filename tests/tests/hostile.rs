//! Hostile components: each misbehaviour is stopped with the exact error
//! kind, the host stays up, and the next call works on a fresh instance.

use std::time::{Duration, Instant};
use storehost::Key;
use storehost::capabilities::secrets::SecretValue;
use storehost::capabilities::{Capability, Grants};
use storehost::runtime::{BackendError, Plugin, PluginError};
use storehost_tests::{guests, load, tight_limits};

fn hostile(grants: Grants) -> Plugin {
    load("hostile", guests::HOSTILE, grants, tight_limits())
}

async fn provoke(plugin: &Plugin, what: &str) -> Result<Option<storehost::Document>, PluginError> {
    plugin.read_one(&Key::auth(what)).await
}

async fn still_works(plugin: &Plugin) {
    let info = plugin.info().await.expect("the next call works");
    assert_eq!(info.name, "hostile");
    assert!(provoke(plugin, "harmless.json").await.unwrap().is_none());
}

#[tokio::test]
async fn an_infinite_loop_hits_the_deadline_and_the_next_call_works() {
    let plugin = hostile(Grants::minimal());
    let started = Instant::now();
    let error = provoke(&plugin, "spin").await.unwrap_err();
    assert!(
        matches!(error, PluginError::Deadline { call: "read", .. }),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
    assert!(error.is_transient());
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let plugin = hostile(Grants::minimal());
    let error = provoke(&plugin, "bomb").await.unwrap_err();
    assert!(
        matches!(error, PluginError::MemoryLimit { limit_bytes, .. } if limit_bytes == 32 * 1024 * 1024),
        "{error:?}"
    );
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_error() {
    let plugin = hostile(Grants::minimal());
    let error = provoke(&plugin, "panic").await.unwrap_err();
    assert!(
        matches!(error, PluginError::Trap { call: "read", .. }),
        "{error:?}"
    );
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_secret_that_was_not_granted_is_denied() {
    let plugin =
        hostile(Grants::minimal().with_secret("granted", SecretValue::new("value-not-for-you")));
    let error = provoke(&plugin, "secret:other").await.unwrap_err();
    assert!(
        matches!(error.backend(), Some(BackendError::Denied(m)) if m.contains("not granted")),
        "{error:?}"
    );
    let granted = provoke(&plugin, "secret:granted").await.unwrap().unwrap();
    assert_eq!(
        granted.content, b"granted:granted",
        "a handle resolves to its name only"
    );
}

#[tokio::test]
async fn the_sandbox_shows_no_environment_and_no_outside_files() {
    // SAFETY: set before the plugin starts; tests in this binary do not read it.
    unsafe { std::env::set_var("STOREHOST_TEST_CANARY", "visible") };
    let outer = tempfile::tempdir().unwrap();
    let store = outer.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(outer.path().join("outside.txt"), "secret neighbour").unwrap();
    let plugin = hostile(Grants::minimal().with_directory(&store));
    let report = provoke(&plugin, "snoop").await.unwrap().unwrap();
    let report = String::from_utf8(report.content).unwrap();
    let expected = [
        "env=0",
        "args=0",
        "canary=false",
        "read /etc/passwd=false",
        "read /store/../outside.txt=false",
        "read ../outside.txt=false",
        "read /outside.txt=false",
        "list /=false",
        "list /store/..=false",
        "list /tmp=false",
        "write /store/../escape.txt=false",
    ];
    assert_eq!(report.lines().collect::<Vec<_>>(), expected);
    assert!(!outer.path().join("escape.txt").exists());
}

#[tokio::test]
async fn a_capability_that_was_not_granted_is_denied() {
    let plugin =
        hostile(Grants::minimal().with_secret("granted", SecretValue::new("pw-canary-7781")));
    for capability in ["sql", "objects", "git"] {
        let error = provoke(&plugin, capability).await.unwrap_err();
        let Some(BackendError::Denied(message)) = error.backend() else {
            panic!("{capability}: {error:?}")
        };
        assert!(
            message.contains(&format!("not granted the `{capability}` capability")),
            "{message}"
        );
        assert!(!message.contains("pw-canary-7781"));
    }
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_granted_capability_opens_only_the_granted_remote() {
    let dir = tempfile::tempdir().unwrap();
    let grants = Grants::minimal()
        .with_secret("granted", SecretValue::new("pw-canary-7781"))
        .with_capability(Capability::Objects)
        .with_endpoint("http://s3.example.com")
        .with_capability(Capability::Git)
        .with_endpoint("https://git.example.com/tokens.git")
        .with_git_dir(dir.path());
    let plugin = hostile(grants);
    for (capability, what) in [("objects", "endpoint"), ("git", "git remote")] {
        let error = provoke(&plugin, capability).await.unwrap_err();
        let Some(BackendError::Denied(message)) = error.backend() else {
            panic!("{capability}: {error:?}")
        };
        assert!(
            message.contains(&format!("not granted the {what}")),
            "{message}"
        );
        assert!(!message.contains("pw-canary-7781"));
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no repository was made"
    );
    still_works(&plugin).await;
}
