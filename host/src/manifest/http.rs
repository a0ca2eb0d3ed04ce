//! `grants.http`: the URLs a plugin may reach, each rule with an optional
//! credential the host applies, its timeouts, size cap and CA file.
//!
//! ```yaml
//! grants:
//!   http:
//!     - url: https://acct.blob.core.windows.net/tokens   # scheme, host, port, path prefix
//!       credential:                                      # at most one of:
//!         header: { name: authorization, prefix: "Bearer ", value: { env: TOKEN } }
//!         # basic: { username: { env: USER }, password: { file: /run/pw } }
//!         # query: { token: { env: SAS } }
//!         # azure_shared_key: { account: acct, key: { env: AZ_KEY } }
//!       ca_file: ./ca.pem
//!       connect_timeout_ms: 10000
//!       first_byte_timeout_ms: 30000
//!       between_bytes_timeout_ms: 30000
//!       max_response_bytes: 67108864
//! ```

use super::{ManifestError, Node, SecretSource, read_secret};
use crate::capabilities::http::{Credential, HttpLimits, HttpRule, UrlPrefix};
use http::HeaderName;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One rule as written: secrets are still sources, read by [`Self::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRuleSpec {
    /// The manifest key of the rule, for errors.
    pub key: String,
    pub prefix: UrlPrefix,
    pub credential: Option<CredentialSpec>,
    pub limits: HttpLimits,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSpec {
    Header {
        name: HeaderName,
        prefix: String,
        value: SecretSource,
    },
    Basic {
        username: SecretSource,
        password: SecretSource,
    },
    Query {
        token: SecretSource,
    },
    AzureSharedKey {
        account: String,
        key: SecretSource,
    },
}

const RULE_KEYS: [&str; 7] = [
    "url",
    "credential",
    "ca_file",
    "connect_timeout_ms",
    "first_byte_timeout_ms",
    "between_bytes_timeout_ms",
    "max_response_bytes",
];
const CREDENTIAL_KINDS: [&str; 4] = ["header", "basic", "query", "azure_shared_key"];
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1..=3_600_000;

impl HttpRuleSpec {
    /// The rule with its secrets read.
    pub fn load(&self) -> Result<HttpRule, ManifestError> {
        let key = |part: &str| format!("{}.credential.{part}", self.key);
        let credential = match &self.credential {
            None => None,
            Some(CredentialSpec::Header {
                name,
                prefix,
                value,
            }) => Some(Credential::Header {
                name: name.clone(),
                prefix: prefix.clone(),
                value: read_secret(&key("header.value"), value)?,
            }),
            Some(CredentialSpec::Basic { username, password }) => Some(Credential::Basic {
                username: read_secret(&key("basic.username"), username)?,
                password: read_secret(&key("basic.password"), password)?,
            }),
            Some(CredentialSpec::Query { token }) => Some(Credential::Query {
                token: read_secret(&key("query.token"), token)?,
            }),
            Some(CredentialSpec::AzureSharedKey {
                account,
                key: source,
            }) => Some(Credential::AzureSharedKey {
                account: account.clone(),
                key: read_secret(&key("azure_shared_key.key"), source)?,
            }),
        };
        Ok(HttpRule {
            prefix: self.prefix.clone(),
            credential,
            limits: self.limits,
            ca_file: self.ca_file.clone(),
        })
    }
}

impl Node<'_> {
    pub(super) fn http_rules(&self, base: &Path) -> Result<Vec<HttpRuleSpec>, ManifestError> {
        self.list()?
            .iter()
            .map(|rule| rule.http_rule(base))
            .collect()
    }

    fn http_rule(&self, base: &Path) -> Result<HttpRuleSpec, ManifestError> {
        self.only_keys(&RULE_KEYS)?;
        let url = self.required("url")?;
        let prefix = UrlPrefix::parse(&url.string()?).map_err(|e| url.invalid(e.to_string()))?;
        let defaults = HttpLimits::default();
        let millis = |name: &str, default: Duration| -> Result<Duration, ManifestError> {
            self.optional(name)
                .map(|n| n.number(TIMEOUT_MS).map(Duration::from_millis))
                .unwrap_or(Ok(default))
        };
        let limits = HttpLimits {
            connect_timeout: millis("connect_timeout_ms", defaults.connect_timeout)?,
            first_byte_timeout: millis("first_byte_timeout_ms", defaults.first_byte_timeout)?,
            between_bytes_timeout: millis(
                "between_bytes_timeout_ms",
                defaults.between_bytes_timeout,
            )?,
            max_response_bytes: self
                .optional("max_response_bytes")
                .map(|n| n.number(1..=(1 << 32)))
                .unwrap_or(Ok(defaults.max_response_bytes))?,
        };
        Ok(HttpRuleSpec {
            key: self.key.clone(),
            prefix,
            credential: self
                .optional("credential")
                .map(|n| n.credential(base))
                .transpose()?,
            limits,
            ca_file: self
                .optional("ca_file")
                .map(|n| n.string().map(|s| base.join(s)))
                .transpose()?,
        })
    }

    fn credential(&self, base: &Path) -> Result<CredentialSpec, ManifestError> {
        self.only_keys(&CREDENTIAL_KINDS)?;
        let entries = self.entries()?;
        let [(kind, node)] = entries.as_slice() else {
            return Err(
                self.wrong("a mapping with exactly one of header, basic, query, azure_shared_key")
            );
        };
        let secret = |name: &str| node.required(name)?.secret_source(base);
        Ok(match kind.as_str() {
            "header" => {
                node.only_keys(&["name", "prefix", "value"])?;
                let name_node = node.required("name")?;
                let name = HeaderName::try_from(name_node.string()?)
                    .map_err(|_| name_node.invalid("not a header name".into()))?;
                let prefix = match node.optional("prefix") {
                    // A prefix such as "Bearer " ends with a space; kept as written.
                    Some(prefix) => prefix.raw_string()?,
                    None => String::new(),
                };
                CredentialSpec::Header {
                    name,
                    prefix,
                    value: secret("value")?,
                }
            }
            "basic" => {
                node.only_keys(&["username", "password"])?;
                CredentialSpec::Basic {
                    username: secret("username")?,
                    password: secret("password")?,
                }
            }
            "query" => {
                node.only_keys(&["token"])?;
                CredentialSpec::Query {
                    token: secret("token")?,
                }
            }
            _ => {
                node.only_keys(&["account", "key"])?;
                CredentialSpec::AzureSharedKey {
                    account: node.required("account")?.string()?,
                    key: secret("key")?,
                }
            }
        })
    }

    fn invalid(&self, message: String) -> ManifestError {
        ManifestError::Invalid {
            key: self.key.clone(),
            message,
        }
    }

    fn raw_string(&self) -> Result<String, ManifestError> {
        match self.yaml {
            yaml_rust2::Yaml::String(s) => Ok(s.clone()),
            _ => Err(self.wrong("a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Manifest;
    use super::*;

    fn parse(rules: &str) -> Result<Manifest, ManifestError> {
        let text = format!("plugin: {{ file: p.wasm }}\ngrants:\n  http:\n{rules}");
        Manifest::parse(&text, "m", Path::new("/m"))
    }

    #[test]
    fn rules_parse_with_each_credential_kind_and_defaults() {
        let manifest = parse(
            "    - url: https://a.example/tokens/\n\
             \x20     credential: { header: { name: X-Api-Key, prefix: 'Key ', value: { env: K } } }\n\
             \x20     connect_timeout_ms: 500\n\
             \x20     ca_file: ca.pem\n\
             \x20   - url: http://127.0.0.1:10000/devstoreaccount1\n\
             \x20     credential: { azure_shared_key: { account: devstoreaccount1, key: { file: key } } }\n\
             \x20   - url: https://b.example\n\
             \x20     credential: { basic: { username: { env: U }, password: { env: P } } }\n\
             \x20   - url: https://c.example\n\
             \x20     credential: { query: { token: { env: SAS } } }\n\
             \x20   - url: https://d.example\n",
        )
        .unwrap();
        let rules = &manifest.http;
        assert_eq!(rules.len(), 5);
        assert_eq!(rules[0].key, "grants.http[0]");
        assert_eq!(
            rules[0].credential,
            Some(CredentialSpec::Header {
                name: HeaderName::from_static("x-api-key"),
                prefix: "Key ".into(),
                value: SecretSource::Env("K".into()),
            })
        );
        assert_eq!(rules[0].limits.connect_timeout, Duration::from_millis(500));
        assert_eq!(
            rules[0].limits.first_byte_timeout,
            HttpLimits::default().first_byte_timeout
        );
        assert_eq!(rules[0].ca_file.as_deref(), Some(Path::new("/m/ca.pem")));
        assert_eq!(
            rules[1].credential,
            Some(CredentialSpec::AzureSharedKey {
                account: "devstoreaccount1".into(),
                key: SecretSource::File("/m/key".into()),
            })
        );
        assert!(matches!(
            rules[2].credential,
            Some(CredentialSpec::Basic { .. })
        ));
        assert!(matches!(
            rules[3].credential,
            Some(CredentialSpec::Query { .. })
        ));
        assert_eq!(rules[4].credential, None);
    }

    #[test]
    fn every_rule_problem_names_its_key() {
        let cases = [
            ("    - {}\n", "`grants.http[0].url` is required"),
            ("    - url: ftp://x\n", "`grants.http[0].url`: `ftp://x`"),
            (
                "    - url: https://x?sig=1\n",
                "`grants.http[0].url`: `https://x?sig=1`: a rule's URL has no",
            ),
            (
                "    - url: https://x\n      follow: true\n",
                "`grants.http[0].follow` is not known",
            ),
            (
                "    - url: https://x\n      connect_timeout_ms: 0\n",
                "`grants.http[0].connect_timeout_ms`: must be a whole number",
            ),
            (
                "    - url: https://x\n      credential: { oauth: {} }\n",
                "`grants.http[0].credential.oauth` is not known",
            ),
            (
                "    - url: https://x\n      credential: { query: { token: { env: A } }, basic: {} }\n",
                "`grants.http[0].credential` must be a mapping with exactly one",
            ),
            (
                "    - url: https://x\n      credential: { header: { name: 'bad name', value: { env: A } } }\n",
                "`grants.http[0].credential.header.name`: not a header name",
            ),
            (
                "    - url: https://x\n      credential: { basic: { username: { env: A } } }\n",
                "`grants.http[0].credential.basic.password` is required",
            ),
            ("  - x\n", "`grants.http[0]` must be a mapping"),
        ];
        for (rules, expected) in cases {
            let error = parse(rules).unwrap_err().to_string();
            assert!(error.contains(expected), "{rules:?}: {error}");
        }
        let error = Manifest::parse(
            "plugin: { file: p.wasm }\ngrants: { http: https://x }\n",
            "m",
            Path::new("/m"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`grants.http` must be a list"), "{error}");
    }

    #[test]
    fn a_missing_secret_or_a_bad_key_is_refused_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "not-base64-canary-5151!\n").unwrap();
        let text = "plugin: { file: p.wasm }\ngrants:\n  http:\n\
                    \x20   - url: https://x\n\
                    \x20     credential: { azure_shared_key: { account: a, key: { file: key } } }\n";
        let manifest = Manifest::parse(text, "m", dir.path()).unwrap();
        let error = manifest.grants().unwrap_err().to_string();
        assert!(error.contains("not base64"), "{error}");
        assert!(!error.contains("canary-5151"), "{error}");

        let text = "plugin: { file: p.wasm }\ngrants:\n  http:\n\
                    \x20   - url: https://x\n\
                    \x20     credential: { query: { token: { env: STOREHOST_TEST_UNSET_SAS_61 } } }\n";
        let error = Manifest::parse(text, "m", dir.path())
            .unwrap()
            .grants()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("grants.http[0].credential.query.token.env"),
            "{error}"
        );
    }

    #[test]
    fn an_unreadable_ca_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        for (file, expected) in [
            ("missing.pem", "cannot read the CA file"),
            ("empty.pem", "holds no certificate"),
        ] {
            let text = format!(
                "plugin: {{ file: p.wasm }}\ngrants:\n  http:\n    - {{ url: 'https://x', ca_file: {file} }}\n"
            );
            let error = Manifest::parse(&text, "m", dir.path())
                .unwrap()
                .grants()
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected) && error.contains(file), "{error}");
        }
    }
}
