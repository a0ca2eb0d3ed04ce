//! `storehost plugin test`: the conformance kit in the product binary, on
//! a built-in (passing), on faulty and hostile guests (failing with the
//! right report lines) and on bad input (exit 2, nothing touched).

use std::path::{Path, PathBuf};
use std::process::Output;
use storehost_tests::guests;

const BIN: &str = env!("CARGO_BIN_EXE_storehost");

fn plugin_test(cwd: &Path, args: &[&str]) -> Output {
    storehost_tests::clean_command(BIN, cwd)
        .args(["plugin", "test"])
        .args(args)
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The hostile guest (it imports every capability) beside a manifest that
/// grants it `sql` only.
fn hostile_granted_sql() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hostile.wasm", guests::HOSTILE);
    write(
        dir.path(),
        "storehost.yaml",
        b"plugin:\n  file: ./hostile.wasm\ngrants:\n  capabilities: [sql]\n",
    );
    dir
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_local_plugin_passes_every_check_including_contention_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "local.wasm", storehost::builtin::local());
    let output = plugin_test(dir.path(), &["local.wasm"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("pass  [behaviour] two instances contending on one key"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pass  [limits]") && stdout.contains("peak memory"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pass  [imports] import wasi:filesystem/preopens"),
        "{stdout}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn json_is_a_machine_readable_report() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "local.wasm", storehost::builtin::local());
    let output = plugin_test(dir.path(), &["local.wasm", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["failed"], 0);
    let outcomes = report["outcomes"].as_array().unwrap();
    assert_eq!(report["passed"].as_u64().unwrap() as usize, outcomes.len());
    for section in ["imports", "behaviour", "limits"] {
        assert!(
            outcomes.iter().any(|o| o["section"] == section),
            "no {section} outcome in {report}"
        );
    }
}

#[test]
fn a_plugin_that_lies_about_its_writes_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fault.wasm", guests::FAULT);
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join(".fault"), "lying-apply").unwrap();
    let output = plugin_test(
        dir.path(),
        &["fault.wasm", "--dir", store.to_str().unwrap(), "--json"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output).1);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let failed: Vec<&str> = report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["passed"] == false)
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"read returns what was put"), "{failed:?}");
    assert!(
        !failed.contains(&"info names the backend"),
        "only what it breaks fails: {failed:?}"
    );
}

#[test]
fn an_import_that_is_not_granted_is_a_failing_report_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hostile.wasm", guests::HOSTILE);
    let output = plugin_test(dir.path(), &["hostile.wasm"]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for interface in ["sql", "objects", "git"] {
        assert!(
            stdout.contains(&format!(
                "FAIL  [imports] import storehost:plugin/{interface}: not granted"
            )),
            "{interface}: {stdout}"
        );
    }
}

#[test]
fn a_manifest_grants_what_it_names() {
    let dir = hostile_granted_sql();
    let output = plugin_test(
        dir.path(),
        &["hostile.wasm", "--manifest", "storehost.yaml"],
    );
    let (stdout, stderr) = text(&output);
    assert!(
        stdout.contains("pass  [imports] import storehost:plugin/sql: granted"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("FAIL  [imports] import storehost:plugin/objects: not granted"),
        "{stdout}"
    );
}

#[test]
fn bad_input_is_exit_2_and_a_store_in_use_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let missing = plugin_test(dir.path(), &["missing.wasm"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).1.contains("cannot read missing.wasm"));

    write(dir.path(), "text.wasm", b"hello");
    let not_wasm = plugin_test(dir.path(), &["text.wasm"]);
    assert_eq!(not_wasm.status.code(), Some(2));
    assert!(text(&not_wasm).1.contains("not a WebAssembly file"));

    write(dir.path(), "local.wasm", storehost::builtin::local());
    write(
        dir.path(),
        "bad.yaml",
        b"plugin:\n  file: ./local.wasm\n  colour: red\n",
    );
    let bad_manifest = plugin_test(dir.path(), &["local.wasm", "--manifest", "bad.yaml"]);
    assert_eq!(bad_manifest.status.code(), Some(2));
    assert!(
        text(&bad_manifest).1.contains("plugin.colour"),
        "{}",
        text(&bad_manifest).1
    );

    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("auths")).unwrap();
    std::fs::write(store.join("auths/someone.json"), b"{\"token\":1}").unwrap();
    let in_use = plugin_test(dir.path(), &["local.wasm", "--dir", "store"]);
    let (_, stderr) = text(&in_use);
    assert_eq!(in_use.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-wipe"), "{stderr}");
    assert_eq!(
        std::fs::read(store.join("auths/someone.json")).unwrap(),
        b"{\"token\":1}"
    );

    let allowed = plugin_test(
        dir.path(),
        &["local.wasm", "--dir", "store", "--allow-wipe"],
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed).0);
    assert!(!store.join("auths/someone.json").exists());
}

