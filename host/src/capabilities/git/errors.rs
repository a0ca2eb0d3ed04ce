//! libgit2 errors onto the contract. libgit2's messages name URLs (which
//! never carry credentials here) and HTTP statuses, never the token.

use crate::runtime::bindings::wit_types::HostError;
use git2::{ErrorClass, ErrorCode};
use std::path::Path;

/// Said by our credentials callback when the remote asks a second time,
/// i.e. it refused the token (libgit2 would otherwise ask forever).
pub const CREDENTIALS_REFUSED: &str = "storehost: the git remote refused the credentials";

/// Maps an error from a network call (fetch, push) against the cache in
/// `cache_dir`.
pub fn network(error: git2::Error, url: &str, cache_dir: &Path) -> HostError {
    let message = error.message().to_string();
    // The cache failed, not the remote (a lock held, a full disk): said as
    // such, with libgit2's message naming the file, and retried as the
    // remote would be.
    if error.code() == ErrorCode::Locked || message.contains(&*cache_dir.to_string_lossy()) {
        return HostError::Unavailable(format!(
            "the local git cache at {} failed while talking to {url}: {message}",
            cache_dir.display()
        ));
    }
    if message.contains(CREDENTIALS_REFUSED)
        || error.code() == ErrorCode::Auth
        || message.contains("authentication")
    {
        return HostError::Denied(format!(
            "the git remote {url} refused the credentials (check GITSTORE_GIT_USERNAME and GITSTORE_GIT_TOKEN)"
        ));
    }
    // A progress callback returned false: the deadline passed.
    if error.code() == ErrorCode::User || message.contains("timed out") {
        return HostError::Unavailable(format!("the git remote {url} did not answer in time"));
    }
    if let Some(status) = http_status(&message) {
        return match status {
            404 => HostError::Invalid(format!("there is no git repository at {url} (HTTP 404)")),
            401 | 403 => HostError::Denied(format!(
                "the git remote {url} refused access (HTTP {status})"
            )),
            s if s >= 500 || s == 429 => {
                HostError::Unavailable(format!("the git remote {url} is unavailable (HTTP {s})"))
            }
            s => HostError::Invalid(format!("the git remote {url} answered HTTP {s}")),
        };
    }
    match error.class() {
        ErrorClass::Ssl => {
            HostError::Unavailable(format!("TLS with the git remote {url} failed: {message}"))
        }
        ErrorClass::Net | ErrorClass::Http | ErrorClass::Os => {
            HostError::Unavailable(format!("git remote {url} unreachable: {message}"))
        }
        _ if is_corruption(&error) => {
            HostError::Internal(format!("local git repository: {message}"))
        }
        _ => HostError::Unavailable(format!("git with {url} failed: {message}")),
    }
}

/// Maps an error from local work on the repository.
pub fn local(error: git2::Error) -> HostError {
    match error.code() {
        ErrorCode::NotFound => HostError::NotFound(error.message().to_string()),
        ErrorCode::InvalidSpec | ErrorCode::Invalid | ErrorCode::Ambiguous => {
            HostError::Invalid(error.message().to_string())
        }
        _ => HostError::Internal(format!("local git repository: {}", error.message())),
    }
}

/// Whether the error means the local repository is damaged (missing or
/// unreadable objects, packs or refs), so it should be fetched again.
pub fn is_corruption(error: &git2::Error) -> bool {
    matches!(
        error.class(),
        ErrorClass::Odb
            | ErrorClass::Zlib
            | ErrorClass::Indexer
            | ErrorClass::Object
            | ErrorClass::Reference
            | ErrorClass::Repository
            | ErrorClass::Tree
    ) && !matches!(error.code(), ErrorCode::InvalidSpec | ErrorCode::Ambiguous)
}

fn http_status(message: &str) -> Option<u16> {
    let rest = message.split("status code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_are_read_from_libgit2_messages() {
        assert_eq!(http_status("unexpected http status code: 404"), Some(404));
        assert_eq!(http_status("unexpected HTTP status code: 503 x"), Some(503));
        assert_eq!(http_status("no status here"), None);
    }

    const CACHE: &str = "/var/lib/storehost/.storehost/git/cache-1";

    #[test]
    fn a_refused_token_is_denied_without_looping() {
        let error = git2::Error::from_str(CREDENTIALS_REFUSED);
        assert!(matches!(
            network(error, "https://h/r.git", Path::new(CACHE)),
            HostError::Denied(_)
        ));
    }

    #[test]
    fn a_failure_of_the_local_cache_is_not_called_the_remote_unreachable() {
        let url = "https://h/r.git";
        let locked = git2::Error::new(
            ErrorCode::Locked,
            ErrorClass::Os,
            format!("failed to lock file '{CACHE}/refs/storehost/push.lock' for writing"),
        );
        let full = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Os,
            format!("failed to write '{CACHE}/objects/pack/tmp_pack_x': No space left on device"),
        );
        for error in [locked, full] {
            let HostError::Unavailable(said) = network(error, url, Path::new(CACHE)) else {
                panic!("not retried");
            };
            assert!(said.starts_with("the local git cache at"), "{said}");
            assert!(
                said.contains(&format!("'{CACHE}/")),
                "names the file: {said}"
            );
            assert!(!said.contains("unreachable"), "{said}");
        }
        let refused = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Os,
            "failed to connect to h: Connection refused",
        );
        let said = format!("{:?}", network(refused, url, Path::new(CACHE)));
        assert!(said.contains("unreachable"), "{said}");
    }
}
