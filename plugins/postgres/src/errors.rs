//! What the database's answers mean while the tables are created.

use storehost_sdk::{Error, HostError, host_error};

pub enum PrepareError {
    /// A deadlock, serialization failure or duplicate with a concurrent
    /// instance doing the same.
    Raced(String),
    Other(Error),
}

pub fn prepare_error(error: HostError) -> PrepareError {
    match error {
        HostError::Conflict(message) => PrepareError::Raced(message),
        other => PrepareError::Other(host_error(other)),
    }
}
