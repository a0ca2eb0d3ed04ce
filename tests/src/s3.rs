//! A real S3-compatible server for tests: `s3s-fs` (crates.io) serving a
//! temp dir on a free loopback port, with SigV4 authentication, stopped on
//! drop. Install it with `bash .ci/install.sh` (which runs
//! `cargo install s3s-fs --version 0.14.1 --features binary --locked`).
//! For `https://` endpoints, [`S3Server::tls_front`] puts a TLS terminator
//! with a throwaway CA in front of it.

use crate::free_port;
use crate::tcp_front::TcpFront;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use storehost::builtin::Places;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::{Plugin, PluginSpec, Runtime};
use storehost::selection::{BackendChoice, BackendKind, ObjectEndpoint, ObjectSettings};
use storehost::{Storehost, StorehostError};

pub const ACCESS_KEY: &str = "storehost-test-access";
pub const SECRET_KEY: &str = "storehost-test-secret-4f1c";

pub struct S3Server {
    dir: tempfile::TempDir,
    /// The public port, kept across stop and resume.
    front: TcpFront,
    /// s3s-fs's own port (it binds it itself), and the process.
    child: Option<(u16, Child)>,
}

fn find_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin")));
    for dir in candidates {
        let binary = dir.join("s3s-fs");
        if binary.is_file() {
            return binary;
        }
    }
    panic!(
        "the S3-compatible test server `s3s-fs` was not found in PATH or ~/.cargo/bin: \
         install it with `cargo install s3s-fs --version 0.14.1 --features binary --locked` \
         (or run `bash .ci/install.sh`)"
    )
}

fn wait_for_port(port: u16, up: bool) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() != up {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "s3s-fs on port {port} did not {}",
            if up { "start" } else { "stop" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True once `child` listens on `port`; false when it exited first (the
/// port was taken).
fn wait_for_child_port(child: &mut Child, port: u16) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
            return child.try_wait().ok().flatten().is_none();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl S3Server {
    pub fn start() -> S3Server {
        let mut server = S3Server {
            dir: tempfile::tempdir().unwrap(),
            front: TcpFront::start(0),
            child: None,
        };
        std::fs::create_dir_all(server.root()).unwrap();
        server.resume();
        server
    }

    /// Where the server keeps buckets (one directory each) and objects.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn port(&self) -> u16 {
        self.front.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.front.port())
    }

    /// Stops the server (an outage); `resume` starts it again on the same
    /// port and data.
    pub fn stop(&mut self) {
        self.front.down();
        if let Some((port, mut child)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            wait_for_port(port, false);
        }
    }

    /// Starts s3s-fs on a port of its own, again on another one if someone
    /// took that port first, and points the front at it.
    pub fn resume(&mut self) {
        let binary = find_binary();
        for _attempt in 0..10 {
            let port = free_port();
            let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(self.root())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting s3s-fs");
            if wait_for_child_port(&mut child, port) {
                self.front.up(port);
                self.child = Some((port, child));
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "s3s-fs did not start; see {}",
            self.dir.path().join("server.log").display()
        );
    }

    /// A plain front for this server that answers the first `failures`
    /// connections with `503 SlowDown` (as S3 throttles) and forwards the
    /// rest; returns its port and how many it refused so far.
    pub fn flaky_front(&self, failures: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refused = Arc::new(AtomicUsize::new(0));
        let (counter, backend) = (refused.clone(), self.front.port());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if counter.load(Ordering::SeqCst) < failures {
                    counter.fetch_add(1, Ordering::SeqCst);
                    throttle(client);
                } else {
                    std::thread::spawn(move || forward(client, backend));
                }
            }
        });
        (port, refused)
    }

    /// A TLS front for this server on another port, with a certificate for
    /// `localhost` and 127.0.0.1 from a throwaway CA; returns the front's
    /// port and the CA's PEM file. Runs until the process exits.
    pub fn tls_front(&self) -> (u16, PathBuf) {
        crate::tls_front::start(self.dir.path(), self.front.port())
    }
}

/// The built-in object plugin on `endpoint` (`http://host:port`) and
/// `bucket`, with the test server's keys.
pub fn plugin(endpoint: &str, bucket: &str) -> Plugin {
    let component = storehost::builtin::component(BackendKind::Object).unwrap();
    Plugin::load(
        &Runtime::shared().unwrap(),
        spec(endpoint, bucket),
        component,
    )
    .unwrap()
}

/// What an object plugin is granted and given for `endpoint` and
/// `bucket`: the capability, that endpoint and the test server's keys.
pub fn spec(endpoint: &str, bucket: &str) -> PluginSpec {
    let choice = BackendChoice::Object(ObjectSettings {
        endpoint: ObjectEndpoint::parse(endpoint).unwrap(),
        bucket: bucket.to_string(),
        region: "us-east-1".into(),
        access_key: SecretValue::new(ACCESS_KEY.to_string()),
        secret_key: SecretValue::new(SECRET_KEY.to_string()),
    });
    storehost::builtin::spec(&choice, Places::none())
}

/// A host chosen from `OBJECTSTORE_*` variables as users set them (the
/// test server's keys unless `vars` names others), mirroring `workspace`.
pub async fn try_host(
    vars: &[(&str, &str)],
    workspace: &Path,
    poll: Duration,
) -> Result<Storehost, StorehostError> {
    let defaults = [
        ("OBJECTSTORE_ACCESS_KEY", ACCESS_KEY),
        ("OBJECTSTORE_SECRET_KEY", SECRET_KEY),
    ];
    crate::host_from_env(&defaults, vars, workspace, poll).await
}

/// [`try_host`] on `endpoint` and `bucket`.
pub async fn host(endpoint: &str, bucket: &str, workspace: &Path, poll: Duration) -> Storehost {
    let vars = [
        ("OBJECTSTORE_ENDPOINT", endpoint),
        ("OBJECTSTORE_BUCKET", bucket),
    ];
    try_host(&vars, workspace, poll).await.unwrap()
}

/// A plain S3 client (aws-sdk-s3, path style), as another program would
/// use the bucket.
pub fn client(endpoint: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Reads one request (headers and body) and answers 503 SlowDown.
fn throttle(mut client: TcpStream) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut length = 0usize;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let _ = std::io::copy(&mut reader.take(length as u64), &mut std::io::sink());
    let body =
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let _ = write!(
        client,
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Copies bytes both ways between a client and the server.
fn forward(client: TcpStream, backend: u16) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
        return;
    };
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some((_, mut child)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
