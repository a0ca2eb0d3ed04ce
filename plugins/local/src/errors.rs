//! What file-system failures mean to the host.

use std::io;
use std::path::Path;
use storehost_sdk::Error;

pub fn io_error(action: &str, path: &Path, error: io::Error) -> Error {
    let message = format!("cannot {action} {}: {error}", path.display());
    match error.kind() {
        io::ErrorKind::PermissionDenied => Error::Denied(message),
        _ => Error::Internal(message),
    }
}
