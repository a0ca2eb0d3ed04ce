//! Everything a plugin needs at build time for wasm32-wasip2.

mod adapter;
mod change;
pub mod dir_lock;
mod errors;
pub mod etag_feed;
pub mod log;
pub mod paths;
mod settings;

pub use crate::bindings::storehost::plugin0_1_0::types::HostError;
pub use crate::bindings::storehost::plugin0_2_0::types::{
    Change, Document, Entry, Error, Features, Info, Key, Kind, Precondition, Put, Remove, Snapshot,
};
pub use adapter::StoreAdapter;
pub use errors::{CONCURRENT_WRITER_WON, host_error};
pub use settings::Settings;

/// Host capabilities a plugin may import. Each answers `denied` unless the
/// host granted it to this plugin.
pub mod capabilities {
    pub use crate::bindings::storehost::plugin0_1_0::git;
    pub use crate::bindings::storehost::plugin0_1_0::objects;
    pub use crate::bindings::storehost::plugin0_1_0::secrets;
    pub use crate::bindings::storehost::plugin0_1_0::sql;
}

/// A storage backend. Implement it and export it with [`export_backend!`].
///
/// The host calls one method at a time per instance, so implementations may
/// use `RefCell` for state. Defaults cover backends without the matching
/// feature.
pub trait Backend: Sized + 'static {
    /// Opens the store from non-secret settings; fetch credentials with
    /// [`capabilities::secrets::get`].
    fn open(settings: Settings) -> Result<Self, Error>;

    /// Name, version and features of this backend.
    fn info(&self) -> Info;

    /// Creates whatever the backend needs (schema, bucket, branch). Idempotent.
    fn prepare(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Health check.
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Every document's entry, without content.
    fn list(&self) -> Result<Vec<Entry>, Error>;

    /// One answer per key, in order; `None` where the key does not exist.
    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error>;

    /// Everything, or what changed since `cursor`. The default reads the whole
    /// store and returns a complete snapshot whose cursor is unused.
    fn pull(&self, _cursor: Option<String>) -> Result<Snapshot, Error> {
        let keys: Vec<Key> = self.list()?.into_iter().map(|entry| entry.key).collect();
        let documents = self.read(keys)?.into_iter().flatten().collect();
        Ok(Snapshot {
            documents,
            removed: Vec::new(),
            cursor: String::new(),
            complete: true,
        })
    }

    /// Applies changes, honouring each precondition. One answer per change:
    /// the new entry for a put, `None` for a remove.
    fn apply(&self, changes: Vec<Change>, message: String) -> Result<Vec<Option<Entry>>, Error>;

    /// Blocks up to `timeout_ms` for a remote change. Backends without the
    /// `watch` feature keep the default, and the host polls `pull` instead.
    fn wait_for_change(&self, _timeout_ms: u32) -> Result<bool, Error> {
        Ok(false)
    }
}

/// Exports a [`Backend`] implementation as this component's `backend`.
#[macro_export]
macro_rules! export_backend {
    ($backend:ty) => {
        #[doc(hidden)]
        struct __StorehostBackendExport;

        impl $crate::bindings::exports::storehost::plugin0_2_0::backend::Guest for __StorehostBackendExport {
            type Store = $crate::StoreAdapter<$backend>;
        }

        $crate::bindings::__export_backend_bindings!(__StorehostBackendExport with_types_in $crate::bindings);
    };
}
