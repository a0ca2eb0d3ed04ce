//! What the service's answers mean to the host.

use crate::http::Response;
use storehost_sdk::Error;

/// A write's outcome where the only expected refusal is its condition.
pub enum Answer<T> {
    Done(T),
    ConditionFailed,
}

impl Response {
    /// The service's error code (`x-ms-error-code`), e.g. `AuthenticationFailed`.
    pub fn error_code(&self) -> Option<&str> {
        self.header("x-ms-error-code")
    }
}

/// An unexpected answer to `doing`: refused credentials are `denied`,
/// throttling and server trouble `unavailable` (the host retries), the
/// rest `internal`. Only the status and the service's error code are
/// quoted; the URL (which may carry a SAS) never is.
pub fn refused(doing: &str, response: &Response) -> Error {
    let code = response.error_code().unwrap_or("no error code");
    let status = response.status;
    let what = format!("{doing}: the storage service answered {status} ({code})");
    match status {
        401 | 403 => Error::Denied(format!(
            "{what}; check the account key or SAS the host is given"
        )),
        404 if code == "ContainerNotFound" => {
            Error::Unavailable(format!("{what}; `prepare` creates the container"))
        }
        408 | 429 | 500..=599 => Error::Unavailable(what),
        _ => Error::Internal(what),
    }
}
