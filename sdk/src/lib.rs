//! The storehost plugin SDK.
//!
//! A backend plugin is a WebAssembly component (built for `wasm32-wasip2`)
//! that implements the `storehost:plugin` contract. With this crate a plugin
//! author implements the [`Backend`] trait and exports it with
//! [`export_backend!`]; the generated bindings stay inside this crate.
//!
//! ```no_run
//! use storehost_sdk::{Backend, Change, Document, Entry, Error, Features, Info, Key, Settings};
//!
//! struct Nothing;
//!
//! impl Backend for Nothing {
//!     fn open(_settings: Settings) -> Result<Self, Error> {
//!         Ok(Nothing)
//!     }
//!     fn info(&self) -> Info {
//!         Info { name: "nothing".into(), version: "0.1.0".into(), features: Features::empty() }
//!     }
//!     fn list(&self) -> Result<Vec<Entry>, Error> {
//!         Ok(Vec::new())
//!     }
//!     fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
//!         Ok(keys.iter().map(|_| None).collect())
//!     }
//!     fn apply(&self, _changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
//!         Err(Error::Denied("this backend is read-only".into()))
//!     }
//! }
//!
//! storehost_sdk::export_backend!(Nothing);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm`
//! file is already a component. Check it with `storehost plugin inspect`.

#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        // 0.2.0 imports the capabilities of 0.1.0 unchanged.
        path: ["../wit/0.1.0", "../wit/0.2.0"],
        world: "storehost:plugin/backend-plugin@0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_backend_bindings",
        default_bindings_module: "storehost_sdk::bindings",
        generate_all,
    });
}

pub mod ids;
pub mod layout;

#[cfg(feature = "guest")]
mod guest;
#[cfg(feature = "guest")]
pub use guest::*;

/// The config document's id.
pub const CONFIG_ID: &str = "config.yaml";
