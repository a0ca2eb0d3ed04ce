//! Which URLs a plugin may reach: a rule is a URL prefix (scheme, host,
//! port, optional path) with the limits of the requests it lets through.

use http::Uri;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why a URL prefix in a grant is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("`{0}` is not a URL")]
    NotUrl(String),
    #[error("`{0}`: only http and https are allowed")]
    Scheme(String),
    #[error("`{0}`: a rule's URL has no user, query or fragment")]
    Extra(String),
}

/// `scheme://host[:port][/path]`, compared without case in scheme and host,
/// the port made explicit, the path without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPrefix {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

impl UrlPrefix {
    pub fn parse(text: &str) -> Result<UrlPrefix, PrefixError> {
        let url = url::Url::parse(text.trim()).map_err(|_| PrefixError::NotUrl(text.into()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(PrefixError::Scheme(text.into())),
        };
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(PrefixError::Extra(text.into()));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string().to_ascii_lowercase(),
            None => return Err(PrefixError::NotUrl(text.into())),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| PrefixError::NotUrl(text.into()))?;
        let path = url.path().trim_end_matches('/').to_string();
        Ok(UrlPrefix {
            https,
            host,
            port,
            path,
        })
    }

    /// Whether `uri` lies under this prefix. A path with a dot segment
    /// (plain or percent-encoded) never matches: it could climb out.
    pub fn matches(&self, uri: &Uri) -> bool {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path();
        https == self.https
            && host.eq_ignore_ascii_case(&self.host)
            && port == self.port
            && !has_dot_segment(path)
            && (path == self.path
                || self.path.is_empty()
                || path
                    .strip_prefix(self.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    /// A rule names a private address explicitly when its host is an IP
    /// literal or `localhost`; a name that merely resolves to one does not.
    pub fn names_address(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok()
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

impl std::fmt::Display for UrlPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded == "." || decoded == ".." || decoded.contains(['/', '\\'])
    })
}

/// How long a request may take and how much it may bring back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
    pub max_response_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
        }
    }
}

/// One rule of a plugin's HTTP grant, before its client is built.
#[derive(Debug, Clone)]
pub struct HttpRule {
    pub prefix: UrlPrefix,
    pub credential: Option<super::Credential>,
    pub limits: HttpLimits,
    /// A PEM file of extra certificate authorities, trusted besides the
    /// system's for this rule only.
    pub ca_file: Option<PathBuf>,
}

/// Whether an address may be reached without a rule naming it: not
/// loopback, private, link-local, shared (CGNAT), unspecified or a
/// unique-local IPv6 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn a_prefix_matches_its_scheme_host_port_and_path_only() {
        let prefix = UrlPrefix::parse("https://Acct.Blob.example.net/tokens/").unwrap();
        assert!(prefix.matches(&uri("https://acct.blob.example.net/tokens")));
        assert!(prefix.matches(&uri("https://ACCT.blob.example.net:443/tokens/a?x=1")));
        for refused in [
            "http://acct.blob.example.net/tokens/a",
            "https://acct.blob.example.net:444/tokens/a",
            "https://other.example.net/tokens/a",
            "https://acct.blob.example.net/tokens2/a",
            "https://acct.blob.example.net/",
            "https://acct.blob.example.net/tokens/../secrets",
            "https://acct.blob.example.net/tokens/%2e%2E/secrets",
            "https://acct.blob.example.net/tokens/a%2Fb",
            "https://acct.blob.example.net.evil.com/tokens/a",
        ] {
            assert!(!prefix.matches(&uri(refused)), "{refused}");
        }
    }

    #[test]
    fn a_prefix_without_a_path_covers_the_host() {
        let prefix = UrlPrefix::parse("http://127.0.0.1:8080").unwrap();
        assert!(prefix.matches(&uri("http://127.0.0.1:8080/")));
        assert!(prefix.matches(&uri("http://127.0.0.1:8080/a/b")));
        assert!(prefix.names_address());
        assert!(
            UrlPrefix::parse("http://[::1]:9/x")
                .unwrap()
                .matches(&uri("http://[::1]:9/x/y"))
        );
        assert!(
            !UrlPrefix::parse("https://db.example")
                .unwrap()
                .names_address()
        );
    }

    #[test]
    fn a_prefix_is_a_plain_http_url() {
        for bad in [
            "ftp://h/x",
            "https://user:pw@h/x",
            "https://h/x?sig=1",
            "https://h/x#f",
            "h/x",
        ] {
            assert!(UrlPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
