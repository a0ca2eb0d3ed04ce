//! A throwaway Git smart-HTTP server: `git http-backend` (shipped with
//! git) run as CGI behind a small HTTP server on loopback that checks
//! basic auth, serving bare repositories from a temporary directory.

use super::front::TcpFront;
use super::{ServiceError, throwaway_secret};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub const USERNAME: &str = "storehost-bot";
/// The token the servers accept unless started with another.
pub const TOKEN: &str = "ghp_StorehostTestToken_5b8e2f";
const INSTALL: &str = "`apt-get install git`";

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
    token: String,
    /// Stops the serving thread, which is joined.
    serving: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
    pub counters: Arc<Counters>,
}

impl std::fmt::Debug for GitServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitServer")
            .field("port", &self.front.port())
            .finish_non_exhaustive()
    }
}

/// `git http-backend`, or an error that says how to install it.
fn http_backend() -> Result<PathBuf, ServiceError> {
    let missing = ServiceError::Missing {
        program: "git http-backend",
        install: INSTALL,
    };
    let Ok(output) = Command::new("git").arg("--exec-path").output() else {
        return Err(missing);
    };
    let backend =
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("git-http-backend");
    if output.status.success() && backend.is_file() {
        Ok(backend)
    } else {
        Err(missing)
    }
}

impl GitServer {
    /// A server that accepts [`USERNAME`] and [`TOKEN`].
    pub fn start() -> Result<GitServer, ServiceError> {
        Self::start_with_token(TOKEN.to_string())
    }

    /// A server that accepts [`USERNAME`] and a token of its own (see
    /// [`GitServer::token`]).
    pub fn start_with_fresh_token() -> Result<GitServer, ServiceError> {
        Self::start_with_token(throwaway_secret("ghp"))
    }

    fn start_with_token(token: String) -> Result<GitServer, ServiceError> {
        let dir =
            tempfile::tempdir().map_err(ServiceError::io("creating a temporary directory"))?;
        let mut server = GitServer {
            dir,
            front: TcpFront::start(0)?,
            token,
            serving: None,
            counters: Arc::default(),
        };
        std::fs::create_dir_all(server.root())
            .map_err(ServiceError::io("creating the repositories' directory"))?;
        server.resume()?;
        Ok(server)
    }

    /// The token this server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where the bare repositories are.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.root().join(format!("{name}.git"))
    }

    /// Creates an empty bare repository whose default branch is `main`;
    /// returns its URL (without credentials).
    pub fn create_repo(&self, name: &str) -> Result<String, ServiceError> {
        let output = Command::new("git")
            .args(["init", "--quiet", "--bare", "-b", "main"])
            .arg(format!("{name}.git"))
            .current_dir(self.root())
            .output()
            .map_err(ServiceError::io("running git init"))?;
        if !output.status.success() {
            return Err(ServiceError::failed(
                format!("git init {name}.git"),
                String::from_utf8_lossy(&output.stderr),
            ));
        }
        Ok(self.url(name))
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.front.port())
    }

    pub fn port(&self) -> u16 {
        self.front.port()
    }

    /// Stops serving (an outage); `resume` serves again on the same port.
    pub fn stop(&mut self) {
        self.front.down();
        if let Some((stop, thread)) = self.serving.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }

    pub fn resume(&mut self) -> Result<(), ServiceError> {
        // A new port of its own each time (0: nothing to race for); the
        // front keeps the public one.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(ServiceError::io("binding the git server's port"))?;
        let port = listener
            .local_addr()
            .map_err(ServiceError::io("reading the git server's port"))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(ServiceError::io("setting the listener nonblocking"))?;
        let backend = Arc::new(Backend {
            program: http_backend()?,
            root: self.root(),
            expected_authorization: basic_authorization(USERNAME, &self.token),
            counters: self.counters.clone(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ServiceError::io("starting the git server's runtime"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                tokio::select! {
                    _ = serve(listener, backend) => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        self.serving = Some((stop, thread));
        self.front.up(port);
        Ok(())
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn basic_authorization(user: &str, token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
}

struct Backend {
    program: PathBuf,
    root: PathBuf,
    expected_authorization: String,
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
        if !self.authorized(&request) {
            self.counters.unauthorized.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("WWW-Authenticate", "Basic realm=\"git\"")
                .body(Full::new(Bytes::from_static(b"authentication required\n")))
                .unwrap_or_default();
        }
        if request.uri().path().ends_with("/git-receive-pack") {
            self.counters.pushes.fetch_add(1, Ordering::SeqCst);
        }
        match self.cgi(request).await {
            Ok(response) => response,
            Err(e) => Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Full::new(Bytes::from(format!("{e}\n"))))
                .unwrap_or_default(),
        }
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .is_some_and(|given| given.trim() == self.expected_authorization)
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
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&body).await?;
        }
        let output = child.wait_with_output().await?;
        Ok(cgi_response(&output.stdout))
    }
}

/// CGI output: headers (with an optional `Status:`), a blank line, the body.
fn cgi_response(output: &[u8]) -> Response<Full<Bytes>> {
    let (head, body) = split_cgi_output(output);
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
        .unwrap_or_default()
}

fn split_cgi_output(output: &[u8]) -> (&[u8], &[u8]) {
    let gap = |pattern: &[u8]| {
        output
            .windows(pattern.len())
            .position(|w| w == pattern)
            .map(|at| (at, pattern.len()))
    };
    match gap(b"\r\n\r\n").or_else(|| gap(b"\n\n")) {
        Some((at, len)) => (&output[..at], &output[at + len..]),
        None => (&output[..0], output),
    }
}
