//! The Azure Blob plugin as a user meets it: the example manifest shipped
//! in `plugins/azure-blob/`, edited to name an account (a real Azurite on
//! loopback), and `storehost plugin test --manifest` run on it.

use std::path::Path;
use std::process::Output;
use storehost_tests::azure::{Azurite, EXAMPLE_PLUGIN_FILE};
use storehost_tests::guests;

const BIN: &str = env!("CARGO_BIN_EXE_storehost");
const PLUGIN_FILE: &str = EXAMPLE_PLUGIN_FILE;

/// The shipped example with the account edited in, as the user would.
fn edited_example(dir: &Path, server: &Azurite) {
    std::fs::write(dir.join("storehost.yaml"), server.edited_example_manifest()).unwrap();
    std::fs::write(dir.join(PLUGIN_FILE), guests::AZURE_BLOB).unwrap();
}

fn plugin_test(dir: &Path, key: &str) -> (Output, String) {
    let output = storehost_tests::clean_command(BIN, dir)
        .args([
            "plugin",
            "test",
            PLUGIN_FILE,
            "--manifest",
            "storehost.yaml",
        ])
        .env("AZURE_STORAGE_KEY", key)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn the_example_manifest_passes_plugin_test_and_a_wrong_key_fails_without_showing_it() {
    let server = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    edited_example(dir.path(), &server);

    let (passed, text) = plugin_test(dir.path(), server.key());
    assert_eq!(passed.status.code(), Some(0), "{text}");
    assert!(text.contains("pass") && !text.contains("FAIL"), "{text}");
    assert!(!text.contains(server.key()), "{text}");

    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let (failed, text) = plugin_test(dir.path(), wrong);
    assert_eq!(failed.status.code(), Some(1), "{text}");
    assert!(text.contains("denied") && text.contains("403"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(server.key()),
        "{text}"
    );
}
