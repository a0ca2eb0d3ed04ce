//! Real backend servers on loopback, for `plugin test --service` and for
//! this project's own tests: PostgreSQL (`initdb` + `pg_ctl`), an
//! S3-compatible server (`s3s-fs`) and a Git smart-HTTP server
//! (`git http-backend` behind basic auth). Each lives in a temporary
//! directory, sits behind a [`front::TcpFront`] that keeps its public port
//! for its whole life, and is stopped when dropped. A program that is not
//! installed is an error that says how to install it.

pub mod azurite;
pub mod front;
pub mod git;
mod listener;
pub mod object;
pub mod postgres;

use crate::builtin::Places;
use crate::capabilities::secrets::SecretValue;
use crate::conformance::StoreTraits;
use crate::runtime::PluginSpec;
use crate::selection::{
    BackendChoice, GitSettings, ObjectEndpoint, ObjectSettings, PostgresSettings,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use azurite::AzuriteServer;
pub use git::GitServer;
pub use object::ObjectServer;
pub use postgres::PostgresServer;

/// Why a test server could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{program} was not found: install it with {install}")]
    Missing {
        program: &'static str,
        install: &'static str,
    },
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl ServiceError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServiceError {
        let what = what.into();
        move |source| ServiceError::Io { what, source }
    }

    fn failed(what: impl Into<String>, detail: impl Into<String>) -> ServiceError {
        ServiceError::Failed {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// A loopback port that was free a moment ago, for a server that binds
/// its port itself (the front in front of it is what clients use).
pub fn free_port() -> Result<u16, ServiceError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(ServiceError::io("binding port 0"))?;
    let port = listener
        .local_addr()
        .map_err(ServiceError::io("reading a bound port"))?
        .port();
    Ok(port)
}

/// `name` in `PATH` or in `~/.cargo/bin` (where `cargo install` puts it).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_bin = std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin"));
    path.into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A secret for a throwaway server: unique per call, never reused.
fn throwaway_secret(prefix: &str) -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!("{nanos}-{}-{:p}", std::process::id(), &nanos);
    format!("{prefix}-{}", &hex::encode(Sha256::digest(seed))[..24])
}

/// Polls `ready` every 20 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// How long a server may take to listen.
const START_LIMIT: Duration = Duration::from_secs(15);

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Binds `port` the moment it is free and holds it, as another test or
/// program may; `None` if it stayed taken for [`START_LIMIT`].
#[cfg(test)]
fn take_once_free(port: u16) -> std::thread::JoinHandle<Option<std::net::TcpListener>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < START_LIMIT {
            if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return Some(listener);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    })
}

/// True once `child` itself listens on `port`; false when it exited first
/// (the port was taken) or did not start in time. An open port alone is no
/// proof: whoever took the port first answers there while the child is
/// still starting, about to fail.
fn child_listening(child: &mut std::process::Child, port: u16) -> bool {
    let pid = child.id();
    let exited = |child: &mut std::process::Child| child.try_wait().ok().flatten().is_some();
    wait_until(START_LIMIT, || {
        exited(child) || listener::held_by(pid, port)
    }) && !exited(child)
}

/// Starts a server with `spawn(port)` on a free port, again on another one
/// if someone took that port first; the server and its port once it listens.
fn spawn_on_free_port(
    what: &str,
    log_path: &Path,
    spawn: impl FnMut(u16, std::fs::File) -> Result<std::process::Child, ServiceError>,
) -> Result<(u16, std::process::Child), ServiceError> {
    spawn_listening(what, log_path, free_port, spawn)
}

/// The same, on the ports `next_port` offers.
fn spawn_listening(
    what: &str,
    log_path: &Path,
    mut next_port: impl FnMut() -> Result<u16, ServiceError>,
    mut spawn: impl FnMut(u16, std::fs::File) -> Result<std::process::Child, ServiceError>,
) -> Result<(u16, std::process::Child), ServiceError> {
    for _attempt in 0..START_ATTEMPTS {
        let port = next_port()?;
        let log =
            std::fs::File::create(log_path).map_err(ServiceError::io("creating the server log"))?;
        let mut child = spawn(port, log)?;
        if child_listening(&mut child, port) {
            return Ok((port, child));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    Err(ServiceError::failed(
        format!("starting {what}"),
        format!("see {}", log_path.display()),
    ))
}

/// How many ports a server is tried on before its start is a failure.
const START_ATTEMPTS: usize = 10;

/// The backends `plugin test --service` can start a server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKind {
    Postgres,
    Object,
    Git,
}

impl ServiceKind {
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Postgres => "postgres",
            ServiceKind::Object => "object",
            ServiceKind::Git => "git",
        }
    }

    /// What the conformance kit may assume of this kind's server: s3s-fs
    /// checks a write's condition without holding the object.
    pub fn store_traits(self) -> StoreTraits {
        StoreTraits {
            atomic_conditional_writes: self != ServiceKind::Object,
        }
    }
}

