//! What file-system failures mean to the host.

use std::io;
use std::path::Path;
use storehost_sdk::Error;

/// Gone, or a parent that is not a directory: nothing there.
pub fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

pub fn io_error(action: &str, path: &Path, error: io::Error) -> Error {
    let message = format!("cannot {action} {}: {error}", path.display());
    match error.kind() {
        io::ErrorKind::PermissionDenied => Error::Denied(message),
        _ => Error::Internal(message),
    }
}
