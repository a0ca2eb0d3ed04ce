//! A throwaway PostgreSQL server: `initdb` in a temporary directory with
//! password authentication, started by `pg_ctl` on loopback behind a front
//! that keeps its port across stop and resume. Needs Debian's `postgresql`
//! package.

use super::front::TcpFront;
use super::{START_ATTEMPTS, ServiceError, free_port, throwaway_secret};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};

const INSTALL: &str = "`apt-get install postgresql`";

/// PEM text for a server that speaks TLS: the CA, and the certificate it
/// signed with its key.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The public port, kept across stop and resume.
    front: TcpFront,
    /// The server's own port (it binds it itself; it names the socket).
    server_port: AtomicU16,
    password: String,
    tls: bool,
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.front.port())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// The server binaries of the newest installed major version.
fn find_bin() -> Result<PathBuf, ServiceError> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    candidates.sort();
    candidates.pop().ok_or(ServiceError::Missing {
        program: "PostgreSQL (initdb and pg_ctl under /usr/lib/postgresql)",
        install: INSTALL,
    })
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl PostgresServer {
    /// Creates a cluster and starts it; with `tls`, the server also speaks
    /// TLS with those files.
    pub fn start(tls: Option<&TlsFiles>) -> Result<PostgresServer, ServiceError> {
        let bin = find_bin()?;
        let dir =
            tempfile::tempdir().map_err(ServiceError::io("creating a temporary directory"))?;
        let password = throwaway_secret("pw");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text)
                .map_err(ServiceError::io(format!("writing {name}")))
        };
        write("pwfile", &password)?;
        if let Some(files) = tls {
            write("ca.pem", &files.ca_pem)?;
            write("server.pem", &files.cert_pem)?;
            write("server.key", &files.key_pem)?;
            // The server refuses a key others can read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .map_err(ServiceError::io("protecting server.key"))?;
        }
        if is_root() {
            give_to_postgres_user(dir.path())?;
        }
        let server = PostgresServer {
            dir,
            bin,
            front: TcpFront::start(0)?,
            server_port: AtomicU16::new(0),
            password,
            tls: tls.is_some(),
        };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                "storehost",
                "--auth=scram-sha-256",
                "--pwfile",
                &server.path("pwfile"),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        server.start_server()?;
        Ok(server)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> String {
        self.path("ca.pem")
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn data(&self) -> String {
        self.path("data")
    }

    /// A server tool, run as the `postgres` user when we are root.
    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args);
        command
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), ServiceError> {
        let output = self.try_run(tool, args)?;
        if output.status.success() {
            return Ok(());
        }
        Err(ServiceError::failed(
            tool,
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ))
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> Result<Output, ServiceError> {
        self.command(tool, args)
            .output()
            .map_err(ServiceError::io(format!("running {tool}")))
    }

    /// Starts the server on a port of its own, again on another one if
    /// someone took that port first, and points the front at it.
    fn start_server(&self) -> Result<(), ServiceError> {
        let mut failure = String::new();
        for _attempt in 0..START_ATTEMPTS {
            let port = free_port()?;
            let output = self.try_run(
                "pg_ctl",
                &[
                    "-D",
                    &self.data(),
                    "-o",
                    &self.server_options(port),
                    "-l",
                    &self.path("server.log"),
                    "-w",
                    "start",
                ],
            )?;
            if output.status.success() {
                self.server_port.store(port, Ordering::SeqCst);
                self.front.up(port);
                return Ok(());
            }
            failure = String::from_utf8_lossy(&output.stderr).into_owned();
            failure += &std::fs::read_to_string(self.path("server.log")).unwrap_or_default();
        }
        Err(ServiceError::failed("pg_ctl start", failure))
    }

    fn server_options(&self, port: u16) -> String {
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.dir.path().display()
        );
        if self.tls {
            options += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.path("server.pem"),
                self.path("server.key")
            );
        }
        options
    }

    /// Stops the server (an outage); `resume` starts it again.
    pub fn stop(&self) -> Result<(), ServiceError> {
        self.front.down();
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    pub fn resume(&self) -> Result<(), ServiceError> {
        self.start_server()
    }

    /// The public (TCP) port.
    pub fn port(&self) -> u16 {
        self.front.port()
    }

    /// The port the server itself listens on, which names its Unix socket.
    pub fn socket_port(&self) -> u16 {
        self.server_port.load(Ordering::SeqCst)
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// A DSN for the superuser on the `postgres` database.
    pub fn dsn(&self) -> String {
        self.dsn_as("storehost", &self.password)
    }

    /// A DSN for another role.
    pub fn dsn_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/postgres",
            self.front.port()
        )
    }
}

/// initdb refuses root: the cluster belongs to the postgres user.
fn give_to_postgres_user(dir: &Path) -> Result<(), ServiceError> {
    let output = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .output()
        .map_err(ServiceError::io("running chown"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ServiceError::failed(
        "chown to the postgres user",
        String::from_utf8_lossy(&output.stderr),
    ))
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}
