//! What a plugin may use: capabilities, secret names and one directory.
//! The host enforces it; `storehost plugin inspect` shows what a component
//! asks for.

use crate::capabilities::http::HttpGrant;
use crate::capabilities::secrets::SecretValue;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    Secrets,
    Log,
    Sql,
    Objects,
    Git,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::Secrets,
        Capability::Log,
        Capability::Sql,
        Capability::Objects,
        Capability::Git,
    ];

    /// The WIT interface name, e.g. `sql`.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Secrets => "secrets",
            Capability::Log => "log",
            Capability::Sql => "sql",
            Capability::Objects => "objects",
            Capability::Git => "git",
        }
    }

    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// The grant of one plugin. `Debug` never shows secret values.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    capabilities: BTreeSet<Capability>,
    secrets: BTreeMap<String, SecretValue>,
    directory: Option<PathBuf>,
    endpoints: BTreeSet<String>,
    git_dir: Option<PathBuf>,
    http: Option<Arc<HttpGrant>>,
}

impl Grants {
    /// Logging only: what every plugin gets.
    pub fn minimal() -> Self {
        Grants::default().with_capability(Capability::Log)
    }

    pub fn with_capability(mut self, capability: Capability) -> Self {
        self.capabilities.insert(capability);
        self
    }

    /// Grants a named secret (and with it the `secrets` capability).
    pub fn with_secret(mut self, name: impl Into<String>, value: SecretValue) -> Self {
        self.capabilities.insert(Capability::Secrets);
        self.secrets.insert(name.into(), value);
        self
    }

    /// The one directory the plugin sees, preopened at `/store`.
    pub fn with_directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// Where the `git` capability keeps its local repositories: host-owned
    /// and never preopened in the guest.
    pub fn with_git_dir(mut self, directory: impl Into<PathBuf>) -> Self {
        self.git_dir = Some(directory.into());
        self
    }

    /// Outbound HTTP through `wasi:http`, to the URLs the rules cover;
    /// only a plugin with this grant has `wasi:http` linked at all.
    pub fn with_http(mut self, grant: HttpGrant) -> Self {
        self.http = Some(Arc::new(grant));
        self
    }

    pub fn http(&self) -> Option<&Arc<HttpGrant>> {
        self.http.as_ref()
    }

    pub fn git_dir(&self) -> Option<&PathBuf> {
        self.git_dir.as_ref()
    }

    /// A network endpoint (`scheme://host[:port]`, or a repository URL) the
    /// plugin may open.
    pub fn with_endpoint(mut self, endpoint: impl AsRef<str>) -> Self {
        self.endpoints.insert(normalize_endpoint(endpoint.as_ref()));
        self
    }

    pub fn allows_endpoint(&self, endpoint: &str) -> bool {
        self.endpoints.contains(&normalize_endpoint(endpoint))
    }

    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(String::as_str)
    }

    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    pub fn secret(&self, name: &str) -> Option<&SecretValue> {
        self.secrets.get(name)
    }

    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    pub fn directory(&self) -> Option<&PathBuf> {
        self.directory.as_ref()
    }

    pub fn capabilities(&self) -> impl Iterator<Item = Capability> + '_ {
        self.capabilities.iter().copied()
    }
}

/// Endpoints compare without case in scheme and host and without a
/// trailing slash.
fn normalize_endpoint(endpoint: &str) -> String {
    endpoint.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_grant_allows_only_logging() {
        let grants = Grants::minimal();
        assert!(grants.allows(Capability::Log));
        for capability in [
            Capability::Secrets,
            Capability::Sql,
            Capability::Objects,
            Capability::Git,
        ] {
            assert!(!grants.allows(capability), "{capability}");
        }
    }

    #[test]
    fn granting_a_secret_grants_the_secrets_capability_and_hides_the_value() {
        let grants = Grants::minimal().with_secret("token", SecretValue::new("hunter2-value"));
        assert!(grants.allows(Capability::Secrets));
        assert_eq!(grants.secret_names().collect::<Vec<_>>(), ["token"]);
        assert!(!format!("{grants:?}").contains("hunter2-value"));
    }

    #[test]
    fn only_the_granted_endpoint_may_be_opened() {
        let grants = Grants::minimal().with_endpoint("https://S3.example.com:9000/");
        assert!(grants.allows_endpoint("https://s3.example.com:9000"));
        assert!(!grants.allows_endpoint("http://s3.example.com:9000"));
        assert!(!grants.allows_endpoint("https://evil.example.com"));
        assert!(!Grants::minimal().allows_endpoint("https://s3.example.com:9000"));
    }
}
