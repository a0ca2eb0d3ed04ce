//! A real S3-compatible server for tests: the product's own throwaway
//! server ([`storehost::test_servers::ObjectServer`], `s3s-fs`), failing
//! the test when it cannot start, plus a throttling front and a TLS front.
//! Install s3s-fs with `bash .ci/install.sh` (which runs
//! `cargo install s3s-fs --version 0.14.1 --features binary --locked`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use storehost::builtin::Places;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::{Plugin, PluginSpec, Runtime};
use storehost::selection::{BackendChoice, BackendKind, ObjectEndpoint, ObjectSettings};
use storehost::test_servers::ObjectServer;
pub use storehost::test_servers::object::{ACCESS_KEY, SECRET_KEY};
use storehost::{Storehost, StorehostError};

pub struct S3Server(ObjectServer);

impl Deref for S3Server {
    type Target = ObjectServer;
    fn deref(&self) -> &ObjectServer {
        &self.0
    }
}

impl DerefMut for S3Server {
    fn deref_mut(&mut self) -> &mut ObjectServer {
        &mut self.0
    }
}

impl S3Server {
    pub fn start() -> S3Server {
        S3Server(ObjectServer::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts the server again after `stop`, on the same port and data.
    pub fn resume(&mut self) {
        self.0.resume().unwrap_or_else(|e| panic!("{e}"));
    }

    /// A plain front for this server that answers the first `failures`
    /// connections with `503 SlowDown` (as S3 throttles) and forwards the
    /// rest; returns its port and how many it refused so far.
    pub fn flaky_front(&self, failures: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refused = Arc::new(AtomicUsize::new(0));
        let (counter, backend) = (refused.clone(), self.port());
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
        crate::tls_front::start(self.dir(), self.port())
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
