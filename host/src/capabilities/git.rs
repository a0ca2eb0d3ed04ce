//! The `git` capability. Linked now so every plugin links against the whole
//! contract; it answers `denied` until the Git backend lands.

use super::secrets::SecretHandle;
use super::{Capability, HostState};
use crate::runtime::bindings::storehost::plugin::git::{
    FileChange, Host, HostRepository, PushMode, TreeEntry,
};
use crate::runtime::bindings::wit_types::HostError;
use wasmtime::component::Resource;

/// An opened repository (not constructed yet: `open` refuses).
pub struct Repository;

type Answer<T> = wasmtime::Result<Result<T, HostError>>;

impl HostState {
    fn git_refused<T>(&self) -> Answer<T> {
        Ok(Err(self.refuse(Capability::Git)))
    }
}

impl Host for HostState {
    async fn open(
        &mut self,
        _url: String,
        _branch: Option<String>,
        _username: String,
        _token: Resource<SecretHandle>,
    ) -> Answer<Resource<Repository>> {
        self.git_refused()
    }
}

impl HostRepository for HostState {
    async fn fetch(&mut self, _: Resource<Repository>) -> Answer<Option<String>> {
        self.git_refused()
    }

    async fn tree(&mut self, _: Resource<Repository>, _: String) -> Answer<Vec<TreeEntry>> {
        self.git_refused()
    }

    async fn read(&mut self, _: Resource<Repository>, _: String) -> Answer<Vec<u8>> {
        self.git_refused()
    }

    async fn commit(
        &mut self,
        _: Resource<Repository>,
        _: Option<String>,
        _: Vec<FileChange>,
        _: String,
    ) -> Answer<String> {
        self.git_refused()
    }

    async fn push(&mut self, _: Resource<Repository>, _: String, _: PushMode) -> Answer<()> {
        self.git_refused()
    }

    async fn drop(&mut self, repository: Resource<Repository>) -> wasmtime::Result<()> {
        self.table.delete(repository)?;
        Ok(())
    }
}
