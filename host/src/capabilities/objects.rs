//! The `objects` capability. Linked now so every plugin links against the
//! whole contract; it answers `denied` until the object-storage backend lands.

use super::secrets::SecretHandle;
use super::{Capability, HostState};
use crate::runtime::bindings::storehost::plugin::objects::{
    Condition, Host, HostBucket, Object, ObjectInfo,
};
use crate::runtime::bindings::wit_types::HostError;
use wasmtime::component::Resource;

/// An opened bucket (not constructed yet: `open` refuses).
pub struct Bucket;

type Answer<T> = wasmtime::Result<Result<T, HostError>>;

impl HostState {
    fn objects_refused<T>(&self) -> Answer<T> {
        Ok(Err(self.refuse(Capability::Objects)))
    }
}

impl Host for HostState {
    async fn open(
        &mut self,
        _endpoint: String,
        _bucket: String,
        _region: String,
        _access_key: Resource<SecretHandle>,
        _secret_key: Resource<SecretHandle>,
    ) -> Answer<Resource<Bucket>> {
        self.objects_refused()
    }
}

impl HostBucket for HostState {
    async fn ensure(&mut self, _: Resource<Bucket>) -> Answer<()> {
        self.objects_refused()
    }

    async fn head(&mut self, _: Resource<Bucket>, _: String) -> Answer<Option<ObjectInfo>> {
        self.objects_refused()
    }

    async fn get(&mut self, _: Resource<Bucket>, _: String) -> Answer<Option<Object>> {
        self.objects_refused()
    }

    async fn put(
        &mut self,
        _: Resource<Bucket>,
        _: String,
        _: Vec<u8>,
        _: String,
        _: Condition,
    ) -> Answer<ObjectInfo> {
        self.objects_refused()
    }

    async fn delete(&mut self, _: Resource<Bucket>, _: String, _: Condition) -> Answer<()> {
        self.objects_refused()
    }

    async fn list(&mut self, _: Resource<Bucket>, _: String) -> Answer<Vec<ObjectInfo>> {
        self.objects_refused()
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}
