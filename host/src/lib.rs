//! storehost: keeps an API proxy's `config.yaml` and OAuth token files in a
//! local workspace and mirrors them to a backend implemented as a sandboxed
//! WebAssembly component.
//!
//! Layout: [`runtime`] (engine, cache, limits, plugins), [`capabilities`]
//! (what plugins may use), [`selection`] (environment → backend),
//! [`mirror`] (workspace and bootstrap), [`api`] (the embedding API).

pub mod api;
pub mod builtin;
pub mod capabilities;
pub mod conformance;
pub mod error;
pub mod fsutil;
pub mod logging;
pub mod manifest;
pub mod mirror;
pub mod model;
pub mod runtime;
pub mod selection;
pub mod test_servers;

pub use api::{CustomPlugin, Mode, Storehost, StorehostOptions};
pub use error::StorehostError;
pub use mirror::bootstrap::BootstrapReport;
pub use mirror::{MirrorOptions, Saved};
pub use model::{Change, Document, Entry, Features, Info, Key, Kind, Precondition, Snapshot};
pub use storehost_sdk::layout as sdk_layout;
