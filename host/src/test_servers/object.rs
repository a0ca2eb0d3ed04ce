//! A throwaway S3-compatible server: `s3s-fs` serving a temporary
//! directory on loopback with SigV4 keys, behind a front that keeps its
//! port across stop and resume.

use super::front::TcpFront;
use super::{ServiceError, find_program, spawn_on_free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const ACCESS_KEY: &str = "storehost-test-access";
pub const SECRET_KEY: &str = "storehost-test-secret-4f1c";
const S3S_FS: &str = "s3s-fs";
const INSTALL: &str = "`cargo install s3s-fs --version 0.14.1 --features binary --locked`";

pub struct ObjectServer {
    dir: tempfile::TempDir,
    /// The public port, kept across stop and resume.
    front: TcpFront,
    /// The s3s-fs process, on a port of its own behind the front.
    child: Option<Child>,
}

impl std::fmt::Debug for ObjectServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectServer")
            .field("port", &self.front.port())
            .finish_non_exhaustive()
    }
}

impl ObjectServer {
    pub fn start() -> Result<ObjectServer, ServiceError> {
        let dir =
            tempfile::tempdir().map_err(ServiceError::io("creating a temporary directory"))?;
        let mut server = ObjectServer {
            dir,
            front: TcpFront::start(0)?,
            child: None,
        };
        std::fs::create_dir_all(server.root())
            .map_err(ServiceError::io("creating the server's data directory"))?;
        server.resume()?;
        Ok(server)
    }

    /// Where the server keeps buckets (one directory each) and objects.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.front.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.front.port())
    }

    /// Stops the server (an outage); `resume` starts it again on the same
    /// data, behind the same public port. Done once the process is reaped:
    /// its sockets went with it, so there is no port to wait for (and one
    /// someone else took since is theirs).
    pub fn stop(&mut self) {
        self.front.down();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts s3s-fs on a port of its own, again on another one if someone
    /// took that port first, and points the front at it.
    pub fn resume(&mut self) -> Result<(), ServiceError> {
        let binary = find_program(S3S_FS).ok_or(ServiceError::Missing {
            program: S3S_FS,
            install: INSTALL,
        })?;
        let log_path = self.dir.path().join("server.log");
        let root = self.root();
        let (port, child) = spawn_on_free_port(S3S_FS, &log_path, |port, log| {
            Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(&root)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(ServiceError::io("starting s3s-fs"))
        })?;
        self.front.up(port);
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for ObjectServer {
    fn drop(&mut self) {
        self.stop();
    }
}
