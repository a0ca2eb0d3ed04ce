//! A real Git smart-HTTP server for tests: the product's own throwaway
//! server ([`storehost::test_servers::GitServer`], `git http-backend` behind
//! basic auth), failing the test when it cannot start, plus the `git` CLI
//! and a TLS front. Install git with `bash .ci/install.sh` (Debian's `git`).

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use storehost::builtin::Places;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::{Plugin, PluginSpec, Runtime};
use storehost::selection::{BackendChoice, BackendKind, GitSettings};
pub use storehost::test_servers::git::{Counters, TOKEN, USERNAME};
use storehost::{Storehost, StorehostError};

pub struct GitServer(storehost::test_servers::GitServer);

impl Deref for GitServer {
    type Target = storehost::test_servers::GitServer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for GitServer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl GitServer {
    pub fn start() -> GitServer {
        GitServer(storehost::test_servers::GitServer::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Serves again after `stop`, on the same port.
    pub fn resume(&mut self) {
        self.0.resume().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Creates an empty bare repository whose default branch is `main`;
    /// returns its URL (without credentials).
    pub fn create_repo(&self, name: &str) -> String {
        self.0.create_repo(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The URL with the test credentials in it, for the `git` CLI in tests
    /// (never given to storehost).
    pub fn url_with_credentials(&self, name: &str) -> String {
        format!(
            "http://{USERNAME}:{TOKEN}@127.0.0.1:{}/{name}.git",
            self.port()
        )
    }

    /// A TLS front for this server (see [`crate::tls_front`]): its port and
    /// the CA's PEM file.
    pub fn tls_front(&self) -> (u16, PathBuf) {
        crate::tls_front::start(self.dir(), self.port())
    }
}

/// Runs the `git` CLI in `dir`; panics with its output when it fails.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "someone")
        .env("GIT_AUTHOR_EMAIL", "someone@example.com")
        .env("GIT_COMMITTER_NAME", "someone")
        .env("GIT_COMMITTER_EMAIL", "someone@example.com")
        .output()
        .expect("running git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `git` output as trimmed text.
pub fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&git(dir, args).stdout)
        .trim()
        .to_string()
}

/// The built-in git plugin on `url`, keeping its repository under
/// `git_dir`, with the test credentials.
pub fn plugin(url: &str, git_dir: &Path) -> Plugin {
    plugin_with(url, git_dir, TOKEN, &[])
}

pub fn plugin_with(url: &str, git_dir: &Path, token: &str, settings: &[(&str, &str)]) -> Plugin {
    let mut spec = spec(url, git_dir, token);
    spec.settings
        .extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let component = storehost::builtin::component(BackendKind::Git).unwrap();
    Plugin::load(&Runtime::shared().unwrap(), spec, component).unwrap()
}

/// What a git plugin is granted and given for `url`: the capability, that
/// remote, `git_dir` for its repository, `token`, and the test user.
pub fn spec(url: &str, git_dir: &Path, token: &str) -> PluginSpec {
    let choice = BackendChoice::Git(GitSettings {
        url: url.to_string(),
        username: USERNAME.to_string(),
        token: SecretValue::new(token.to_string()),
        branch: None,
        squash: false,
    });
    let places = Places {
        store: Path::new(""),
        git_cache: git_dir,
    };
    storehost::builtin::spec(&choice, places)
}

/// A host chosen from `GITSTORE_*` variables as users set them (the test
/// credentials unless `vars` names others), mirroring `workspace`.
pub async fn try_host(
    vars: &[(&str, &str)],
    workspace: &Path,
    poll: Duration,
) -> Result<Storehost, StorehostError> {
    let defaults = [
        ("GITSTORE_GIT_USERNAME", USERNAME),
        ("GITSTORE_GIT_TOKEN", TOKEN),
    ];
    crate::host_from_env(&defaults, vars, workspace, poll).await
}

/// [`try_host`] on `url`.
pub async fn host(url: &str, workspace: &Path, poll: Duration) -> Storehost {
    try_host(&[("GITSTORE_GIT_URL", url)], workspace, poll)
        .await
        .unwrap()
}

/// Clones `url` (with credentials) into `dir` with the git CLI.
pub fn clone(server: &GitServer, name: &str, dir: &Path) {
    let parent = dir.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    git(
        parent,
        &[
            "clone",
            "--quiet",
            &server.url_with_credentials(name),
            dir.file_name().unwrap().to_str().unwrap(),
        ],
    );
}
