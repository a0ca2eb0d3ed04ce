//! Talking to the remote: credentials from the secret, deadlines, and the
//! checks that make a push fast-forward-only or leased.

use super::NETWORK_TIMEOUT;
use super::errors::CREDENTIALS_REFUSED;
use crate::capabilities::secrets::SecretValue;
use git2::{Cred, CredentialType, Oid, RemoteCallbacks};
use std::fmt;
use std::sync::Once;
use std::time::{Duration, Instant};

/// libgit2's socket timeouts: to connect, and for each read or write.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the remote is and how to log in. `Debug` hides the token.
#[derive(Clone)]
pub struct RemoteSpec {
    pub url: String,
    /// `None` follows the remote's default branch.
    pub pinned_branch: Option<String>,
    pub username: String,
    token: SecretValue,
}

impl fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSpec")
            .field("url", &self.url)
            .field("pinned_branch", &self.pinned_branch)
            .field("username", &self.username)
            .field("token", &self.token)
            .finish()
    }
}

impl RemoteSpec {
    pub fn new(
        url: String,
        pinned_branch: Option<String>,
        username: String,
        token: SecretValue,
    ) -> Self {
        set_socket_timeouts();
        if sends_token_in_clear(&url) {
            tracing::warn!(%url, "the git remote is plain http: the token crosses the network unencrypted");
        }
        RemoteSpec {
            url,
            pinned_branch: pinned_branch.filter(|b| !b.is_empty()),
            username,
            token,
        }
    }

    /// Callbacks for one network call: the token once (a second request
    /// means it was refused), and a deadline checked on every progress
    /// report.
    pub fn callbacks<'a>(&self, deadline: Instant) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let (username, token) = (self.username.clone(), self.token.clone());
        let mut offered = false;
        callbacks.credentials(move |_url, _user, allowed| {
            if offered || !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                return Err(git2::Error::from_str(CREDENTIALS_REFUSED));
            }
            offered = true;
            Cred::userpass_plaintext(&username, token.expose())
        });
        callbacks.transfer_progress(move |_| Instant::now() < deadline);
        callbacks.sideband_progress(move |_| Instant::now() < deadline);
        callbacks.push_transfer_progress(move |_, _, _| {
            // Cannot cancel here; the socket timeouts bound a stalled push.
        });
        callbacks
    }

    pub fn deadline() -> Instant {
        Instant::now() + NETWORK_TIMEOUT
    }
}

/// Plain `http://` to anything but this machine.
fn sends_token_in_clear(url: &str) -> bool {
    let Some(scheme) = url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")) else {
        return false;
    };
    let authority = url[scheme.len()..].split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    !matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1"
    )
}

fn set_socket_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: process-wide libgit2 options, set once before any
        // network call of ours.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis(CONNECT_TIMEOUT));
            let _ = git2::opts::set_server_timeout_in_milliseconds(millis(IO_TIMEOUT));
        }
    });
}

/// What the remote advertised.
pub struct Advertised {
    /// `refs/heads/<name>` → commit.
    pub branches: Vec<(String, Oid)>,
    /// The branch the remote's `HEAD` points at, when it says.
    pub default_branch: Option<String>,
}

impl Advertised {
    pub fn read(heads: &[git2::RemoteHead<'_>]) -> Advertised {
        let mut advertised = Advertised {
            branches: Vec::new(),
            default_branch: None,
        };
        for head in heads {
            if let Some(name) = head.name().strip_prefix("refs/heads/") {
                advertised.branches.push((name.to_string(), head.oid()));
            } else if head.name() == "HEAD" {
                advertised.default_branch = head
                    .symref_target()
                    .and_then(|target| target.strip_prefix("refs/heads/"))
                    .map(str::to_string);
            }
        }
        advertised
    }

    pub fn head_of(&self, branch: &str) -> Option<Oid> {
        self.branches
            .iter()
            .find(|(name, _)| name == branch)
            .map(|(_, oid)| *oid)
    }

    /// The branch to follow when none is pinned: the remote's `HEAD`, else
    /// the one followed before, else `main`, `master` or the only branch;
    /// an empty remote gets `main`.
    pub fn follow(&self, before: Option<&str>) -> String {
        let exists = |name: &str| self.head_of(name).is_some();
        if let Some(default) = &self.default_branch
            && exists(default)
        {
            return default.clone();
        }
        if let Some(before) = before
            && (exists(before) || self.branches.is_empty())
        {
            return before.to_string();
        }
        for name in ["main", "master"] {
            if exists(name) {
                return name.to_string();
            }
        }
        match self.branches.as_slice() {
            [(only, _)] => only.clone(),
            _ => self
                .default_branch
                .clone()
                .unwrap_or_else(|| "main".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised(default: Option<&str>, branches: &[&str]) -> Advertised {
        Advertised {
            branches: branches
                .iter()
                .map(|b| (b.to_string(), Oid::ZERO_SHA1))
                .collect(),
            default_branch: default.map(str::to_string),
        }
    }

    #[test]
    fn the_followed_branch_is_the_remote_default_when_it_exists() {
        assert_eq!(
            advertised(Some("trunk"), &["trunk", "main"]).follow(None),
            "trunk"
        );
        assert_eq!(
            advertised(Some("gone"), &["dev", "main"]).follow(None),
            "main"
        );
        assert_eq!(advertised(None, &["dev"]).follow(None), "dev");
        assert_eq!(advertised(None, &["a", "b"]).follow(Some("b")), "b");
        assert_eq!(advertised(None, &[]).follow(None), "main");
        assert_eq!(advertised(None, &[]).follow(Some("tokens")), "tokens");
    }

    #[test]
    fn plain_http_is_flagged_unless_it_stays_on_this_machine() {
        assert!(sends_token_in_clear("http://git.example.com/r.git"));
        assert!(sends_token_in_clear("HTTP://10.0.0.2:8080/r.git"));
        assert!(!sends_token_in_clear("https://git.example.com/r.git"));
        assert!(!sends_token_in_clear("http://127.0.0.1:3000/r.git"));
        assert!(!sends_token_in_clear("http://localhost/r.git"));
        assert!(!sends_token_in_clear("http://[::1]:3000/r.git"));
    }

    #[test]
    fn debug_hides_the_token() {
        let spec = RemoteSpec::new(
            "https://h/r.git".into(),
            None,
            "git".into(),
            SecretValue::new("ghp_hidden_value"),
        );
        assert!(!format!("{spec:?}").contains("ghp_hidden_value"));
    }
}
