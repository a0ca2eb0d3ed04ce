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
    /// It goes into errors and logs, so anything but a short identifier
    /// (what the service sends) is dropped.
    pub fn error_code(&self) -> Option<&str> {
        self.header("x-ms-error-code").filter(|code| {
            (1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: &str) -> Response {
        Response {
            status,
            headers: vec![("x-ms-error-code".into(), code.as_bytes().to_vec())],
            body: Vec::new(),
        }
    }

    #[test]
    fn statuses_map_to_what_the_host_does_and_odd_codes_are_dropped() {
        assert!(
            matches!(refused("x", &answer(403, "AuthenticationFailed")), Error::Denied(m) if m.contains("403 (AuthenticationFailed)"))
        );
        assert!(matches!(
            refused("x", &answer(503, "ServerBusy")),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            refused("x", &answer(404, "ContainerNotFound")),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            refused("x", &answer(400, "InvalidHeaderValue")),
            Error::Internal(_)
        ));
        let hostile = refused("x", &answer(400, "evil\nline sig=abc"));
        assert!(
            matches!(&hostile, Error::Internal(m) if m.contains("(no error code)") && !m.contains("evil"))
        );
    }
}
