//! The conformance kit as a third party runs it: one command on a `.wasm`
//! file, with the test server its capability needs started for it.

use std::path::Path;
use std::process::{Command, Output};
use storehost::selection::BackendKind;

const RUNNER: &str = env!("CARGO_BIN_EXE_storehost-conformance");

fn run(wasm: &Path, args: &[&str]) -> Output {
    Command::new(RUNNER).arg(wasm).args(args).output().unwrap()
}

fn component_file(dir: &Path, kind: BackendKind) -> std::path::PathBuf {
    let path = dir.join(format!("{}.wasm", kind.name()));
    std::fs::write(&path, storehost::builtin::component(kind).unwrap()).unwrap();
    path
}

#[test]
fn a_plugin_file_passes_with_a_directory_or_a_git_server_started_for_it() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, args) in [
        (BackendKind::Local, vec![]),
        (BackendKind::Git, vec!["--service", "git"]),
    ] {
        let output = run(&component_file(dir.path(), kind), &args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{kind:?}: {stdout}");
        assert!(stdout.contains(" 0 failed"), "{stdout}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
    }
}

#[test]
fn a_plugin_without_its_service_fails_and_bad_input_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let git = component_file(dir.path(), BackendKind::Git);
    // No remote granted: the cases fail, they do not pass by accident.
    let output = run(&git, &[]);
    assert_eq!(output.status.code(), Some(1));
    let output = run(&git, &["--service", "ftp"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown service ftp"));
    let not_wasm = dir.path().join("x.wasm");
    std::fs::write(&not_wasm, b"not a component").unwrap();
    assert_eq!(run(&not_wasm, &[]).status.code(), Some(2));
}
