//! Bridges the generated `GuestStore` trait to [`Backend`].

use crate::bindings::exports::storehost::plugin0_2_0::backend::{GuestStore, Store};
use crate::{Backend, Change, Document, Entry, Error, Info, Key, Settings, Snapshot};

/// Wraps a [`Backend`] as the exported `store` resource.
#[doc(hidden)]
pub struct StoreAdapter<B>(B);

impl<B: Backend> GuestStore for StoreAdapter<B> {
    fn open(settings: Vec<(String, String)>) -> Result<Store, Error> {
        let backend = B::open(Settings::from(settings))?;
        Ok(Store::new(StoreAdapter(backend)))
    }

    fn info(&self) -> Info {
        self.0.info()
    }

    fn prepare(&self) -> Result<(), Error> {
        self.0.prepare()
    }

    fn check(&self) -> Result<(), Error> {
        self.0.check()
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        self.0.list()
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        self.0.read(keys)
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.0.pull(cursor)
    }

    fn apply(&self, changes: Vec<Change>, message: String) -> Result<Vec<Option<Entry>>, Error> {
        self.0.apply(changes, message)
    }

    fn wait_for_change(&self, timeout_ms: u32) -> Result<bool, Error> {
        self.0.wait_for_change(timeout_ms)
    }
}
