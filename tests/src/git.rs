//! A real Git smart-HTTP server for tests: `git http-backend` (shipped with
//! git) run as CGI behind a small HTTP server on a free loopback port that
//! checks basic auth, serving bare repositories from a temp dir. Install
//! git with `bash .ci/install.sh` (Debian's `git`).

use crate::tcp_front::TcpFront;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use storehost::builtin::Places;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::{Plugin, PluginSpec, Runtime};
use storehost::selection::{BackendChoice, BackendKind, GitSettings};
use storehost::{Storehost, StorehostError};
use tokio::io::AsyncWriteExt;

pub const USERNAME: &str = "storehost-bot";
pub const TOKEN: &str = "ghp_StorehostTestToken_5b8e2f";

/// What the server saw.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicUsize,
    /// Requests answered 401 (no or wrong credentials).
    pub unauthorized: AtomicUsize,
    /// Pushes that reached `git-receive-pack`.
    pub pushes: AtomicUsize,
}

pub struct GitServer {
    dir: tempfile::TempDir,
    /// The public port, kept across stop and resume.
    front: TcpFront,
    /// Stops the serving thread, which is joined.
    serving: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
    pub counters: Arc<Counters>,
}

/// `git http-backend`, or a failure that says how to install it.
fn http_backend() -> PathBuf {
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let backend = exec_path.map(|dir| dir.join("git-http-backend"));
    match backend {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "the Git test server needs `git http-backend`, which ships with git: \
             install it with `apt-get install git` (or run `bash .ci/install.sh`)"
        ),
    }
}

impl GitServer {
    pub fn start() -> GitServer {
        let mut server = GitServer {
            dir: tempfile::tempdir().unwrap(),
            front: TcpFront::start(0),
            serving: None,
            counters: Arc::default(),
        };
        std::fs::create_dir_all(server.root()).unwrap();
        server.resume();
        server
    }

    /// Where the bare repositories are.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.root().join(format!("{name}.git"))
    }

    /// Creates an empty bare repository whose default branch is `main`;
    /// returns its URL (without credentials).
    pub fn create_repo(&self, name: &str) -> String {
        git(
            &self.root(),
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                &format!("{name}.git"),
            ],
        );
        self.url(name)
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.front.port())
    }

    /// The URL with the test credentials in it, for the `git` CLI in tests
    /// (never given to storehost).
    pub fn url_with_credentials(&self, name: &str) -> String {
        format!(
            "http://{USERNAME}:{TOKEN}@127.0.0.1:{}/{name}.git",
            self.front.port()
        )
    }

    /// A TLS front for this server (see [`crate::tls_front`]): its port and
    /// the CA's PEM file.
    pub fn tls_front(&self) -> (u16, PathBuf) {
        crate::tls_front::start(self.dir.path(), self.front.port())
    }

    /// Stops serving (an outage); `resume` serves again on the same port.
    pub fn stop(&mut self) {
        self.front.down();
        if let Some((stop, thread)) = self.serving.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }

    pub fn resume(&mut self) {
        // A new port of its own each time (0: nothing to race for); the
        // front keeps the public one.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let backend = Arc::new(Backend {
            program: http_backend(),
            root: self.root(),
            counters: self.counters.clone(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = serve(listener, backend) => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        self.serving = Some((stop, thread));
        self.front.up(port);
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Backend {
    program: PathBuf,
    root: PathBuf,
    counters: Arc<Counters>,
}

async fn serve(listener: tokio::net::TcpListener, backend: Arc<Backend>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let backend = backend.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let backend = backend.clone();
                async move { Ok::<_, std::convert::Infallible>(backend.answer(request).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

impl Backend {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        self.counters.requests.fetch_add(1, Ordering::SeqCst);
        if !authorized(&request) {
            self.counters.unauthorized.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("WWW-Authenticate", "Basic realm=\"git\"")
                .body(Full::new(Bytes::from_static(b"authentication required\n")))
                .unwrap();
        }
        if request.uri().path().ends_with("/git-receive-pack") {
            self.counters.pushes.fetch_add(1, Ordering::SeqCst);
        }
        match self.cgi(request).await {
            Ok(response) => response,
            Err(e) => Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Full::new(Bytes::from(format!("{e}\n"))))
                .unwrap(),
        }
    }

    /// Runs `git http-backend` for one request (RFC 3875 CGI).
    async fn cgi(&self, request: Request<Incoming>) -> std::io::Result<Response<Full<Bytes>>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let mut child = tokio::process::Command::new(&self.program)
            .env_clear()
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", parts.method.as_str())
            .env("PATH_INFO", parts.uri.path())
            .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
            .env("CONTENT_TYPE", header("content-type"))
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
            .env("GIT_PROTOCOL", header("git-protocol"))
            .env("REMOTE_USER", USERNAME)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(&body).await?;
        drop(stdin);
        let output = child.wait_with_output().await?;
        Ok(cgi_response(&output.stdout))
    }
}

fn authorized(request: &Request<Incoming>) -> bool {
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{TOKEN}"));
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|given| given.trim() == expected)
}

/// CGI output: headers (with an optional `Status:`), a blank line, the body.
fn cgi_response(output: &[u8]) -> Response<Full<Bytes>> {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let (head, body) = match split {
        Some((at, gap)) => (&output[..at], &output[at + gap..]),
        None => (&output[..0], output),
    };
    let mut response = Response::builder();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
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
