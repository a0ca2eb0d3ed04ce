//! The mirror: the local workspace the proxy reads as plain files, and how
//! it is kept in step with the backend (DESIGN §7).

pub mod bootstrap;
pub mod engine;
pub mod outbox;
pub mod scan;
pub mod state;
pub mod sync;
pub mod workspace;

pub use engine::{Mirror, MirrorOptions, Saved};
pub use workspace::{Workspace, WorkspaceError};
