//! The mirror: the local workspace the proxy reads as plain files, and how
//! it is kept in step with the backend (docs/design.md §7).
//!
//! `intake` checks every document a backend sends,
//! `ledger` holds the sync state (SQLite), `decide` makes every sync
//! decision and `settle` carries them out, `engine` is the write path (it
//! only enqueues) and the one owner that drains and polls, `remote` is the backend as the engine sees it,
//! `remote_guard` refuses a wiped backend's deletions, `late_writes`
//! takes what the proxy writes into files a swap took out, `scan` and
//! `sync` find local changes and run the background tasks, `bootstrap`
//! is the first contact, `workspace` the files and their guarded swaps.

pub mod bootstrap;
pub mod decide;
pub mod engine;
pub mod hash;
pub mod intake;
pub mod late_writes;
pub mod ledger;
pub mod paths;
pub mod remote;
pub mod remote_guard;
pub mod scan;
pub mod settle;
pub mod sync;
#[cfg(test)]
mod tests;
pub mod trash;
pub mod workspace;

pub use engine::{Mirror, MirrorOptions, Saved};
pub use workspace::{Workspace, WorkspaceError};

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
