//! The mirror's promises on every backend, tested as it is used: two hosts
//! writing plain files at once, the backend cut off mid-call, three hosts
//! starting together. Each backend is a real server on loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;
use storehost::Storehost;
use storehost::runtime::Plugin;
use storehost_tests::azure::Azurite;
use storehost_tests::git::GitServer;
use storehost_tests::postgres::PostgresServer;
use storehost_tests::s3::S3Server;
use storehost_tests::scenarios::{self, Backend, Outage};
use storehost_tests::{fault_mirror, git, local_plugin, postgres, s3, set_fault};

const POLL: Duration = Duration::from_millis(100);

fn quick() -> storehost::StorehostOptions {
    storehost::StorehostOptions {
        mirror: storehost::MirrorOptions {
            poll_interval: POLL,
            complete_pull_interval: POLL * 30,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A directory as the remote, through the fault-injecting local plugin.
struct LocalDir {
    _root: tempfile::TempDir,
    remote: PathBuf,
}

impl LocalDir {
    fn new() -> LocalDir {
        let root = tempfile::tempdir().unwrap();
        let remote = root.path().join("remote");
        std::fs::create_dir_all(&remote).unwrap();
        LocalDir {
            _root: root,
            remote,
        }
    }
}

impl Backend for LocalDir {
    async fn host(&self, workspace: &Path) -> Storehost {
        fault_mirror(&self.remote, workspace, quick()).await
    }
    fn reader(&self, _scratch: &Path) -> Plugin {
        local_plugin(&self.remote)
    }
    /// `rm` of the remote directory's auths.
    async fn wipe(&self, _scratch: &Path) {
        std::fs::remove_dir_all(self.remote.join("auths")).unwrap();
    }
}

impl Outage for LocalDir {
    fn stop(&mut self) {
        set_fault(&self.remote, Some("unavailable"));
    }
    fn resume(&mut self) {
        set_fault(&self.remote, None);
    }
}

struct Postgres {
    server: PostgresServer,
    schema: String,
    wiped: std::sync::atomic::AtomicUsize,
}

impl Postgres {
    fn new(schema: &str) -> Postgres {
        Postgres {
            server: PostgresServer::start(),
            schema: schema.into(),
            wiped: Default::default(),
        }
    }
}

impl Backend for Postgres {
    async fn host(&self, workspace: &Path) -> Storehost {
        postgres::host(&self.server.dsn(), &self.schema, workspace, POLL).await
    }
    fn reader(&self, _scratch: &Path) -> Plugin {
        postgres::plugin(&self.server.dsn(), &self.schema)
    }
    /// `DELETE FROM auth_store`, then `TRUNCATE` the next time.
    async fn wipe(&self, _scratch: &Path) {
        let pool = sqlx::PgPool::connect(&self.server.dsn()).await.unwrap();
        let table = format!("\"{}\".auth_store", self.schema);
        let emptied: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .unwrap();
        let statement = match self
            .wiped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        {
            0 => format!("DELETE FROM {table}"),
            _ => format!("TRUNCATE {table}"),
        };
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .unwrap();
        assert!(emptied > 0);
    }
}

impl Outage for Postgres {
    fn stop(&mut self) {
        self.server.stop();
    }
    fn resume(&mut self) {
        self.server.resume();
    }
}

struct Object {
    server: S3Server,
    bucket: String,
}

impl Object {
    fn new(bucket: &str) -> Object {
        Object {
            server: S3Server::start(),
            bucket: bucket.into(),
        }
    }
}

impl Backend for Object {
    async fn host(&self, workspace: &Path) -> Storehost {
        s3::host(&self.server.endpoint(), &self.bucket, workspace, POLL).await
    }
    fn reader(&self, _scratch: &Path) -> Plugin {
        s3::plugin(&self.server.endpoint(), &self.bucket)
    }
    fn atomic_conditional_writes(&self) -> bool {
        false
    }
}

impl Outage for Object {
    fn stop(&mut self) {
        self.server.stop();
    }
    fn resume(&mut self) {
        self.server.resume();
    }
}

struct Git {
    server: GitServer,
    url: String,
}

impl Git {
    fn new(name: &str) -> Git {
        let server = GitServer::start();
        let url = server.create_repo(name);
        Git { server, url }
    }
}

impl Backend for Git {
    async fn host(&self, workspace: &Path) -> Storehost {
        git::host(&self.url, workspace, POLL).await
    }
    fn reader(&self, scratch: &Path) -> Plugin {
        git::plugin(&self.url, scratch)
    }
}

impl Outage for Git {
    fn stop(&mut self) {
        self.server.stop();
    }
    fn resume(&mut self) {
        self.server.resume();
    }
}

/// Azure Blob Storage (Azurite) through the third-party plugin.
struct Azure {
    server: Azurite,
    container: String,
}

impl Azure {
    fn new(container: &str) -> Azure {
        Azure {
            server: Azurite::start(),
            container: container.into(),
        }
    }
}

impl Backend for Azure {
    async fn host(&self, workspace: &Path) -> Storehost {
        self.server.host(workspace, &self.container, POLL).await
    }
    fn reader(&self, scratch: &Path) -> Plugin {
        let credential = self.server.shared_key();
        self.server.plugin(scratch, &self.container, &credential)
    }
}

impl Outage for Azure {
    fn stop(&mut self) {
        self.server.stop();
    }
    fn resume(&mut self) {
        self.server.resume();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_two_hosts_writing_at_once() {
    scenarios::two_hosts_writing_at_once(&LocalDir::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_hosts_writing_at_once() {
    scenarios::two_hosts_writing_at_once(&Postgres::new("two_hosts")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_two_hosts_writing_at_once() {
    scenarios::two_hosts_writing_at_once(&Object::new("two-hosts")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_two_hosts_writing_at_once() {
    scenarios::two_hosts_writing_at_once(&Git::new("two-hosts")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_backend_cut_off_mid_push() {
    scenarios::backend_cut_off_mid_push(&mut LocalDir::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_cut_off_mid_push() {
    scenarios::backend_cut_off_mid_push(&mut Postgres::new("cut_off")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_backend_cut_off_mid_push() {
    scenarios::backend_cut_off_mid_push(&mut Object::new("cut-off")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_backend_cut_off_mid_push() {
    scenarios::backend_cut_off_mid_push(&mut Git::new("cut-off")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_three_hosts_start_together() {
    scenarios::three_hosts_start_together(&LocalDir::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_hosts_start_together() {
    scenarios::three_hosts_start_together(&Postgres::new("three")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_three_hosts_start_together() {
    scenarios::three_hosts_start_together(&Object::new("three")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_three_hosts_start_together() {
    scenarios::three_hosts_start_together(&Git::new("three")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_backend_wiped() {
    scenarios::backend_wiped(&LocalDir::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_wiped() {
    scenarios::backend_wiped(&Postgres::new("wiped")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_backend_wiped() {
    scenarios::backend_wiped(&Object::new("wiped")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_backend_wiped() {
    scenarios::backend_wiped(&Git::new("wiped")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_two_hosts_writing_at_once() {
    scenarios::two_hosts_writing_at_once(&Azure::new("two-hosts")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_backend_cut_off_mid_push() {
    scenarios::backend_cut_off_mid_push(&mut Azure::new("cut-off")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_three_hosts_start_together() {
    scenarios::three_hosts_start_together(&Azure::new("three")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_backend_wiped() {
    scenarios::backend_wiped(&Azure::new("wiped")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cooldown_state_reaches_a_second_host() {
    scenarios::cooldown_state_reaches_a_second_host(&LocalDir::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cooldown_state_reaches_a_second_host() {
    scenarios::cooldown_state_reaches_a_second_host(&Postgres::new("cooldown")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_cooldown_state_reaches_a_second_host() {
    scenarios::cooldown_state_reaches_a_second_host(&Object::new("cooldown")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_cooldown_state_reaches_a_second_host() {
    scenarios::cooldown_state_reaches_a_second_host(&Git::new("cooldown")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_cooldown_state_reaches_a_second_host() {
    scenarios::cooldown_state_reaches_a_second_host(&Azure::new("cooldown")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_document_becomes_a_directory_of_documents_and_back() {
    scenarios::a_document_becomes_a_directory_of_documents_and_back(&LocalDir::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_document_becomes_a_directory_of_documents_and_back() {
    scenarios::a_document_becomes_a_directory_of_documents_and_back(&Postgres::new("directory"))
        .await;
}

// Not on the object backend: s3s-fs keeps each object as a file, so it
// cannot hold `a.json/b.json` where `a.json` was (S3 itself has flat keys).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_document_becomes_a_directory_of_documents_and_back() {
    scenarios::a_document_becomes_a_directory_of_documents_and_back(&Git::new("directory")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_document_becomes_a_directory_of_documents_and_back() {
    scenarios::a_document_becomes_a_directory_of_documents_and_back(&Azure::new("directory")).await;
}