#[test]
fn inspect_lists_every_import_and_export_and_with_a_manifest_what_it_grants() {
    let dir = hostile_granted_sql();
    let inspect = |args: &[&str]| {
        storehost_tests::clean_command(BIN, dir.path())
            .args(["plugin", "inspect", "hostile.wasm"])
            .args(args)
            .output()
            .unwrap()
    };
    let output = inspect(&[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("exports:\n  storehost:plugin/backend@0.2.0"),
        "{stdout}"
    );
    for interface in ["sql", "objects", "git", "secrets"] {
        assert!(
            stdout.contains(&format!("  storehost:plugin/{interface}@0.1.0\n")),
            "{interface}: {stdout}"
        );
    }
    assert!(
        !stdout.contains("granted"),
        "no manifest, no grants: {stdout}"
    );

    let output = inspect(&["--manifest", "storehost.yaml"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("  granted  storehost:plugin/sql\n"),
        "{stdout}"
    );
    for interface in ["objects", "git"] {
        assert!(
            stdout.contains(&format!(
                "  denied   storehost:plugin/{interface}: not granted"
            )),
            "{interface}: {stdout}"
        );
    }

    write(
        dir.path(),
        "bad.yaml",
        b"plugin:\n  file: ./hostile.wasm\ngrants:\n  colour: red\n",
    );
    let output = inspect(&["--manifest", "bad.yaml"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("grants.colour"), "{stderr}");
}

fn built_in_file(dir: &Path, kind: storehost::selection::BackendKind) -> PathBuf {
    let component = storehost::builtin::component(kind).unwrap();
    write(dir, &format!("{}.wasm", kind.name()), component)
}

/// `plugin test` as run by an author whose test servers are installed
/// where `.ci/install.sh` puts them (`~/.cargo/bin` for s3s-fs).
fn plugin_test_with_home(cwd: &Path, args: &[&str]) -> Output {
    storehost_tests::clean_command(BIN, cwd)
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .args(["plugin", "test"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_built_in_passes_with_its_service_started_for_it() {
    use storehost::selection::BackendKind;
    let dir = tempfile::tempdir().unwrap();
    for (kind, service) in [
        (BackendKind::Postgres, "postgres"),
        (BackendKind::Object, "object"),
        (BackendKind::Git, "git"),
    ] {
        let file = built_in_file(dir.path(), kind);
        let file = file.to_str().unwrap();
        let output = plugin_test_with_home(dir.path(), &[file, "--service", service, "--json"]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{service}: {stdout}{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["failed"], 0, "{service}: {stdout}");
        assert!(
            report["passed"].as_u64().unwrap() > 10,
            "{service}: {stdout}"
        );
    }
}

#[test]
fn a_plugin_without_its_service_fails_and_a_missing_server_says_how_to_install_it() {
    use storehost::selection::BackendKind;
    let dir = tempfile::tempdir().unwrap();
    let git = built_in_file(dir.path(), BackendKind::Git);
    let git = git.to_str().unwrap();
    // No remote granted: the cases fail, they do not pass by accident.
    assert_eq!(plugin_test(dir.path(), &[git]).status.code(), Some(1));

    let unknown = plugin_test(dir.path(), &[git, "--service", "ftp"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown).1.contains("ftp"), "{}", text(&unknown).1);

    // Neither git nor s3s-fs can be found on this PATH and HOME.
    for (service, install) in [
        ("object", "cargo install s3s-fs"),
        ("git", "apt-get install git"),
    ] {
        let output = storehost_tests::clean_command(BIN, dir.path())
            .env("PATH", dir.path())
            .env("HOME", dir.path())
            .args(["plugin", "test", git, "--service", service])
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{service}: {stderr}");
        assert!(stderr.contains(install), "{service}: {stderr}");
    }
}
