//! The `git` capability: a Git remote over HTTP(S) through git2 (libgit2).
//!
//! The host owns the local repository: a bare cache of the remote under the
//! grant's git directory, one per URL and branch. It holds nothing that is
//! not on the remote or about to be pushed, so a damaged cache is removed
//! and fetched again, never pushed from. The token is a secret handle given
//! to libgit2's credentials callback: it is not in the URL, `.git/config`,
//! a log line or an error. Network calls have timeouts; a push that would
//! not fast-forward (or whose lease no longer holds) is `rejected`.

mod errors;
mod local;
mod network;

use super::secrets::SecretHandle;
use super::{Capability, HostState};
use crate::runtime::bindings::storehost::plugin::git::{
    Committed, Fetched, FileChange, Host, HostRepository, PushMode, TreeEntry,
};
use crate::runtime::bindings::wit_types::HostError;
use local::LocalRepo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Resource;

/// Longest a network call (fetch or push, with its retries of credentials)
/// may take; libgit2's own socket timeouts are shorter.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(25);

/// An opened repository; calls run one at a time on a blocking thread.
pub struct Repository {
    inner: Arc<Mutex<LocalRepo>>,
}

type Answer<T> = wasmtime::Result<Result<T, HostError>>;

impl Host for HostState {
    async fn open(
        &mut self,
        url: String,
        branch: Option<String>,
        username: String,
        token: Resource<SecretHandle>,
    ) -> Answer<Resource<Repository>> {
        if let Err(refused) = self.check_remote(Capability::Git, &url, "git remote") {
            return Ok(Err(refused));
        }
        let Some(dir) = self.grants.git_dir().cloned() else {
            return Ok(Err(HostError::Denied(format!(
                "plugin `{}` was granted no directory for git repositories",
                self.plugin
            ))));
        };
        let token = match self.resolve_secret(&token) {
            Ok(token) => token,
            Err(e) => return Ok(Err(e)),
        };
        let remote = network::RemoteSpec::new(url, branch, username, token);
        let opened = blocking(move || LocalRepo::open(&dir, remote)).await;
        Ok(match opened {
            Ok(repo) => Ok(self.table.push(Repository {
                inner: Arc::new(Mutex::new(repo)),
            })?),
            Err(e) => Err(e),
        })
    }
}

impl HostRepository for HostState {
    async fn fetch(&mut self, repo: Resource<Repository>) -> Answer<Fetched> {
        self.on_repo(&repo, LocalRepo::fetch).await
    }

    async fn tree(&mut self, repo: Resource<Repository>, commit: String) -> Answer<Vec<TreeEntry>> {
        self.on_repo(&repo, move |r| r.tree(&commit)).await
    }

    async fn read(&mut self, repo: Resource<Repository>, blob: String) -> Answer<Vec<u8>> {
        let answer = self.on_repo(&repo, move |r| r.read_many(&[blob])).await?;
        Ok(answer.map(|mut blobs| blobs.pop().unwrap_or_default()))
    }

    async fn read_many(
        &mut self,
        repo: Resource<Repository>,
        blobs: Vec<String>,
    ) -> Answer<Vec<Vec<u8>>> {
        self.on_repo(&repo, move |r| r.read_many(&blobs)).await
    }

    async fn is_ancestor(
        &mut self,
        repo: Resource<Repository>,
        ancestor: String,
        commit: String,
    ) -> Answer<bool> {
        self.on_repo(&repo, move |r| r.is_ancestor(&ancestor, &commit))
            .await
    }

    async fn commit(
        &mut self,
        repo: Resource<Repository>,
        parent: Option<String>,
        changes: Vec<FileChange>,
        message: String,
        squash: bool,
    ) -> Answer<Committed> {
        self.on_repo(&repo, move |r| {
            r.commit(parent.as_deref(), &changes, &message, squash)
        })
        .await
    }

    async fn push(
        &mut self,
        repo: Resource<Repository>,
        commit: String,
        mode: PushMode,
    ) -> Answer<()> {
        self.on_repo(&repo, move |r| r.push(&commit, &mode)).await
    }

    async fn drop(&mut self, repository: Resource<Repository>) -> wasmtime::Result<()> {
        self.table.delete(repository)?;
        Ok(())
    }
}

impl HostState {
    /// Runs `op` on the repository on a blocking thread (libgit2 blocks),
    /// bounded by [`NETWORK_TIMEOUT`] plus a margin for local work.
    async fn on_repo<T, F>(
        &mut self,
        repo: &Resource<Repository>,
        op: F,
    ) -> wasmtime::Result<Result<T, HostError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut LocalRepo) -> Result<T, HostError> + Send + 'static,
    {
        let inner = self.table.get(repo)?.inner.clone();
        Ok(blocking(move || {
            let mut repo = inner
                .lock()
                .map_err(|_| HostError::Internal("the git repository lock was poisoned".into()))?;
            op(&mut repo)
        })
        .await)
    }
}

async fn blocking<T, F>(op: F) -> Result<T, HostError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, HostError> + Send + 'static,
{
    let bound = NETWORK_TIMEOUT * 2 + Duration::from_secs(5);
    match tokio::time::timeout(bound, tokio::task::spawn_blocking(op)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Err(HostError::Internal(format!("a git task failed: {e}"))),
        Err(_) => Err(HostError::Unavailable(
            "the git remote did not answer in time".into(),
        )),
    }
}
