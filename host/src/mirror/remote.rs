//! What the mirror needs of a backend: a small trait in front of the plugin,
//! so the engine's unit tests run against an in-memory fake while the
//! integration tests use real components and servers.

use crate::model::{Change, Document, Entry, Features, Key, Snapshot};
use crate::runtime::{Plugin, PluginError};
use std::future::Future;
use std::pin::Pin;

pub type RemoteFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PluginError>> + Send + 'a>>;

pub trait Remote: Send + Sync {
    fn name(&self) -> &str;
    fn features(&self) -> RemoteFuture<'_, Features>;
    /// Whether the backend stores the proxy's cooldown state (a plugin
    /// built against contract 0.1.0 does not).
    fn has_cooldown(&self) -> bool {
        true
    }
    fn prepare(&self) -> RemoteFuture<'_, ()>;
    fn pull<'a>(&'a self, cursor: Option<&'a str>) -> RemoteFuture<'a, Snapshot>;
    fn read<'a>(&'a self, keys: &'a [Key]) -> RemoteFuture<'a, Vec<Option<Document>>>;
    fn apply<'a>(
        &'a self,
        changes: Vec<Change>,
        message: &'a str,
    ) -> RemoteFuture<'a, Vec<Option<Entry>>>;
}

impl Remote for Plugin {
    fn name(&self) -> &str {
        Plugin::name(self)
    }

    fn has_cooldown(&self) -> bool {
        Plugin::has_cooldown(self)
    }

    fn features(&self) -> RemoteFuture<'_, Features> {
        Box::pin(async move { Ok(Plugin::info(self).await?.features) })
    }

    fn prepare(&self) -> RemoteFuture<'_, ()> {
        Box::pin(Plugin::prepare(self))
    }

    fn pull<'a>(&'a self, cursor: Option<&'a str>) -> RemoteFuture<'a, Snapshot> {
        Box::pin(Plugin::pull(self, cursor))
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> RemoteFuture<'a, Vec<Option<Document>>> {
        Box::pin(Plugin::read(self, keys))
    }

    fn apply<'a>(
        &'a self,
        changes: Vec<Change>,
        message: &'a str,
    ) -> RemoteFuture<'a, Vec<Option<Entry>>> {
        Box::pin(Plugin::apply(self, changes, message))
    }
}

/// Reads one document.
pub async fn read_one(remote: &dyn Remote, key: &Key) -> Result<Option<Document>, PluginError> {
    Ok(remote
        .read(std::slice::from_ref(key))
        .await?
        .pop()
        .flatten())
}
