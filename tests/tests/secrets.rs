//! A granted secret's value never appears in logs, errors or `Debug` output.

use storehost::Key;
use storehost::capabilities::Grants;
use storehost::capabilities::secrets::SecretValue;
use storehost::selection::{Environment, select};
use storehost_tests::{guests, load, logs, tight_limits};

const CANARY: &str = "tok-CANARY-5f1e9d";

#[tokio::test(flavor = "current_thread")]
async fn secret_values_stay_out_of_logs_errors_and_debug() {
    let (_guard, captured) = logs::capture();
    let grants = Grants::minimal().with_secret("granted", SecretValue::new(CANARY));
    let plugin = load("hostile", guests::HOSTILE, grants.clone(), tight_limits());
    let mut shown = vec![format!("{grants:?}")];
    for what in [
        "secret:granted",
        "secret:missing",
        "sql",
        "objects",
        "git",
        "panic",
    ] {
        match plugin.read_one(&Key::auth(what)).await {
            Ok(document) => shown.push(format!("{document:?}")),
            Err(error) => shown.push(format!("{error} {error:?}")),
        }
    }
    let env = Environment::from_pairs([
        ("GITSTORE_GIT_URL", "https://h/r.git"),
        ("GITSTORE_GIT_TOKEN", CANARY),
    ]);
    let selection = select(&env, std::path::Path::new("/")).unwrap();
    shown.push(format!("{selection:?} {}", selection.explain()));
    tracing::info!("selection {selection:?}");
    let logged = captured.text();
    assert!(
        logged.contains("not granted"),
        "the denial should be logged: {logged}"
    );
    for text in shown.iter().chain([&logged]) {
        assert!(!text.contains(CANARY), "secret leaked into: {text}");
    }
}
