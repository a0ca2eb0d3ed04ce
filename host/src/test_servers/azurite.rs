//! A throwaway Azure Blob Storage: Azurite's blob service (npm `azurite`)
//! serving a temporary directory on loopback, with an account name and a
//! key of its own (`AZURITE_ACCOUNTS`), behind a front that keeps its port
//! across stop and resume.

use super::front::TcpFront;
use super::{
    START_LIMIT, ServiceError, find_program, spawn_on_free_port, throwaway_secret, wait_until,
};
use base64::Engine as _;
use secrecy::zeroize::Zeroizing;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const AZURITE_BLOB: &str = "azurite-blob";
const INSTALL: &str = "`npm install -g azurite` (Node.js 18 or later)";
/// The service version the account SAS is signed for.
const SAS_VERSION: &str = "2021-08-06";

pub struct AzuriteServer {
    dir: tempfile::TempDir,
    front: TcpFront,
    /// The Azurite process, on a port of its own behind the front.
    child: Option<Child>,
    account: String,
    /// The account key, base64 as Azure hands it out.
    key: Zeroizing<String>,
}

impl std::fmt::Debug for AzuriteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzuriteServer")
            .field("port", &self.front.port())
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl AzuriteServer {
    /// Starts Azurite with a fresh account (`storehost<random>`) and key.
    pub fn start() -> Result<AzuriteServer, ServiceError> {
        let dir =
            tempfile::tempdir().map_err(ServiceError::io("creating a temporary directory"))?;
        let account = throwaway_secret("storehost").replace('-', "")[..20].to_string();
        let key_seed = throwaway_secret("azurite-key");
        let key = base64::engine::general_purpose::STANDARD
            .encode(ring::digest::digest(&ring::digest::SHA512, key_seed.as_bytes()).as_ref());
        let mut server = AzuriteServer {
            dir,
            front: TcpFront::start(0)?,
            child: None,
            account,
            key: Zeroizing::new(key),
        };
        server.resume()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.front.port()
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// The account key (base64). Secret: tests hand it to the host only.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The account's URL, path style as Azurite serves it:
    /// `http://127.0.0.1:<port>/<account>`.
    pub fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port(), self.account)
    }

    /// An account SAS for the blob service (containers and blobs, read,
    /// write, delete, list, add, create) valid until 2099, as the query
    /// string a client appends. `key` signs it; pass another key to get a
    /// SAS the service refuses.
    pub fn account_sas(&self, key: &str) -> Result<String, ServiceError> {
        let (permissions, services, types, expiry) = ("rwdlac", "b", "sco", "2099-01-01T00:00:00Z");
        let to_sign = [
            self.account.as_str(),
            permissions,
            services,
            types,
            "",
            expiry,
            "",
            "",
            SAS_VERSION,
            "",
            "",
        ]
        .join("\n");
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| ServiceError::failed("signing a SAS", "the key is not base64"))?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let signature = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let encode = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        Ok(format!(
            "sv={SAS_VERSION}&ss={services}&srt={types}&sp={permissions}&se={}&sig={}",
            encode(expiry),
            encode(&signature)
        ))
    }

    /// Stops the server (an outage: calls in flight are cut at the
    /// front); `resume` starts it again on the same data, behind the same
    /// public port. Done once the process is reaped: its sockets went with
    /// it. Azurite keeps its metadata in memory and saves it on SIGTERM, so
    /// it is asked to stop rather than killed: a killed Azurite forgets
    /// recent writes, which no real storage account does.
    pub fn stop(&mut self) {
        self.front.down();
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Starts Azurite on a port of its own (again on another one if someone
    /// took it first) and points the front at it.
    pub fn resume(&mut self) -> Result<(), ServiceError> {
        let binary = find_program(AZURITE_BLOB).ok_or(ServiceError::Missing {
            program: AZURITE_BLOB,
            install: INSTALL,
        })?;
        let log_path = self.dir.path().join("server.log");
        let (port, child) = spawn_on_free_port("Azurite", &log_path, |port, log| {
            self.spawn(&binary, port, log)
        })?;
        self.front.up(port);
        self.child = Some(child);
        Ok(())
    }

    fn spawn(&self, binary: &Path, port: u16, log: std::fs::File) -> Result<Child, ServiceError> {
        let data: PathBuf = self.dir.path().join("data");
        Command::new(binary)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&data)
            .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
            .env(
                "AZURITE_ACCOUNTS",
                format!("{}:{}", self.account, *self.key),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(ServiceError::io("starting Azurite"))
    }
}

/// SIGTERM, then SIGKILL if it has not exited within the start limit.
fn terminate(mut child: Child) {
    let pid = rustix::process::Pid::from_child(&child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    if !wait_until(START_LIMIT, || child.try_wait().ok().flatten().is_some()) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{START_LIMIT, take_once_free};
    use super::*;
    use std::time::Instant;

    /// Stopping ends with the process. Azurite closes its listener while it
    /// saves its state, so another test's server may take the port before
    /// Azurite exits; `stop` must not then wait for that port to close.
    #[test]
    fn stopping_does_not_wait_for_a_port_someone_else_took() {
        let mut server = AzuriteServer::start().expect("starting Azurite");
        let own_port = server.front.backend();
        assert_ne!(own_port, 0, "the front points at the server");
        let taker = take_once_free(own_port);
        let started = Instant::now();
        server.stop();
        let stopping = started.elapsed();
        let taken = taker.join().expect("the taker thread");
        assert!(taken.is_some(), "the server's port was never freed");
        assert!(
            stopping < START_LIMIT,
            "stop waited {stopping:?} on a port that was no longer the server's"
        );
    }
}
