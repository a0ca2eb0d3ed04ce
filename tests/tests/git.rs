//! The Git backend against a real smart-HTTP server (`git http-backend`
//! behind basic auth): conformance, interop with the git CLI both ways,
//! history, concurrent writers, a rewritten remote, a corrupt local
//! repository, squash with a lease, an outage, wrong credentials and the
//! token's absence from disk and output.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;
use storehost::{Saved, Storehost, StorehostError};
use storehost_tests::git::{self, GitServer, TOKEN, USERNAME, git_text};
use storehost_tests::{auth_files, conformance, local_auth, logs};

const NO_POLL: Duration = Duration::from_secs(3600);

fn run_git(dir: &Path, args: &[&str]) {
    git::git(dir, args);
}

/// A clone made with the git CLI, as another program would use the remote.
fn cli_clone(server: &GitServer, repo: &str, parent: &Path) -> PathBuf {
    let dir = parent.join(format!("clone-{}", parent.read_dir().unwrap().count()));
    git::clone(server, repo, &dir);
    dir
}

fn commit_all(clone: &Path, message: &str) {
    run_git(clone, &["add", "-A"]);
    run_git(clone, &["commit", "--quiet", "-m", message]);
}

async fn bootstrapped(url: &str, workspace: &Path) -> Storehost {
    let host = git::host(url, workspace, NO_POLL).await;
    host.bootstrap().await.unwrap();
    host
}

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
    let host = bootstrapped(&url, &workspace).await;
    storehost_tests::save_pushed(&host, "claude-a@b.com.json", br#"{"type":"claude","n":1}"#).await;
    storehost_tests::save_pushed(&host, "team/codex.json", br#"{"type":"codex"}"#).await;

    let clone = cli_clone(&server, "tokens", dir.path());
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
    // Saving the same content again adds no empty commit.
    let commits = git_text(
        &server.repo_path("tokens"),
        &["rev-list", "--count", "main"],
    );
    storehost_tests::save_pushed(&host, "team/codex.json", br#"{"type":"codex"}"#).await;
    assert_eq!(
        git_text(
            &server.repo_path("tokens"),
            &["rev-list", "--count", "main"]
        ),
        commits
    );
    let authors = git_text(&clone, &["log", "--format=%an <%ae>"]);
    assert!(
        authors
            .lines()
            .all(|a| a == "storehost <storehost@localhost>"),
        "{authors}"
    );

    // Commits by someone else arrive by polling: an addition, a change and
    // a deletion.
    std::fs::write(clone.join("auths/gemini.json"), r#"{"type":"gemini"}"#).unwrap();
    std::fs::write(
        clone.join("auths/claude-a@b.com.json"),
        r#"{"type":"claude","n":2}"#,
    )
    .unwrap();
    std::fs::remove_file(clone.join("auths/team/codex.json")).unwrap();
    commit_all(&clone, "changes from elsewhere");
    run_git(&clone, &["push", "--quiet", "origin", "main"]);
    assert_eq!(host.pull_remote().await.unwrap(), 3);
    assert_eq!(
        local_auth(&workspace, "gemini.json").as_deref(),
        Some(r#"{"type":"gemini"}"#)
    );
    assert_eq!(
        local_auth(&workspace, "claude-a@b.com.json").as_deref(),
        Some(r#"{"type":"claude","n":2}"#)
    );
    assert_eq!(local_auth(&workspace, "team/codex.json"), None);
}

#[tokio::test]
async fn a_remote_with_content_is_bootstrapped_and_its_default_branch_followed() {
    let server = GitServer::start();
    git::git(
        &server.root(),
        &["init", "--quiet", "--bare", "-b", "trunk", "existing.git"],
    );
    let dir = tempfile::tempdir().unwrap();
    let clone = cli_clone(&server, "existing", dir.path());
    run_git(&clone, &["checkout", "--quiet", "-b", "trunk"]);
    std::fs::create_dir_all(clone.join("auths/team")).unwrap();
    std::fs::create_dir_all(clone.join("config")).unwrap();
    std::fs::write(clone.join("config/config.yaml"), "port: 8317\n").unwrap();
    std::fs::write(clone.join("auths/team/a.json"), r#"{"type":"claude"}"#).unwrap();
    std::fs::write(clone.join("README.md"), "not a document\n").unwrap();
    commit_all(&clone, "tokens");
    run_git(&clone, &["push", "--quiet", "origin", "trunk"]);

    let workspace = dir.path().join("ws");
    let host = bootstrapped(&server.url("existing"), &workspace).await;
    assert_eq!(auth_files(&workspace), ["team/a.json"]);
    assert_eq!(
        std::fs::read_to_string(host.config_path()).unwrap(),
        "port: 8317\n"
    );
    storehost_tests::save_pushed(&host, "b.json", br#"{"type":"codex"}"#).await;
    run_git(&clone, &["pull", "--quiet", "origin", "trunk"]);
    assert!(
        clone.join("auths/b.json").is_file(),
        "pushed to the followed branch"
    );
    assert!(
        clone.join("README.md").is_file(),
        "other files are left alone"
    );
}

/// Another program committed names that are not UTF-8, a file and a
/// directory: they are no documents, and the rest still arrives.
#[tokio::test]
async fn names_that_are_not_utf8_in_the_tree_stop_no_other_document() {
    use std::os::unix::ffi::OsStrExt;
    let server = GitServer::start();
    let url = server.create_repo("bytes");
    let dir = tempfile::tempdir().unwrap();
    let clone = cli_clone(&server, "bytes", dir.path());
    let auths = clone.join("auths");
    let bad_dir = auths.join(std::ffi::OsStr::from_bytes(b"team-\xff"));
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("x.json"), "{}").unwrap();
    std::fs::write(
        auths.join(std::ffi::OsStr::from_bytes(b"bad-\xfe.json")),
        "{}",
    )
    .unwrap();
    std::fs::create_dir_all(auths.join("team")).unwrap();
    std::fs::write(auths.join("a.json"), r#"{"a":1}"#).unwrap();
    std::fs::write(auths.join("team/z.json"), r#"{"z":1}"#).unwrap();
    commit_all(&clone, "bytes");
    run_git(&clone, &["push", "--quiet", "origin", "HEAD"]);

    let workspace = dir.path().join("ws");
    let host = bootstrapped(&url, &workspace).await;
    assert_eq!(auth_files(&workspace), ["a.json", "team/z.json"]);
    storehost_tests::save_pushed(&host, "b.json", br#"{"b":1}"#).await;
    run_git(&clone, &["pull", "--quiet", "origin", "HEAD"]);
    assert!(clone.join("auths/b.json").is_file());
    assert!(bad_dir.join("x.json").is_file(), "left as it was");
}

#[tokio::test]
async fn symlinks_in_the_repository_are_no_documents_and_stay_as_they_are() {
    let server = GitServer::start();
    let url = server.create_repo("links");
    let dir = tempfile::tempdir().unwrap();
    let clone = cli_clone(&server, "links", dir.path());
    for sub in ["shared", "config", "auths/team"] {
        std::fs::create_dir_all(clone.join(sub)).unwrap();
    }
    std::fs::write(clone.join("shared/config.yaml"), "port: 1\n").unwrap();
    std::fs::write(clone.join("auths/team/z.json"), r#"{"z":1}"#).unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, clone.join(at)).unwrap();
    link("../shared/config.yaml", "config/config.yaml");
    link("team/z.json", "auths/linked.json");
    link("team", "auths/linked-team");
    commit_all(&clone, "links");
    run_git(&clone, &["push", "--quiet", "origin", "HEAD"]);

    let workspace = dir.path().join("ws");
    let host = bootstrapped(&url, &workspace).await;
    assert_eq!(auth_files(&workspace), ["team/z.json"]);
    let config = std::fs::read_to_string(host.config_path()).unwrap_or_default();
    assert!(
        !config.contains("shared"),
        "a link's target taken for the config: {config:?}"
    );
    let ids = ["linked.json", "linked-team/a.json", "plain.json"];
    for id in ids {
        let content = format!(r#"{{"id":"{id}"}}"#);
        let saved = host.save_auth(id, content.as_bytes()).await.unwrap();
        let settled = host.wait_pushed(&saved, Duration::from_secs(10)).await;
        assert!(settled.unwrap(), "{id} was held up");
    }
    run_git(&clone, &["pull", "--quiet", "origin", "HEAD"]);
    assert_eq!(
        std::fs::read_to_string(clone.join("auths/plain.json")).unwrap(),
        r#"{"id":"plain.json"}"#
    );
    for at in [
        "config/config.yaml",
        "auths/linked.json",
        "auths/linked-team",
    ] {
        let metadata = clone.join(at).symlink_metadata().unwrap();
        assert!(metadata.is_symlink(), "{at} was replaced");
    }
    assert_eq!(
        std::fs::read_to_string(clone.join("auths/team/z.json")).unwrap(),
        r#"{"z":1}"#
    );
    for id in ids {
        assert_eq!(
            local_auth(&workspace, id).unwrap(),
            format!(r#"{{"id":"{id}"}}"#)
        );
    }
}

#[tokio::test]
async fn a_pinned_branch_is_created_on_an_empty_remote() {
    let server = GitServer::start();
    let url = server.create_repo("pinned");
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("GITSTORE_GIT_URL", url.as_str()),
        ("GITSTORE_GIT_BRANCH", "tokens/prod"),
    ];
    let host = git::try_host(&vars, &dir.path().join("ws"), NO_POLL)
        .await
        .unwrap();
    host.bootstrap().await.unwrap();
    storehost_tests::save_pushed(&host, "a.json", b"{}").await;
    let files = git_text(
        &server.repo_path("pinned"),
        &["ls-tree", "-r", "--name-only", "tokens/prod"],
    );
    assert!(files.lines().any(|f| f == "auths/a.json"), "{files}");
    let branches = git_text(
        &server.repo_path("pinned"),
        &["branch", "--format=%(refname:short)"],
    );
    assert_eq!(branches, "tokens/prod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_pushing_concurrently_keep_all_files_and_a_linear_history() {
    let server = GitServer::start();
    let url = server.create_repo("busy");
    let dir = tempfile::tempdir().unwrap();
    let first = bootstrapped(&url, &dir.path().join("a")).await;
    let second = bootstrapped(&url, &dir.path().join("b")).await;
    let write = |host: Storehost, prefix: &'static str| async move {
        for i in 0..100 {
            let id = format!("{prefix}-{i:03}.json");
            storehost_tests::save_pushed(&host, &id, format!(r#"{{"i":{i}}}"#).as_bytes()).await;
        }
        assert_eq!(host.flush(Duration::from_secs(60)).await.unwrap(), 0);
        host
    };
    let (first, second) = tokio::join!(
        tokio::spawn(write(first, "first")),
        tokio::spawn(write(second, "second"))
    );
    let (first, second) = (first.unwrap(), second.unwrap());

    let clone = cli_clone(&server, "busy", dir.path());
    let ids = auth_files(&clone);
    assert_eq!(ids.len(), 200, "{ids:?}");
    let merges = git_text(&clone, &["rev-list", "--min-parents=2", "main"]);
    assert!(merges.is_empty(), "no merge commits: {merges}");
    let all = git_text(&clone, &["rev-list", "--count", "main"]);
    let first_parent = git_text(&clone, &["rev-list", "--count", "--first-parent", "main"]);
    assert_eq!(all, first_parent, "the history is one line");
    let messages = git_text(&clone, &["log", "--format=%B", "main"]);
    for id in &ids {
        assert!(messages.contains(id.as_str()), "no commit names {id}");
    }
    // Each host gets the other's files by polling.
    first.pull_remote().await.unwrap();
    second.pull_remote().await.unwrap();
    assert_eq!(auth_files(first.workspace()).len(), 200);
    assert_eq!(auth_files(second.workspace()).len(), 200);
}

#[tokio::test]
async fn the_same_file_from_two_hosts_is_a_conflict_file_and_nothing_is_lost() {
    let server = GitServer::start();
    let url = server.create_repo("contested");
    let dir = tempfile::tempdir().unwrap();
    let first = bootstrapped(&url, &dir.path().join("a")).await;
    storehost_tests::save_pushed(&first, "shared.json", br#"{"v":0}"#).await;
    let second = bootstrapped(&url, &dir.path().join("b")).await;
    assert_eq!(
        local_auth(second.workspace(), "shared.json").as_deref(),
        Some(r#"{"v":0}"#)
    );

    storehost_tests::save_pushed(&first, "shared.json", br#"{"v":"first"}"#).await;
    // The second host has not seen that commit: its push is rejected, the
    // change is checked again on the new head, and the file changed there.
    storehost_tests::save_pushed(&second, "shared.json", br#"{"v":"second"}"#).await;

    let files = auth_files(second.workspace());
    let copy = files
        .iter()
        .find(|f| f.starts_with("shared.json") && f.as_str() != "shared.json")
        .unwrap_or_else(|| panic!("a conflict copy: {files:?}"));
    assert_eq!(
        local_auth(second.workspace(), copy).as_deref(),
        Some(r#"{"v":"second"}"#)
    );
    assert_eq!(
        local_auth(second.workspace(), "shared.json").as_deref(),
        Some(r#"{"v":"first"}"#),
        "the remote wins in the workspace"
    );
    let clone = cli_clone(&server, "contested", dir.path());
    assert_eq!(
        std::fs::read_to_string(clone.join("auths/shared.json")).unwrap(),
        r#"{"v":"first"}"#
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_force_rewritten_remote_is_reported_and_wipes_nothing() {
    let (_guard, captured) = logs::capture();
    let server = GitServer::start();
    let url = server.create_repo("rewritten");
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let host = bootstrapped(&url, &workspace).await;
    for id in ["a.json", "b.json", "c.json"] {
        storehost_tests::save_pushed(&host, id, format!(r#"{{"id":"{id}"}}"#).as_bytes()).await;
    }
    // Someone squashes the branch into one orphan commit holding only a
    // newer a.json, and force-pushes it (what the old Go store did).
    let clone = cli_clone(&server, "rewritten", dir.path());
    run_git(&clone, &["checkout", "--quiet", "--orphan", "squashed"]);
    run_git(&clone, &["rm", "--quiet", "-r", "--cached", "."]);
    std::fs::remove_file(clone.join("auths/b.json")).unwrap();
    std::fs::remove_file(clone.join("auths/c.json")).unwrap();
    std::fs::write(
        clone.join("auths/a.json"),
        r#"{"id":"a.json","newer":true}"#,
    )
    .unwrap();
    commit_all(&clone, "squash");
    run_git(
        &clone,
        &["push", "--quiet", "--force", "origin", "squashed:main"],
    );

    host.pull_remote().await.unwrap();
    let logged = captured.text();
    assert!(
        logged.contains("the remote branch was rewritten"),
        "{logged}"
    );
    assert!(
        logged.contains("auths/b.json") && logged.contains("auths/c.json"),
        "{logged}"
    );
    assert_eq!(
        auth_files(&workspace),
        ["a.json", "b.json", "c.json"],
        "nothing wiped"
    );
    assert_eq!(
        local_auth(&workspace, "a.json").as_deref(),
        Some(r#"{"id":"a.json","newer":true}"#),
        "the rewrite's own change stands"
    );
    // The dropped documents are committed again on top of the rewrite, so
    // a restart (or another host) finds them too.
    let check = cli_clone(&server, "rewritten", dir.path());
    assert_eq!(auth_files(&check), ["a.json", "b.json", "c.json"]);
    drop(host);
    let host = bootstrapped(&url, &workspace).await;
    assert_eq!(auth_files(host.workspace()), ["a.json", "b.json", "c.json"]);

    // After that, a plain deletion by someone else is a deletion, not
    // something to restore.
    run_git(&check, &["pull", "--quiet", "origin", "main"]);
    run_git(&check, &["rm", "--quiet", "auths/b.json"]);
    run_git(&check, &["commit", "--quiet", "-m", "retire b"]);
    run_git(&check, &["push", "--quiet", "origin", "HEAD:main"]);
    host.pull_remote().await.unwrap();
    assert_eq!(auth_files(&workspace), ["a.json", "c.json"]);
    let tree = |server: &GitServer| {
        git_text(
            &server.repo_path("rewritten"),
            &["ls-tree", "-r", "--name-only", "main"],
        )
    };
    assert!(!tree(&server).contains("auths/b.json"));

    // A deleted branch is pushed back from the last head seen.
    let repo = server.repo_path("rewritten");
    run_git(&repo, &["config", "receive.denyDeleteCurrent", "ignore"]);
    run_git(&check, &["push", "--quiet", "origin", "--delete", "main"]);
    assert!(
        git_text(&repo, &["branch"]).is_empty(),
        "the branch is gone"
    );
    host.pull_remote().await.unwrap();
    assert_eq!(auth_files(&workspace), ["a.json", "c.json"]);
    assert!(tree(&server).contains("auths/c.json"));
}

/// The host's bare repository for the one remote this workspace mirrors.
fn cache_dir(workspace: &Path) -> PathBuf {
    let git_dir = workspace.join(".storehost/git");
    let mut caches: Vec<PathBuf> = std::fs::read_dir(&git_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "git"))
        .collect();
    assert_eq!(caches.len(), 1, "{caches:?}");
    caches.pop().unwrap()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Damages every object file of the cache (packs, indexes, loose objects).
fn corrupt(cache: &Path) {
    for file in files_under(&cache.join("objects")) {
        std::fs::write(&file, b"garbage").unwrap();
    }
}

#[tokio::test]
async fn a_corrupt_local_repository_is_fetched_again_never_pushed() {
    let server = GitServer::start();
    let url = server.create_repo("fragile");
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let host = bootstrapped(&url, &workspace).await;
    for id in ["a.json", "b.json"] {
        storehost_tests::save_pushed(&host, id, b"{}").await;
    }
    let before = git_text(&server.repo_path("fragile"), &["rev-parse", "main"]);

    // Damaged while running: the next write recovers and goes through.
    corrupt(&cache_dir(&workspace));
    storehost_tests::save_pushed(&host, "c.json", br#"{"c":1}"#).await;
    let head = git_text(&server.repo_path("fragile"), &["rev-parse", "main"]);
    assert_eq!(
        git_text(&server.repo_path("fragile"), &["rev-parse", "main~1"]),
        before,
        "one commit on top of the old head"
    );
    drop(host);

    // Damaged while stopped: the next start fetches the cache again.
    corrupt(&cache_dir(&workspace));
    let host = bootstrapped(&url, &workspace).await;
    assert_eq!(auth_files(&workspace), ["a.json", "b.json", "c.json"]);
    assert_eq!(
        git_text(&server.repo_path("fragile"), &["rev-parse", "main"]),
        head,
        "recovery pushed nothing"
    );
    storehost_tests::save_pushed(&host, "d.json", b"{}").await;
    let files = git_text(
        &server.repo_path("fragile"),
        &["ls-tree", "-r", "--name-only", "main"],
    );
    for id in ["a", "b", "c", "d"] {
        assert!(files.contains(&format!("auths/{id}.json")), "{files}");
    }
    let fsck = git_text(&server.repo_path("fragile"), &["fsck", "--no-progress"]);
    assert!(!fsck.contains("error"), "{fsck}");
}

#[tokio::test]
async fn squash_mode_keeps_one_commit_and_never_overwrites_an_unseen_one() {
    let server = GitServer::start();
    let url = server.create_repo("squashed");
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("GITSTORE_GIT_URL", url.as_str()),
        ("GITSTORE_SQUASH", "true"),
    ];
    let host = git::try_host(&vars, &dir.path().join("ws"), NO_POLL)
        .await
        .unwrap();
    host.bootstrap().await.unwrap();
    assert!(!host.info().await.unwrap().features.history);
    for id in ["a.json", "b.json"] {
        storehost_tests::save_pushed(&host, id, b"{}").await;
    }
    let repo = server.repo_path("squashed");
    assert_eq!(git_text(&repo, &["rev-list", "--count", "main"]), "1");

    // Another writer's commit lands after the host last fetched: the
    // host's leased push is rejected, and it squashes on top of theirs.
    let clone = cli_clone(&server, "squashed", dir.path());
    std::fs::write(clone.join("auths/theirs.json"), r#"{"theirs":true}"#).unwrap();
    commit_all(&clone, "theirs");
    run_git(&clone, &["push", "--quiet", "origin", "main"]);
    storehost_tests::save_pushed(&host, "c.json", b"{}").await;
    let files = git_text(&repo, &["ls-tree", "-r", "--name-only", "main"]);
    for id in ["a", "b", "c", "theirs"] {
        assert!(files.contains(&format!("auths/{id}.json")), "{files}");
    }
    assert_eq!(git_text(&repo, &["rev-list", "--count", "main"]), "1");
}

#[tokio::test]
async fn an_outage_queues_writes_and_replays_them() {
    let mut server = GitServer::start();
    let url = server.create_repo("flaky");
    let dir = tempfile::tempdir().unwrap();
    let host = bootstrapped(&url, &dir.path().join("ws")).await;
    server.stop();
    for i in 0..5 {
        let saved = host.save_auth(&format!("q{i}.json"), b"{}").await.unwrap();
        assert!(matches!(saved, Saved::Queued(_)));
    }
    assert_eq!(host.outbox_len().await, 5);
    server.resume();
    assert_eq!(host.flush(Duration::from_secs(30)).await.unwrap(), 0);
    let files = git_text(
        &server.repo_path("flaky"),
        &["ls-tree", "-r", "--name-only", "main"],
    );
    assert_eq!(
        files.lines().filter(|f| f.starts_with("auths/q")).count(),
        5
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_token_is_a_clear_error_without_the_token_and_asked_once() {
    let (_guard, captured) = logs::capture();
    let server = GitServer::start();
    let url = server.create_repo("guarded");
    let dir = tempfile::tempdir().unwrap();
    let wrong = "ghp_WrongTokenCanary_31337";
    let vars = [
        ("GITSTORE_GIT_URL", url.as_str()),
        ("GITSTORE_GIT_TOKEN", wrong),
    ];
    let host = git::try_host(&vars, &dir.path().join("ws"), NO_POLL)
        .await
        .unwrap();
    let error = host.bootstrap().await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(matches!(error, StorehostError::Plugin(_)), "{text}");
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(!captured.text().contains(wrong));
    let refused = server.counters.unauthorized.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&refused),
        "the token is offered once, not in a loop: {refused} refusals"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_is_nowhere_on_disk_or_in_the_logs() {
    let (_guard, captured) = logs::capture();
    let server = GitServer::start();
    let url = server.create_repo("secret");
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let host = bootstrapped(&url, &workspace).await;
    storehost_tests::save_pushed(&host, "a.json", br#"{"type":"claude"}"#).await;
    // A rejected push and a fetch of someone else's commit too.
    let clone = cli_clone(&server, "secret", dir.path());
    std::fs::write(clone.join("auths/b.json"), b"{}").unwrap();
    commit_all(&clone, "b");
    run_git(&clone, &["push", "--quiet", "origin", "main"]);
    storehost_tests::save_pushed(&host, "c.json", b"{}").await;
    host.pull_remote().await.unwrap();
    drop(host);

    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{TOKEN}"))
    };
    let files = files_under(&workspace);
    assert!(
        files.iter().any(|f| f.ends_with("config")),
        "the cache was looked at: {files:?}"
    );
    for file in files {
        let content = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&content);
        assert!(
            !text.contains(TOKEN) && !text.contains(&basic),
            "token in {}",
            file.display()
        );
        if file.ends_with("config") && file.parent().unwrap().extension().is_some() {
            assert!(!text.contains("url"), "no remote URL stored: {text}");
        }
    }
    let logged = captured.text();
    assert!(
        !logged.contains(TOKEN) && !logged.contains(&basic),
        "{logged}"
    );
}

#[tokio::test]
async fn paths_outside_the_layout_in_the_remote_are_never_files() {
    let server = GitServer::start();
    let url = server.create_repo("odd");
    let dir = tempfile::tempdir().unwrap();
    let clone = cli_clone(&server, "odd", dir.path());
    std::fs::create_dir_all(clone.join("auths/.storehost")).unwrap();
    std::fs::create_dir_all(clone.join("other")).unwrap();
    std::fs::write(clone.join("auths/ok.json"), b"{}").unwrap();
    std::fs::write(clone.join("other/x.json"), b"{}").unwrap();
    std::fs::write(clone.join("auths/bad\\name.json"), b"{}").unwrap();
    commit_all(&clone, "odd paths");
    run_git(&clone, &["push", "--quiet", "origin", "HEAD:main"]);
    let workspace = dir.path().join("ws");
    let _host = bootstrapped(&url, &workspace).await;
    assert_eq!(auth_files(&workspace), ["ok.json"]);
    assert!(!dir.path().join("x.json").exists());
}

#[tokio::test]
async fn a_remote_that_never_answers_is_unavailable_after_a_timeout() {
    // Accepts connections and then says nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/silent.git",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let plugin = git::plugin(&url, dir.path());
    plugin.start().await.unwrap();
    let started = std::time::Instant::now();
    let error = plugin.check().await.unwrap_err();
    let waited = started.elapsed();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        error.to_string().contains("did not answer in time"),
        "{error}"
    );
    assert!(waited < Duration::from_secs(45), "bounded: {waited:?}");
}

#[tokio::test]
async fn a_url_without_a_repository_is_a_clear_permanent_error() {
    let server = GitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let host = git::host(&server.url("missing"), &dir.path().join("ws"), NO_POLL).await;
    let error = host.bootstrap().await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("no git repository at"), "{text}");
    assert!(
        !matches!(&error, StorehostError::Plugin(e) if e.is_transient()),
        "{error:?}"
    );
}
