//! The binary as users run it: `serve` on a fresh directory, selection
//! errors, and `plugin inspect` exit codes.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use storehost_tests::git::{self, GitServer};
use storehost_tests::postgres::PostgresServer;
use storehost_tests::s3::{self, S3Server};

const BIN: &str = env!("CARGO_BIN_EXE_storehost");

/// A command with a clean environment: no backend variables leak in from
/// the machine running the tests.
fn storehost(cwd: &Path) -> Command {
    storehost_tests::clean_command(BIN, cwd)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Kills the child if a test fails before it could stop it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve`, waits for "storehost ready", sends `signal`, and returns
/// the exit code and everything logged.
fn serve_until_signal(cwd: &Path, args: &[&str], signal: &str) -> (i32, String) {
    serve_until(cwd, args, signal, |_| {})
}

/// Like `serve_until_signal`, running `while_up` once serve is ready.
fn serve_until(
    cwd: &Path,
    args: &[&str],
    signal: &str,
    while_up: impl FnOnce(&Path),
) -> (i32, String) {
    serve_with(storehost(cwd), cwd, args, signal, while_up)
}

/// Like `serve_until`, from a prepared command (extra environment).
fn serve_with(
    command: Command,
    cwd: &Path,
    args: &[&str],
    signal: &str,
    while_up: impl FnOnce(&Path),
) -> (i32, String) {
    serve_watching(command, cwd, args, signal, |_| {}, while_up)
}

/// Like `serve_with`, showing `on_line` each line logged before "ready".
fn serve_watching(
    mut command: Command,
    cwd: &Path,
    args: &[&str],
    signal: &str,
    mut on_line: impl FnMut(&str),
    while_up: impl FnOnce(&Path),
) -> (i32, String) {
    let mut child = KillOnDrop(
        command
            .arg("serve")
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("serve did not get ready ({e}):\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if line.contains("storehost ready") {
            break;
        }
        on_line(&line);
    }
    while_up(cwd);
    let killed = Command::new("kill")
        .args([signal, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.0.wait().unwrap();
    log.extend(lines_rx.try_iter().map(|line| line + "\n"));
    (status.code().unwrap_or(-1), log)
}

#[test]
fn serve_creates_a_private_local_workspace_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = serve_until_signal(dir.path(), &[], "-TERM");
    assert_eq!(code, 0, "{log}");
    let workspace = dir.path().join("localstore");
    assert_eq!(mode(&workspace), 0o700);
    assert_eq!(mode(&workspace.join("auths")), 0o700);
    assert_eq!(mode(&workspace.join("config")), 0o700);
    assert_eq!(mode(&workspace.join("config/config.yaml")), 0o600);
    assert_eq!(
        std::fs::read(workspace.join("config/config.yaml")).unwrap(),
        b""
    );
    assert!(log.contains("backend local: none of PGSTORE_DSN"), "{log}");
    assert!(
        log.contains("plugin=local")
            && log.contains("version=0.1.0")
            && log.contains("features=conditional-write"),
        "{log}"
    );
}

#[test]
fn serve_seeds_the_config_from_the_example_and_exits_0_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("example.yaml"), "port: 8317\n").unwrap();
    let (code, log) = serve_until_signal(dir.path(), &["--example-config", "example.yaml"], "-INT");
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("localstore/config/config.yaml")).unwrap(),
        "port: 8317\n"
    );
}

#[test]
fn localstore_path_and_writable_path_choose_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let output = storehost(dir.path())
        .args(["serve", "--once"])
        .env("WRITABLE_PATH", "data")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dir.path()
            .join("data/localstore/config/config.yaml")
            .is_file()
    );
    let output = storehost(dir.path())
        .args(["serve", "--once"])
        .env("localstore_path", " mine ")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(dir.path().join("mine/config/config.yaml").is_file());
}

#[test]
fn a_missing_required_variable_is_one_clear_error_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let output = storehost(dir.path())
        .args(["serve", "--once"])
        .env("OBJECTSTORE_ENDPOINT", "http://127.0.0.1:9")
        .env("OBJECTSTORE_ACCESS_KEY", "AK")
        .env("OBJECTSTORE_SECRET_KEY", "sk-canary-0042")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("OBJECTSTORE_BUCKET is required when OBJECTSTORE_ENDPOINT is set"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-canary-0042"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing may be created"
    );
}

#[test]
fn an_unreachable_object_storage_is_a_clear_error_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = storehost(dir.path())
        .args(["serve", "--once"])
        .env("OBJECTSTORE_ENDPOINT", "http://127.0.0.1:1")
        .env("OBJECTSTORE_BUCKET", "tokens")
        .env("OBJECTSTORE_ACCESS_KEY", "AK")
        .env("OBJECTSTORE_SECRET_KEY", "sk-canary-991")
        .env("GITSTORE_GIT_URL", "https://example.invalid/r.git")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("object storage unreachable"), "{stderr}");
    assert!(
        stderr.contains("ignored by priority: git (GITSTORE_GIT_URL)"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-canary-991"), "{stderr}");
}

/// Waits up to 10 s for `condition`.
fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_on_postgres_migrates_then_writes_through_and_follows_the_database() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The local store this deployment used before PGSTORE_DSN was set.
    let previous = dir.path().join("localstore");
    std::fs::create_dir_all(previous.join("auths")).unwrap();
    std::fs::create_dir_all(previous.join("config")).unwrap();
    std::fs::write(previous.join("auths/old.json"), r#"{"type":"claude"}"#).unwrap();
    std::fs::write(previous.join("config/config.yaml"), "port: 8317\n").unwrap();
    let mut command = storehost(dir.path());
    command
        .env("PGSTORE_DSN", server.dsn())
        .env("PGSTORE_SCHEMA", "cli");
    // Polling once a minute: what arrives sooner came by NOTIFY.
    let args = ["--poll-interval-ms", "60000"];
    let (code, log) = serve_with(command, dir.path(), &args, "-TERM", |cwd| {
        let count = |id: &str| {
            server.psql(&format!(
                "SELECT count(*) FROM cli.auth_store WHERE id = '{id}'"
            ))
        };
        assert_eq!(count("old.json"), "1", "migrated at bootstrap");
        assert_eq!(
            server.psql("SELECT content FROM cli.config_store WHERE id = 'config'"),
            "port: 8317"
        );
        let workspace = cwd.join("pgstore");
        std::fs::write(workspace.join("auths/new.json"), r#"{"type":"codex"}"#).unwrap();
        wait_for("a file the proxy writes becomes a row", || {
            count("new.json") == "1"
        });
        server.psql("INSERT INTO cli.auth_store (id, content) VALUES ('by-sql.json', '{}')");
        wait_for("a row another writer adds becomes a file", || {
            workspace.join("auths/by-sql.json").exists()
        });
    });
    assert_eq!(code, 0, "{log}");
    assert!(
        previous.join("auths/old.json").exists(),
        "the old store is kept"
    );
    assert!(!log.contains(server.password()), "{log}");
}

/// A database that is down when serve starts is waited for, not an exit:
/// what the proxy wrote meanwhile goes out once it answers.
#[test]
fn serve_waits_for_a_database_that_is_down_at_start() {
    let server = PostgresServer::start();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("pgstore");
    // A workspace used before (a host rebooting before its database).
    std::fs::create_dir_all(workspace.join(".storehost")).unwrap();
    std::fs::create_dir_all(workspace.join("auths")).unwrap();
    std::fs::write(workspace.join("auths/offline.json"), r#"{"type":"claude"}"#).unwrap();
    let with_env = |mut command: Command| {
        command
            .env("PGSTORE_DSN", server.dsn())
            .env("PGSTORE_SCHEMA", "cli");
        command
    };
    let status = || {
        let output = with_env(storehost(dir.path()))
            .arg("status")
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let mut attempts_failed = 0;
    let on_line = |line: &str| {
        if line.contains("storehost tries again") {
            attempts_failed += 1;
            if attempts_failed == 2 {
                let said = status();
                assert!(said.contains("running: waiting for the backend"), "{said}");
                assert!(said.contains("backend: postgres"), "{said}");
                server.resume();
            }
        }
    };
    let command = with_env(storehost(dir.path()));
    let (code, log) = serve_watching(command, dir.path(), &[], "-TERM", on_line, |_| {
        let count = "SELECT count(*) FROM cli.auth_store WHERE id = 'offline.json'";
        assert_eq!(server.psql(count), "1", "pushed once the database answered");
        let said = status();
        assert!(said.contains("running: yes"), "{said}");
    });
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("database unreachable"), "{log}");
    assert!(!log.contains(server.password()), "{log}");
}

#[test]
fn serve_on_object_storage_bootstraps_writes_through_and_polls() {
    let server = S3Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = s3::client(&server.endpoint());
    runtime.block_on(async {
        client
            .create_bucket()
            .bucket("tokens")
            .send()
            .await
            .unwrap();
        client
            .put_object()
            .bucket("tokens")
            .key("auths/existing.json")
            .body(br#"{"type":"claude"}"#.to_vec().into())
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let mut command = storehost(dir.path());
    command
        .env("OBJECTSTORE_ENDPOINT", format!("{}/", server.endpoint()))
        .env("OBJECTSTORE_BUCKET", "tokens")
        .env("OBJECTSTORE_ACCESS_KEY", s3::ACCESS_KEY)
        .env("OBJECTSTORE_SECRET_KEY", s3::SECRET_KEY);
    let args = ["--poll-interval-ms", "200"];
    let (code, log) = serve_with(command, dir.path(), &args, "-TERM", |cwd| {
        let workspace = cwd.join("objectstore");
        assert!(workspace.join("auths/existing.json").exists(), "bootstrap");
        let object = |key: &str| server.root().join("tokens").join(key);
        std::fs::write(workspace.join("auths/new.json"), r#"{"type":"codex"}"#).unwrap();
        wait_for("a file the proxy writes becomes an object", || {
            object("auths/new.json").exists()
        });
        assert!(
            object("config/config.yaml").exists(),
            "the config was seeded"
        );
        runtime.block_on(async {
            client
                .put_object()
                .bucket("tokens")
                .key("auths/by-client.json")
                .body(b"{}".to_vec().into())
                .send()
                .await
                .unwrap();
        });
        wait_for("an object another writer adds becomes a file", || {
            workspace.join("auths/by-client.json").exists()
        });
    });
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains(s3::SECRET_KEY), "{log}");
}

#[test]
fn wrong_object_storage_keys_are_a_clear_error_and_a_non_zero_exit() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let output = storehost(dir.path())
        .args(["serve", "--once"])
        .env("OBJECTSTORE_ENDPOINT", server.endpoint())
        .env("OBJECTSTORE_BUCKET", "tokens")
        .env("OBJECTSTORE_ACCESS_KEY", s3::ACCESS_KEY)
        .env("OBJECTSTORE_SECRET_KEY", "wrong-secret-canary-31")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the keys"), "{stderr}");
    assert!(!stderr.contains("wrong-secret-canary-31"), "{stderr}");
}

/// `serve` with the `GITSTORE_*` variables of the test server.
fn git_command(cwd: &Path, url: &str, token: &str) -> Command {
    let mut command = storehost(cwd);
    command
        .env("GITSTORE_GIT_URL", url)
        .env("GITSTORE_GIT_USERNAME", git::USERNAME)
        .env("GITSTORE_GIT_TOKEN", token)
        .env("RUST_LOG", "trace");
    command
}

#[test]
fn serve_on_an_empty_git_remote_creates_the_first_commit_writes_through_and_polls() {
    let server = GitServer::start();
    let url = server.create_repo("tokens");
    let dir = tempfile::tempdir().unwrap();
    let command = git_command(dir.path(), &url, git::TOKEN);
    let args = ["--poll-interval-ms", "200"];
    let repo = server.repo_path("tokens");
    let tree = |repo: &Path| git::git_text(repo, &["ls-tree", "-r", "--name-only", "main"]);
    let (code, log) = serve_with(command, dir.path(), &args, "-TERM", |cwd| {
        let workspace = cwd.join("gitstore");
        assert!(
            tree(&repo).contains("config/config.yaml"),
            "first commit with the seeded config"
        );
        std::fs::write(workspace.join("auths/new.json"), r#"{"type":"codex"}"#).unwrap();
        wait_for("a file the proxy writes becomes a commit", || {
            tree(&repo).contains("auths/new.json")
        });
        let clone = cwd.join("clone");
        git::clone(&server, "tokens", &clone);
        std::fs::write(clone.join("auths/by-cli.json"), b"{}").unwrap();
        git::git(&clone, &["add", "-A"]);
        git::git(&clone, &["commit", "--quiet", "-m", "by cli"]);
        git::git(&clone, &["push", "--quiet", "origin", "main"]);
        wait_for("a commit another writer pushes becomes a file", || {
            workspace.join("auths/by-cli.json").exists()
        });
    });
    assert_eq!(code, 0, "{log}");
    assert!(
        !log.contains(git::TOKEN),
        "the token stays out of trace logs"
    );
}

#[test]
fn serve_on_a_git_remote_with_content_bootstraps_it() {
    let server = GitServer::start();
    server.create_repo("existing");
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    git::clone(&server, "existing", &clone);
    std::fs::create_dir_all(clone.join("auths")).unwrap();
    std::fs::write(clone.join("auths/existing.json"), r#"{"type":"claude"}"#).unwrap();
    git::git(&clone, &["add", "-A"]);
    git::git(&clone, &["commit", "--quiet", "-m", "tokens"]);
    git::git(&clone, &["push", "--quiet", "origin", "HEAD:main"]);
    let output = git_command(dir.path(), &server.url("existing"), git::TOKEN)
        .args(["serve", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("gitstore/auths/existing.json")).unwrap(),
        r#"{"type":"claude"}"#
    );
    assert!(!stderr.contains(git::TOKEN), "{stderr}");
}

#[test]
fn a_wrong_git_token_is_a_clear_error_and_a_non_zero_exit() {
    let server = GitServer::start();
    let url = server.create_repo("guarded");
    let dir = tempfile::tempdir().unwrap();
    let output = git_command(dir.path(), &url, "ghp_wrong_canary_4242")
        .args(["serve", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(!stderr.contains("ghp_wrong_canary_4242"), "{stderr}");
}

#[test]
fn an_unreachable_git_remote_is_a_clear_error_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = git_command(dir.path(), "http://127.0.0.1:1/r.git", "ghp-canary-991")
        .args(["serve", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(!stderr.contains("ghp-canary-991"), "{stderr}");
}

/// With or without --once: only unavailability is waited for.
#[test]
fn a_wrong_database_password_is_a_clear_error_and_a_non_zero_exit() {
    let server = PostgresServer::start();
    for args in [&["serve", "--once"][..], &["serve"]] {
        let dir = tempfile::tempdir().unwrap();
        let output = storehost(dir.path())
            .args(args)
            .env(
                "PGSTORE_DSN",
                server.dsn_as("storehost", "pw-canary-wrong-17"),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("authentication failed"), "{stderr}");
        assert!(!stderr.contains("tries again"), "{stderr}");
        assert!(!stderr.contains("pw-canary-wrong-17"), "{stderr}");
    }
}

#[test]
fn an_unreachable_database_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let output = storehost(dir.path())
        .args(["serve", "--once"])
        .env(
            "PGSTORE_DSN",
            "postgresql://app:pw-canary-991@127.0.0.1:1/db",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("database unreachable"), "{stderr}");
    assert!(!stderr.contains("pw-canary-991"), "{stderr}");
}

#[test]
fn inspect_describes_the_local_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.wasm");
    std::fs::write(&file, storehost::builtin::local()).unwrap();
    let output = storehost(dir.path())
        .args(["plugin", "inspect"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("contract: storehost:plugin@0.2.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("capabilities: log") || stdout.contains("capabilities: none"),
        "{stdout}"
    );
    assert!(stdout.contains("wasi:filesystem/preopens"), "{stdout}");
    assert!(stdout.contains("loadable: yes"), "{stdout}");
}

#[test]
fn inspect_refuses_what_is_not_a_plugin_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("text.wasm", b"hello".to_vec(), "not a WebAssembly file"),
        (
            "core.wasm",
            wat::parse_str("(module)").unwrap(),
            "core WebAssembly module, not a component",
        ),
        (
            "other.wasm",
            wat::parse_str("(component)").unwrap(),
            "a component of another world",
        ),
        (
            "broken.wasm",
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
            "not a valid component",
        ),
    ];
    for (name, bytes, message) in cases {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        let output = storehost(dir.path())
            .args(["plugin", "inspect", name])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
    }
    let output = storehost(dir.path())
        .args(["plugin", "inspect", "missing.wasm"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// `serve` mirroring `ws` to the local plugin (`local.wasm`) on `remote`.
const LOCAL_PLUGIN_MIRROR: [&str; 10] = [
    "--plugin",
    "local.wasm",
    "--plugin-dir",
    "remote",
    "--setting",
    "root=/store",
    "--workspace",
    "ws",
    "--poll-interval-ms",
    "100",
];

#[test]
fn serve_mirrors_an_explicit_plugin_and_status_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.wasm"), storehost::builtin::local()).unwrap();
    let args = LOCAL_PLUGIN_MIRROR;
    let (code, log) = serve_until(dir.path(), &args, "-TERM", |cwd| {
        let status = storehost(cwd)
            .args(["status", "--workspace", "ws"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(text.contains("running: yes"), "{text}");
        std::fs::write(cwd.join("ws/auths/from-proxy.json"), "{\"p\":1}").unwrap();
        let remote = cwd.join("remote/auths/from-proxy.json");
        let started = std::time::Instant::now();
        while !remote.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the watcher did not push the file"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("explicitly with --plugin"), "{log}");
    let status = storehost(dir.path())
        .args(["status", "--workspace", "ws"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for line in [
        "backend: local",
        "running: no",
        "outbox: 0",
        "conflicts: 0",
        "documents in step: 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("lineage: none"), "{text}");
}

#[test]
fn status_of_a_local_workspace() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        storehost(dir.path())
            .args(["serve", "--once"])
            .status()
            .unwrap()
            .success()
    );
    let output = storehost(dir.path()).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        text.contains("backend: local")
            && text.contains("running: no")
            && text.contains("outbox: 0"),
        "{text}"
    );
    let output = storehost(dir.path())
        .args(["status", "--workspace", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no workspace at"));
}

/// The proxy holds its file open across a pull; the host is killed (-9);
/// only then does the proxy write through that handle, into the file now in
/// the trash. The next run finds the write from the ledger's watch and keeps
/// it as a conflict copy beside the backend's version.
#[test]
fn a_late_write_made_while_the_host_was_killed_is_kept_when_it_starts_again() {
    use std::io::{Seek, Write};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.wasm"), storehost::builtin::local()).unwrap();
    let args = LOCAL_PLUGIN_MIRROR;
    let local = dir.path().join("ws/auths/t.json");
    let mut held = None;
    let (code, log) = serve_until(dir.path(), &args, "-KILL", |cwd| {
        let remote = cwd.join("remote/auths/t.json");
        std::fs::write(&local, "{\"mine\":1}").unwrap();
        wait_for("the proxy's file is pushed", || {
            std::fs::read_to_string(&remote).is_ok_and(|c| c == "{\"mine\":1}")
        });
        held = Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&local)
                .unwrap(),
        );
        std::fs::write(&remote, "{\"theirs\":1}").unwrap();
        wait_for("the trash entry of the version taken out", || {
            let listed = storehost(cwd)
                .args(["restore", "--list", "--workspace", "ws"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&listed.stdout).contains("replaced by the backend")
        });
    });
    assert_eq!(code, -1, "killed: {log}");
    let mut held = held.unwrap();
    held.set_len(0).unwrap();
    held.rewind().unwrap();
    held.write_all(b"{\"mine\":2}").unwrap();

    let conflict_copies = |cwd: &Path| -> Vec<String> {
        std::fs::read_dir(cwd.join("ws/auths"))
            .unwrap()
            .filter_map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name()?.to_str()?.to_string();
                name.starts_with("t.json.conflict-")
                    .then(|| std::fs::read_to_string(&path).unwrap())
            })
            .collect()
    };
    let (code, log) = serve_until(dir.path(), &args, "-TERM", |cwd| {
        wait_for("the late write kept as a conflict copy", || {
            conflict_copies(cwd) == ["{\"mine\":2}"]
        });
        assert_eq!(std::fs::read_to_string(&local).unwrap(), "{\"theirs\":1}");
    });
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("through a handle it held"), "{log}");
}

/// A file in the trash directory that no entry lists (an older storehost's
/// naming) is shown by `restore --list`, never hidden.
#[test]
fn restore_list_shows_trash_files_no_entry_lists() {
    let dir = tempfile::tempdir().unwrap();
    let trash = dir.path().join("ws/.storehost/trash");
    std::fs::create_dir_all(&trash).unwrap();
    let list = || {
        let listed = storehost(dir.path())
            .args(["restore", "--list", "--workspace", "ws"])
            .output()
            .unwrap();
        assert!(listed.status.success(), "{listed:?}");
        String::from_utf8_lossy(&listed.stdout).into_owned()
    };
    assert_eq!(list(), "the trash is empty\n");

    std::fs::write(trash.join("1700000000000-t.json"), "{\"old\":1}").unwrap();
    let text = list();
    assert!(text.contains("with no entry"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("1700000000000-t.json"))
        .unwrap_or_else(|| panic!("the unlisted file is not shown:\n{text}"));
    assert!(line.contains("9 bytes"), "{line}");
    assert!(!text.contains("the trash is empty"), "{text}");
    let status = storehost(dir.path())
        .args(["status", "--workspace", "ws"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("trash: 0, and 1 file with no entry"),
        "{status}"
    );
}

#[test]
fn a_version_the_remote_replaced_comes_back_with_restore() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.wasm"), storehost::builtin::local()).unwrap();
    let args = LOCAL_PLUGIN_MIRROR;
    let (code, log) = serve_until(dir.path(), &args, "-TERM", |cwd| {
        let (local, remote) = (cwd.join("ws/auths/t.json"), cwd.join("remote/auths/t.json"));
        std::fs::write(&local, "{\"mine\":1}").unwrap();
        wait_for("the proxy's file is pushed", || {
            std::fs::read_to_string(&remote).is_ok_and(|c| c == "{\"mine\":1}")
        });
        // Another writer replaces it on the remote; the host takes it.
        std::fs::write(&remote, "{\"theirs\":1}").unwrap();
        wait_for("the remote version arrives", || {
            std::fs::read_to_string(&local).is_ok_and(|c| c == "{\"theirs\":1}")
        });
        let list = || {
            let listed = storehost(cwd)
                .args(["restore", "--list", "--workspace", "ws"])
                .output()
                .unwrap();
            assert!(listed.status.success(), "{listed:?}");
            String::from_utf8_lossy(&listed.stdout).into_owned()
        };
        // The file is in place a moment before the ledger commits its
        // trash entry.
        wait_for("the trash entry", || list().contains("auths/t.json"));
        let text = list();
        let line = text
            .lines()
            .find(|l| l.contains("auths/t.json") && l.contains("replaced by the backend"))
            .unwrap_or_else(|| panic!("no trash entry for t.json in:\n{text}"));
        let id = line.split_whitespace().next().unwrap();
        let status = storehost(cwd)
            .args(["status", "--workspace", "ws"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&status.stdout).contains("trash: 1"));
        let restored = storehost(cwd)
            .args(["restore", id, "--workspace", "ws"])
            .output()
            .unwrap();
        assert!(
            restored.status.success(),
            "{}",
            String::from_utf8_lossy(&restored.stderr)
        );
        assert_eq!(std::fs::read_to_string(&local).unwrap(), "{\"mine\":1}");
        wait_for("the restored version is pushed", || {
            std::fs::read_to_string(&remote).is_ok_and(|c| c == "{\"mine\":1}")
        });
        let missing = storehost(cwd)
            .args(["restore", "999999", "--workspace", "ws"])
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no trash entry 999999"));
    });
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_wiped_remote_is_refused_and_written_back_until_an_operator_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.wasm"), storehost::builtin::local()).unwrap();
    let mut command = storehost(dir.path());
    command.env("STOREHOST_POLL_INTERVAL_MS", "100");
    let (code, log) = serve_with(command, dir.path(), &LOCAL_PLUGIN_MIRROR, "-TERM", |cwd| {
        let ids: Vec<String> = (0..5).map(|i| format!("w{i}.json")).collect();
        for id in &ids {
            std::fs::write(cwd.join("ws/auths").join(id), "{\"v\":1}").unwrap();
        }
        let on_remote = |id: &String| cwd.join("remote/auths").join(id).exists();
        wait_for("the files are pushed", || ids.iter().all(on_remote));
        let wipe = || {
            for id in &ids {
                std::fs::remove_file(cwd.join("remote/auths").join(id)).unwrap();
            }
        };
        wipe();
        wait_for("the files are written back", || ids.iter().all(on_remote));
        assert!(ids.iter().all(|id| cwd.join("ws/auths").join(id).exists()));
        let status = storehost(cwd)
            .args(["status", "--workspace", "ws"])
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&status.stdout).into_owned();
        assert!(
            status.contains("remote deletions refused: 5 documents"),
            "{status}"
        );
        let accepted = storehost(cwd)
            .args(["accept-remote-deletions", "--workspace", "ws"])
            .output()
            .unwrap();
        assert!(accepted.status.success(), "{accepted:?}");
        wipe();
        wait_for("the accepted wipe reaches the workspace", || {
            ids.iter().all(|id| !cwd.join("ws/auths").join(id).exists())
        });
        // Each file leaves the workspace a moment before its trash entry
        // is written, so the last entry may still be on its way.
        wait_for("the five removed files are listed in the trash", || {
            let status = storehost(cwd)
                .args(["status", "--workspace", "ws"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&status.stdout).contains("trash: 5")
        });
    });
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("REFUSING to mirror deletions from the backend"),
        "{log}"
    );
}

#[test]
fn a_bad_numeric_setting_names_its_variable_and_creates_nothing() {
    let cases = [
        ("STOREHOST_MAX_DELETE_SHARE", "nan", "out of range"),
        ("STOREHOST_MAX_DELETE_SHARE", "1.5", "out of range"),
        ("STOREHOST_PLUGIN_MEMORY_MIB", "-1", "not a number"),
        ("STOREHOST_PLUGIN_MEMORY_MIB", "0", "out of range"),
        ("STOREHOST_POLL_INTERVAL_MS", "abc", "not a number"),
        ("STOREHOST_TRASH_DAYS", "99999", "out of range"),
    ];
    for (variable, value, problem) in cases {
        let dir = tempfile::tempdir().unwrap();
        let output = storehost(dir.path())
            .args(["serve", "--once"])
            .env(variable, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{variable}={value}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("{variable}=\"{value}\" is {problem}")),
            "{variable}={value}: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{variable}={value}: nothing may be created"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let output = storehost(dir.path())
        .args(["serve", "--once", "--plugin-memory-mib", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--plugin-memory-mib=\"0\" is out of range"),
        "{stderr}"
    );
}

#[test]
fn a_watched_file_caught_mid_write_is_taken_once_complete_without_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local.wasm"), storehost::builtin::local()).unwrap();
    let (code, log) = serve_until(dir.path(), &LOCAL_PLUGIN_MIRROR, "-TERM", |cwd| {
        use std::io::Write;
        let path = cwd.join("ws/auths/slow.json");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"{\"type\":").unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        file.write_all(b"\"claude\"}").unwrap();
        drop(file);
        wait_for("the completed file is pushed", || {
            std::fs::read_to_string(cwd.join("remote/auths/slow.json"))
                .is_ok_and(|c| c == "{\"type\":\"claude\"}")
        });
        std::fs::write(cwd.join("ws/auths/broken.json"), "{not json").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
    });
    assert_eq!(code, 0, "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.iter().all(|l| !l.contains("slow.json")),
        "a write under way is not an error: {errors:?}"
    );
    assert!(
        errors.iter().any(|l| l.contains("broken.json")),
        "a file that stays invalid is reported: {log}"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_manifest_chooses_pins_and_grants_the_plugin_and_beats_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = storehost::builtin::local();
    std::fs::write(dir.path().join("local.wasm"), wasm).unwrap();
    std::fs::write(dir.path().join("token"), "sk-canary-file-5150\n").unwrap();
    let manifest = format!(
        "plugin:\n  file: ./local.wasm\n  sha256: {}\nsettings: {{ root: /store }}\n\
         grants:\n  directory: ./remote\n  secrets:\n    token: {{ file: token }}\n    \
         other: {{ env: MY_PLUGIN_SECRET }}\nworkspace: ./ws\n",
        sha256_hex(wasm)
    );
    // Found as ./storehost.yaml without being named.
    std::fs::write(dir.path().join("storehost.yaml"), manifest).unwrap();
    let output = storehost(dir.path())
        .args(["serve", "--once"])
        .env("RUST_LOG", "debug")
        .env("MY_PLUGIN_SECRET", "sk-canary-env-6160")
        .env("PGSTORE_DSN", "postgres://u:p@127.0.0.1:1/db")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("backend chosen by a plugin manifest"),
        "{stderr}"
    );
    assert!(dir.path().join("ws/config/config.yaml").is_file());
    assert!(
        dir.path().join("remote/config/config.yaml").is_file(),
        "the granted directory is the plugin's store"
    );
    for canary in ["sk-canary-file-5150", "sk-canary-env-6160"] {
        assert!(!stderr.contains(canary), "{stderr}");
    }
}

#[test]
fn a_bad_manifest_is_one_error_naming_the_key_before_anything_is_created() {
    let wasm = storehost::builtin::local();
    let pin = sha256_hex(b"another component");
    let cases = [
        (
            "plugin: { file: local.wasm }\ngrant: {}\n".to_string(),
            "manifest key `grant` is not known",
        ),
        (
            format!("plugin: {{ file: local.wasm, sha256: {pin} }}\nworkspace: ws\n"),
            "refusing to load it",
        ),
        (
            "plugin: { file: local.wasm }\ngrants: { secrets: { dsn: { env: NOT_SET_ANYWHERE } } }\nworkspace: ws\n".into(),
            "`grants.secrets.dsn.env`: the environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "plugin: { file: local.wasm }\ngrants: { secrets: { dsn: { file: nowhere } } }\nworkspace: ws\n".into(),
            "`grants.secrets.dsn.file`: cannot read the secret file",
        ),
        (
            "plugin: { file: missing.wasm }\nworkspace: ws\n".into(),
            "`plugin.file`: cannot read",
        ),
        (
            "plugin: { file: local.wasm }\ngrants: { capabilities: [sql, http] }\nworkspace: ws\n".into(),
            "`http` is not a capability",
        ),
    ];
    for (manifest, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("local.wasm"), wasm).unwrap();
        std::fs::write(dir.path().join("m.yaml"), &manifest).unwrap();
        let output = storehost(dir.path())
            .args(["serve", "--once"])
            .env("STOREHOST_MANIFEST", "m.yaml")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{manifest}: {stderr}");
        assert!(stderr.contains(expected), "{manifest}: {stderr}");
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["local.wasm", "m.yaml"],
            "{manifest}: nothing created"
        );
    }
}

/// The shared target directory, so the scaffold's dependencies build once.
fn scaffold_target_dir() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("scaffold")
}

#[test]
fn plugin_new_writes_a_crate_that_builds_and_passes_plugin_test_with_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let created = storehost(dir.path())
        .args(["plugin", "new", "acme-files", "--sdk"])
        .arg(root.join("sdk"))
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let crate_dir = dir.path().join("acme-files");
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
    for step in [
        "cargo build --release --target wasm32-wasip2",
        "storehost plugin test target/wasm32-wasip2/release/acme_files.wasm",
        "storehost serve --manifest storehost.yaml",
    ] {
        assert!(readme.contains(step), "the README lacks {step:?}");
    }

    // The workspace's lock pins what the built-in plugins were built with.
    std::fs::copy(root.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = scaffold_target_dir();
    let built = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = crate_dir.join("target/wasm32-wasip2/release/acme_files.wasm");
    std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
    std::fs::copy(target.join("wasm32-wasip2/release/acme_files.wasm"), &wasm).unwrap();

    let tested = storehost(&crate_dir)
        .args([
            "plugin",
            "test",
            "target/wasm32-wasip2/release/acme_files.wasm",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&tested.stdout);
    assert_eq!(tested.status.code(), Some(0), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");

    // The generated manifest parses and grants what the plugin needs.
    let with_manifest = storehost(&crate_dir)
        .args(["plugin", "test", "--manifest", "storehost.yaml"])
        .arg(&wasm)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&with_manifest.stdout);
    assert_eq!(
        with_manifest.status.code(),
        Some(0),
        "{report}{}",
        String::from_utf8_lossy(&with_manifest.stderr)
    );
    scaffold_reads_no_document_through_a_link(&std::fs::read(&wasm).unwrap());
}

/// As the listing never shows a link, a read of its key finds nothing
/// rather than another file's content, and no document beneath a linked
/// directory is read, written or removed through it.
fn scaffold_reads_no_document_through_a_link(wasm: &[u8]) {
    use storehost::capabilities::Grants;
    use storehost::model::{Change, Key, Precondition};
    use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime};
    let store = tempfile::tempdir().unwrap();
    let auths = store.path().join("auths");
    std::fs::create_dir_all(auths.join("team")).unwrap();
    std::fs::write(auths.join("real.json"), r#"{"real":1}"#).unwrap();
    std::fs::write(auths.join("team/a.json"), r#"{"team":1}"#).unwrap();
    std::os::unix::fs::symlink("real.json", auths.join("link.json")).unwrap();
    std::os::unix::fs::symlink("team", auths.join("linked")).unwrap();
    let granted = |dir: &Path| {
        let spec = PluginSpec {
            name: "acme-files".into(),
            grants: Grants::minimal().with_directory(dir),
            limits: Limits::default(),
            settings: Vec::new(),
        };
        Plugin::load(&Runtime::shared().unwrap(), spec, wasm).unwrap()
    };
    let plugin = granted(store.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = [
        Key::auth("link.json"),
        Key::auth("real.json"),
        Key::auth("linked/a.json"),
    ];
    let read = runtime.block_on(plugin.read(&keys)).unwrap();
    assert!(read[0].is_none(), "{:?}", read[0]);
    assert_eq!(read[1].as_ref().unwrap().content, br#"{"real":1}"#);
    assert!(read[2].is_none(), "{:?}", read[2]);
    let listed = runtime.block_on(plugin.list()).unwrap();
    let ids: Vec<_> = listed.iter().map(|e| e.key.id.as_str()).collect();
    assert_eq!(ids, ["real.json", "team/a.json"]);
    let put = Change::Put {
        key: Key::auth("linked/a.json"),
        content: br#"{"new":1}"#.to_vec(),
        precondition: Precondition::Any,
    };
    let error = runtime.block_on(plugin.apply(vec![put], "t")).unwrap_err();
    assert!(error.to_string().contains("symlinked directory"), "{error}");
    let remove = Change::Remove {
        key: Key::auth("linked/a.json"),
        precondition: Precondition::Any,
    };
    runtime.block_on(plugin.apply(vec![remove], "t")).unwrap();
    let team = std::fs::read(auths.join("team/a.json")).unwrap();
    assert_eq!(team, br#"{"team":1}"#);

    // Nor through one swapped in while it reads: authors start from this.
    let racing = tempfile::tempdir().unwrap();
    let plugin = granted(racing.path());
    runtime.block_on(
        storehost_tests::links::assert_reads_never_follow_a_swapped_link(
            &plugin,
            racing.path(),
            3000,
        ),
    );
}

#[test]
fn plugin_new_refuses_a_bad_name_or_a_directory_in_use_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["Acme", "../escape", "1st", "with space"] {
        let output = storehost(dir.path())
            .args(["plugin", "new", name])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("not a crate name"));
    }
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/keep.txt"), b"mine").unwrap();
    let output = storehost(dir.path())
        .args(["plugin", "new", "acme", "--dir", "taken"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not empty"));
    let output = storehost(dir.path())
        .args(["plugin", "new", "acme", "--sdk", "taken"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no Cargo.toml"));
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["taken"]);
    assert_eq!(
        std::fs::read(dir.path().join("taken/keep.txt")).unwrap(),
        b"mine"
    );
}
