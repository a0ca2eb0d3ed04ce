//! The WebAssembly runtime: one engine per process, the on-disk component
//! cache, per-plugin limits, and loaded plugins.

pub mod audit;
pub mod bindings;
pub mod cache;
pub mod contract;
pub mod engine;
pub mod error;
pub mod inspect;
pub mod limits;
pub mod plugin;

pub use audit::MemoryAudit;
pub use cache::ComponentCache;
pub use engine::Runtime;
pub use error::{BackendError, PluginError, RuntimeError};
pub use limits::Limits;
pub use plugin::{Plugin, PluginSpec};