/// A test server of one kind, running, and the backend choice that
/// reaches it (endpoint and credentials as the built-in gets them).
pub struct RunningService {
    /// Kept only to be stopped when this is dropped.
    _server: Box<dyn std::any::Any + Send>,
    choice: BackendChoice,
    git_cache: PathBuf,
}

/// Starts `kind`'s server; a Git plugin keeps its clone under `scratch`.
pub fn start_service(kind: ServiceKind, scratch: &Path) -> Result<RunningService, ServiceError> {
    let (server, choice) = match kind {
        ServiceKind::Postgres => {
            let server = PostgresServer::start(None)?;
            let choice = BackendChoice::Postgres(PostgresSettings {
                dsn: SecretValue::new(server.dsn()),
                schema: SERVICE_STORE.into(),
            });
            (Box::new(server) as Box<dyn std::any::Any + Send>, choice)
        }
        ServiceKind::Object => {
            let server = ObjectServer::start()?;
            let endpoint = ObjectEndpoint::parse(&server.endpoint())
                .map_err(|e| ServiceError::failed("the test server's endpoint", e.to_string()))?;
            let choice = BackendChoice::Object(ObjectSettings {
                endpoint,
                bucket: SERVICE_STORE.into(),
                region: "us-east-1".into(),
                access_key: SecretValue::new(object::ACCESS_KEY.to_string()),
                secret_key: SecretValue::new(object::SECRET_KEY.to_string()),
            });
            (Box::new(server) as _, choice)
        }
        ServiceKind::Git => {
            let server = GitServer::start_with_fresh_token()?;
            let choice = BackendChoice::Git(GitSettings {
                url: server.create_repo(SERVICE_STORE)?,
                username: git::USERNAME.into(),
                token: SecretValue::new(server.token().to_string()),
                branch: None,
                squash: false,
            });
            (Box::new(server) as _, choice)
        }
    };
    Ok(RunningService {
        _server: server,
        choice,
        git_cache: scratch.join("git"),
    })
}

/// The schema, bucket or repository a service's plugin is pointed at.
const SERVICE_STORE: &str = "conformance";

impl RunningService {
    /// What the built-in plugin of this kind is granted and told here.
    pub fn spec(&self) -> PluginSpec {
        let places = Places {
            store: Path::new(""),
            git_cache: &self.git_cache,
        };
        crate::builtin::spec(&self.choice, places)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};

    /// A server that cannot bind its port and is slow to say so, as node
    /// is: it never listens and exits a moment later.
    fn slow_to_fail(log: std::fs::File) -> Result<std::process::Child, ServiceError> {
        Command::new("sleep")
            .arg("0.3")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(ServiceError::io("starting sleep"))
    }

    /// A server that listens on `port` until killed.
    fn listening_on(port: u16, log: std::fs::File) -> Result<std::process::Child, ServiceError> {
        let script = "import socket, sys, time\n\
                      s = socket.socket()\n\
                      s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                      s.listen()\n\
                      time.sleep(60)\n";
        Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(ServiceError::io(
                "starting python3 (install it with apt-get install python3)",
            ))
    }

    #[test]
    fn a_server_whose_port_someone_else_listens_on_has_not_started() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let log = tempfile::tempdir().unwrap();
        let started = spawn_listening(
            "a server",
            &log.path().join("server.log"),
            || Ok(port),
            |_, log| slow_to_fail(log),
        );
        let Err(error) = started else {
            panic!("the other process's listener was taken for the server's");
        };
        assert!(
            error.to_string().contains("starting a server failed"),
            "{error}"
        );
    }

    #[test]
    fn a_server_is_tried_again_on_another_port_when_its_first_is_taken() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let mut offers = vec![free_port().unwrap(), taken_port];
        let log = tempfile::tempdir().unwrap();
        let (port, mut child) = spawn_listening(
            "a server",
            &log.path().join("server.log"),
            || Ok(offers.pop().unwrap()),
            |port, log| {
                if port == taken_port {
                    slow_to_fail(log)
                } else {
                    listening_on(port, log)
                }
            },
        )
        .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_ne!(port, taken_port);
        assert!(offers.is_empty(), "both ports were offered");
    }
}
