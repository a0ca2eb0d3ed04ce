//! What the server's answers mean for a document.

use storehost_sdk::{Error, HostError, Key, host_error};

/// A refused condition is a conflict on that key; the rest map as usual.
pub fn conflict_or(key: &Key, error: HostError) -> Error {
    match error {
        HostError::Conflict(_) => Error::Conflict(key.clone()),
        other => host_error(other),
    }
}
