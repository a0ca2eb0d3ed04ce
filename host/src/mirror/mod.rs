//! The mirror: the local workspace the proxy reads as plain files, and how
//! it is kept in step with the backend.

pub mod bootstrap;
pub mod workspace;

pub use workspace::{Workspace, WorkspaceError};
