//! A real PostgreSQL server for tests: the product's own throwaway server
//! ([`storehost::test_servers::PostgresServer`]), failing the test when it
//! cannot start, plus what only tests need (`psql`, TLS material, hosts).
//! Needs Debian's `postgresql` package (`bash .ci/install.sh` installs it).

use std::ops::Deref;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use storehost::Storehost;
use storehost::builtin::Places;
use storehost::capabilities::secrets::SecretValue;
use storehost::runtime::{Plugin, PluginSpec, Runtime};
use storehost::selection::{BackendChoice, BackendKind, PostgresSettings, Selection};
use storehost::test_servers::postgres::TlsFiles;

pub struct PostgresServer(storehost::test_servers::PostgresServer);

impl Deref for PostgresServer {
    type Target = storehost::test_servers::PostgresServer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        Self::start_with(None)
    }

    /// A server that also speaks TLS, with a certificate for `localhost`
    /// and 127.0.0.1 signed by a test CA (see `ca_file`).
    pub fn start_with_tls() -> PostgresServer {
        let cert = crate::certs::localhost();
        Self::start_with(Some(&TlsFiles {
            ca_pem: cert.ca_pem,
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }))
    }

    fn start_with(tls: Option<&TlsFiles>) -> PostgresServer {
        match storehost::test_servers::PostgresServer::start(tls) {
            Ok(server) => PostgresServer(server),
            Err(e) => panic!("{e}"),
        }
    }

    /// Stops the server (simulating an outage); `resume` starts it again.
    pub fn stop(&self) {
        self.0.stop().unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn resume(&self) {
        self.0.resume().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Another CA's certificate, which did not sign the server's.
pub fn write_unrelated_ca(path: &Path) {
    std::fs::write(path, crate::certs::unrelated_ca_pem()).unwrap();
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
