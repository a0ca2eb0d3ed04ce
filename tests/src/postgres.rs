//! A real PostgreSQL server for tests: `initdb` in a temp dir, started on a
//! free loopback port with password authentication, stopped on drop.
//! Needs Debian's `postgresql` package (`bash .ci/install.sh` installs it).

use crate::free_port;
use crate::tcp_front::TcpFront;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use storehost::Storehost;
use storehost::builtin::Places;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::{Plugin, PluginSpec, Runtime};
use storehost::selection::{BackendChoice, BackendKind, PostgresSettings, Selection};

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

/// The server binaries of the newest installed major version.
fn find_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    candidates.sort();
    candidates.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: \
             install them with `apt-get install postgresql` (or run `bash .ci/install.sh`)"
        )
    })
}

fn is_root() -> bool {
    current_uid() == 0
}

fn current_uid() -> u32 {
    // `id -u` keeps this crate free of a libc dependency.
    let output = Command::new("id").arg("-u").output().expect("running id");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        Self::start_with(false)
    }

    /// A server that also speaks TLS, with a certificate for `localhost`
    /// and 127.0.0.1 signed by a test CA (see [`PostgresServer::ca_file`]).
    pub fn start_with_tls() -> PostgresServer {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> PostgresServer {
        let bin = find_bin();
        let dir = tempfile::tempdir().unwrap();
        let password = format!("pw-{}", free_port());
        std::fs::write(dir.path().join("pwfile"), &password).unwrap();
        if tls {
            write_certificates(dir.path());
        }
        if is_root() {
            // initdb refuses root: the cluster belongs to the postgres user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown to postgres failed");
        }
        let server = PostgresServer {
            dir,
            bin,
            front: TcpFront::start(0),
            server_port: AtomicU16::new(0),
            password,
            tls,
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
        );
        server.start_server();
        server
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> String {
        self.path("ca.pem")
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
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

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self.try_run(tool, args);
        assert!(
            output.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        self.command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"))
    }

    /// Starts the server on a port of its own, again on another one if
    /// someone took that port first, and points the front at it.
    fn start_server(&self) {
        let mut failure = String::new();
        for _attempt in 0..10 {
            let port = free_port();
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
            let output = self.try_run(
                "pg_ctl",
                &[
                    "-D",
                    &self.data(),
                    "-o",
                    &options,
                    "-l",
                    &self.path("server.log"),
                    "-w",
                    "start",
                ],
            );
            if output.status.success() {
                self.server_port.store(port, Ordering::SeqCst);
                self.front.up(port);
                return;
            }
            failure = String::from_utf8_lossy(&output.stderr).into_owned();
            failure += &std::fs::read_to_string(self.path("server.log")).unwrap_or_default();
        }
        panic!("pg_ctl start failed: {failure}");
    }

    /// Stops the server (simulating an outage); `resume` starts it again.
    pub fn stop(&self) {
        self.front.down();
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    pub fn resume(&self) {
        self.start_server();
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

    /// A DSN for another role (created with `psql`).
    pub fn dsn_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/postgres",
            self.front.port()
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A test CA (`ca.pem`) and a server certificate it signed (`server.pem`,
/// `server.key`, private as the server demands).
fn write_certificates(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let cert = crate::certs::localhost();
    std::fs::write(dir.join("ca.pem"), cert.ca_pem).unwrap();
    std::fs::write(dir.join("server.pem"), cert.cert_pem).unwrap();
    let key_path = dir.join("server.key");
    std::fs::write(&key_path, cert.key_pem).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Another CA's certificate, which did not sign the server's.
pub fn write_unrelated_ca(path: &Path) {
    std::fs::write(path, crate::certs::unrelated_ca_pem()).unwrap();
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

impl PostgresServer {
    /// Runs `sql` with `psql` (as a plain client would) and returns its
    /// unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args([
                &self.dsn(),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("psql (from the postgresql package) runs");
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }
}

/// The built-in postgres plugin on `dsn`, in `schema`.
pub fn plugin(dsn: &str, schema: &str) -> Plugin {
    let component = storehost::builtin::component(BackendKind::Postgres).unwrap();
    Plugin::load(&Runtime::shared().unwrap(), spec(dsn, schema), component).unwrap()
}

/// What a postgres plugin is granted and given: the capability, `dsn` as
/// a secret, and `schema`.
pub fn spec(dsn: &str, schema: &str) -> PluginSpec {
    let choice = BackendChoice::Postgres(PostgresSettings {
        dsn: SecretValue::new(dsn.to_string()),
        schema: schema.to_string(),
    });
    storehost::builtin::spec(&choice, Places::none())
}

/// A host mirroring `workspace` to `dsn` in `schema`, polling every `poll`.
pub async fn host(dsn: &str, schema: &str, workspace: &Path, poll: Duration) -> Storehost {
    try_host(dsn, schema, workspace, poll).await.unwrap()
}

/// Like [`host`], returning the error instead of failing the test.
pub async fn try_host(
    dsn: &str,
    schema: &str,
    workspace: &Path,
    poll: Duration,
) -> Result<Storehost, storehost::StorehostError> {
    let selection = Selection {
        backend: BackendChoice::Postgres(PostgresSettings {
            dsn: SecretValue::new(dsn.to_string()),
            schema: schema.into(),
        }),
        workspace: workspace.to_path_buf(),
        ignored: Vec::new(),
        migrate_from: None,
    };
    let options = crate::polling_options(workspace, poll);
    Storehost::from_selection(selection, options).await
}
