//! One meaning for every host error a capability returns, so that all
//! plugins tell the host the same thing about the same failure.

use crate::{Error, HostError};

/// How [`host_error`] begins the message of a host `conflict`, for a plugin
/// that treats a race with another instance of itself specially.
pub const CONCURRENT_WRITER_WON: &str = "a concurrent writer won";

/// What a host error means to the host that called the plugin:
/// - `conflict` (a concurrent writer won a statement or condition the
///   plugin did not tie to one key) and `rejected` (a push that was not a
///   fast-forward) are transient: the host retries later, and the
///   plugin's precondition check then sees the other writer's result;
/// - `not-found` where the plugin expected something is its own bug:
///   `internal`;
/// - the rest keep their meaning.
///
/// A plugin that can name the key a failed condition was about answers
/// `Error::Conflict(key)` itself instead.
pub fn host_error(error: HostError) -> Error {
    match error {
        HostError::Denied(m) => Error::Denied(m),
        HostError::Unavailable(m) => Error::Unavailable(m),
        HostError::Invalid(m) => Error::Invalid(m),
        HostError::Conflict(m) => Error::Unavailable(format!("{CONCURRENT_WRITER_WON}: {m}")),
        HostError::Rejected(m) => Error::Unavailable(format!("the remote moved: {m}")),
        HostError::NotFound(m) => Error::Internal(format!("not found: {m}")),
        HostError::Internal(m) => Error::Internal(m),
    }
}

impl From<HostError> for Error {
    fn from(error: HostError) -> Error {
        host_error(error)
    }
}
