//! The plugin manifest (`storehost.yaml`): which component to load, its
//! optional pin, its settings and everything it is granted, including
//! secrets read from the environment or a file. Every problem is one error
//! naming the key, found before anything is created.
//!
//! ```yaml
//! plugin:
//!   file: ./my-backend.wasm
//!   sha256: 9f2c…          # optional: a different file is refused
//! settings: { container: tokens }
//! grants:
//!   directory: ./data                 # seen inside as /store
//!   capabilities: [sql]               # any of sql, objects, git
//!   endpoints: [https://db.example]
//!   secrets:
//!     dsn: { env: MY_DSN }            # or { file: /run/secrets/dsn }
//!   http:                             # wasi:http, only to these URLs
//!     - url: https://acct.blob.core.windows.net/tokens
//!       credential: { azure_shared_key: { account: acct, key: { env: AZ_KEY } } }
//! workspace: ./ws
//! ```

mod http;

pub use http::{CredentialSpec, HttpRuleSpec};

use crate::capabilities::http::HttpGrant;
use crate::capabilities::secrets::SecretValue;
use crate::capabilities::{Capability, Grants};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use yaml_rust2::Yaml;

/// The default manifest file name, looked for in the current directory.
pub const DEFAULT_MANIFEST: &str = "storehost.yaml";

/// Capabilities a manifest may grant (logging is always granted, secrets
/// with the first secret).
const GRANTABLE: [Capability; 3] = [Capability::Sql, Capability::Objects, Capability::Git];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the manifest {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the manifest {path} is not valid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("manifest key `{key}` is not known (known here: {known})")]
    UnknownKey { key: String, known: String },
    #[error("manifest key `{key}` is required")]
    Missing { key: String },
    #[error("manifest key `{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error(
        "manifest key `{key}`: `{value}` is not a capability a manifest grants (sql, objects, git)"
    )]
    UnknownCapability { key: String, value: String },
    #[error("manifest key `{key}`: the environment variable {variable} is not set or empty")]
    SecretEnvMissing { key: String, variable: String },
    #[error("manifest key `{key}`: cannot read the secret file {path}: {source}")]
    SecretFile {
        key: String,
        path: String,
        source: std::io::Error,
    },
    #[error("manifest key `plugin.file`: cannot read {path}: {source}")]
    PluginFile {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "manifest key `plugin.sha256`: {path} has sha256 {actual}, the manifest pins {expected}; refusing to load it"
    )]
    PinMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("manifest key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("manifest key `grants.http`: {0}")]
    Http(#[from] crate::capabilities::http::HttpGrantError),
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// A parsed manifest, paths resolved against its directory. Nothing in it
/// is secret: secrets are read by [`Manifest::load_plugin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub plugin_file: PathBuf,
    pub sha256: Option<String>,
    pub settings: Vec<(String, String)>,
    pub directory: Option<PathBuf>,
    pub capabilities: Vec<Capability>,
    pub endpoints: Vec<String>,
    pub secrets: Vec<(String, SecretSource)>,
    pub http: Vec<HttpRuleSpec>,
    pub workspace: Option<PathBuf>,
}

/// The component and its grants, ready to load.
pub struct LoadedPlugin {
    pub name: String,
    pub wasm: Vec<u8>,
    pub settings: Vec<(String, String)>,
    pub grants: Grants,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse(&text, &path.display().to_string(), base)
    }

    /// Parses `text`; relative paths are taken from `base`.
    pub fn parse(text: &str, name: &str, base: &Path) -> Result<Manifest, ManifestError> {
        let docs =
            yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| ManifestError::Yaml {
                path: name.to_string(),
                message: e.to_string(),
            })?;
        let root = docs.into_iter().next().unwrap_or(Yaml::Null);
        let root = Node::new(&root, "");
        root.only_keys(&["plugin", "settings", "grants", "workspace"])?;
        let plugin = root.required("plugin")?;
        plugin.only_keys(&["file", "sha256"])?;
        let grants = root.optional("grants");
        if let Some(grants) = &grants {
            grants.only_keys(&["directory", "capabilities", "endpoints", "secrets", "http"])?;
        }
        let grant = |key: &str| grants.as_ref().and_then(|g| g.optional(key));
        let path_at = |node: Option<Node>| -> Result<Option<PathBuf>, ManifestError> {
            node.map(|node| node.string().map(|s| base.join(s)))
                .transpose()
        };
        Ok(Manifest {
            plugin_file: base.join(plugin.required("file")?.string()?),
            sha256: plugin.optional("sha256").map(|n| n.pin()).transpose()?,
            settings: root
                .optional("settings")
                .map(|n| n.string_map())
                .transpose()?
                .unwrap_or_default(),
            directory: path_at(grant("directory"))?,
            capabilities: grant("capabilities")
                .map(|n| n.capabilities())
                .transpose()?
                .unwrap_or_default(),
            endpoints: grant("endpoints")
                .map(|n| n.strings())
                .transpose()?
                .unwrap_or_default(),
            secrets: grant("secrets")
                .map(|n| n.secrets(base))
                .transpose()?
                .unwrap_or_default(),
            http: grant("http")
                .map(|n| n.http_rules(base))
                .transpose()?
                .unwrap_or_default(),
            workspace: path_at(root.optional("workspace"))?,
        })
    }

    /// Reads the component (checking the pin) and every secret; the
    /// directory is created if missing.
    pub fn load_plugin(&self) -> Result<LoadedPlugin, ManifestError> {
        let wasm =
            std::fs::read(&self.plugin_file).map_err(|source| ManifestError::PluginFile {
                path: self.plugin_file.display().to_string(),
                source,
            })?;
        if let Some(expected) = &self.sha256 {
            let actual = hex::encode(Sha256::digest(&wasm));
            if &actual != expected {
                return Err(ManifestError::PinMismatch {
                    path: self.plugin_file.display().to_string(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(LoadedPlugin {
            name: self.plugin_name(),
            wasm,
            settings: self.settings.clone(),
            grants: self.grants()?,
        })
    }

    fn plugin_name(&self) -> String {
        self.plugin_file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".into())
    }

    fn grants(&self) -> Result<Grants, ManifestError> {
        let mut grants = Grants::minimal();
        for capability in &self.capabilities {
            grants = grants.with_capability(*capability);
        }
        for endpoint in &self.endpoints {
            grants = grants.with_endpoint(endpoint);
        }
        if let Some(directory) = &self.directory {
            grants = grants.with_directory(directory);
        }
        for (name, source) in &self.secrets {
            let key = format!("grants.secrets.{name}");
            grants = grants.with_secret(name, read_secret(&key, source)?);
        }
        if !self.http.is_empty() {
            let rules = self
                .http
                .iter()
                .map(HttpRuleSpec::load)
                .collect::<Result<_, _>>()?;
            grants = grants.with_http(HttpGrant::new(rules)?);
        }
        Ok(grants)
    }
}

/// Reads the secret configured at manifest key `key`.
fn read_secret(key: &str, source: &SecretSource) -> Result<SecretValue, ManifestError> {
    match source {
        SecretSource::Env(variable) => match std::env::var(variable) {
            Ok(value) if !value.is_empty() => Ok(SecretValue::new(value)),
            _ => Err(ManifestError::SecretEnvMissing {
                key: format!("{key}.env"),
                variable: variable.clone(),
            }),
        },
        SecretSource::File(path) => {
            let value =
                std::fs::read_to_string(path).map_err(|source| ManifestError::SecretFile {
                    key: format!("{key}.file"),
                    path: path.display().to_string(),
                    source,
                })?;
            // A file written by `echo` ends with a newline that is not part
            // of the secret.
            Ok(SecretValue::new(value.trim_end_matches(['\n', '\r'])))
        }
    }
}

/// A YAML value and the dotted key it sits at, for errors.
struct Node<'a> {
    yaml: &'a Yaml,
    key: String,
}

impl<'a> Node<'a> {
    fn new(yaml: &'a Yaml, key: &str) -> Node<'a> {
        Node {
            yaml,
            key: key.to_string(),
        }
    }

    fn child_key(&self, name: &str) -> String {
        match self.key.is_empty() {
            true => name.to_string(),
            false => format!("{}.{name}", self.key),
        }
    }

    fn wrong(&self, expected: &'static str) -> ManifestError {
        ManifestError::WrongType {
            key: match self.key.is_empty() {
                true => "(top level)".into(),
                false => self.key.clone(),
            },
            expected,
        }
    }

    fn entries(&self) -> Result<Vec<(String, Node<'a>)>, ManifestError> {
        let hash = match self.yaml {
            Yaml::Hash(hash) => hash,
            Yaml::Null if self.key.is_empty() => return Ok(Vec::new()),
            _ => return Err(self.wrong("a mapping")),
        };
        hash.iter()
            .map(|(name, value)| {
                let name = name
                    .as_str()
                    .ok_or_else(|| self.wrong("a mapping with string keys"))?;
                Ok((name.to_string(), Node::new(value, &self.child_key(name))))
            })
            .collect()
    }

    fn only_keys(&self, known: &[&str]) -> Result<(), ManifestError> {
        for (name, node) in self.entries()? {
            if !known.contains(&name.as_str()) {
                return Err(ManifestError::UnknownKey {
                    key: node.key,
                    known: known.join(", "),
                });
            }
        }
        Ok(())
    }

    fn optional(&self, name: &str) -> Option<Node<'a>> {
        let Yaml::Hash(hash) = self.yaml else {
            return None;
        };
        let value = hash.get(&Yaml::String(name.to_string()))?;
        Some(Node::new(value, &self.child_key(name)))
    }

    fn required(&self, name: &str) -> Result<Node<'a>, ManifestError> {
        self.optional(name).ok_or_else(|| ManifestError::Missing {
            key: self.child_key(name),
        })
    }

    /// A scalar as text (numbers and booleans as written).
    fn string(&self) -> Result<String, ManifestError> {
        match self.yaml {
            Yaml::String(s) if !s.is_empty() => Ok(s.clone()),
            Yaml::Integer(i) => Ok(i.to_string()),
            Yaml::Real(r) => Ok(r.clone()),
            Yaml::Boolean(b) => Ok(b.to_string()),
            _ => Err(self.wrong("a non-empty string")),
        }
    }

    fn strings(&self) -> Result<Vec<String>, ManifestError> {
        let Yaml::Array(items) = self.yaml else {
            return Err(self.wrong("a list of strings"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| Node::new(item, &format!("{}[{i}]", self.key)).string())
            .collect()
    }

    fn string_map(&self) -> Result<Vec<(String, String)>, ManifestError> {
        self.entries()?
            .into_iter()
            .map(|(name, node)| Ok((name, node.string()?)))
            .collect()
    }

    fn pin(&self) -> Result<String, ManifestError> {
        let pin = self.string()?.to_ascii_lowercase();
        match pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            true => Ok(pin),
            false => Err(self.wrong("a sha256 as 64 hex digits")),
        }
    }

    fn capabilities(&self) -> Result<Vec<Capability>, ManifestError> {
        let names = self.strings()?;
        names
            .into_iter()
            .map(|name| {
                GRANTABLE
                    .into_iter()
                    .find(|c| c.interface() == name)
                    .ok_or_else(|| ManifestError::UnknownCapability {
                        key: self.key.clone(),
                        value: name,
                    })
            })
            .collect()
    }

    fn secrets(&self, base: &Path) -> Result<Vec<(String, SecretSource)>, ManifestError> {
        self.entries()?
            .into_iter()
            .map(|(name, node)| Ok((name, node.secret_source(base)?)))
            .collect()
    }

    /// `{ env: NAME }` or `{ file: PATH }`.
    fn secret_source(&self, base: &Path) -> Result<SecretSource, ManifestError> {
        self.only_keys(&["env", "file"])?;
        match (self.optional("env"), self.optional("file")) {
            (Some(env), None) => Ok(SecretSource::Env(env.string()?)),
            (None, Some(file)) => Ok(SecretSource::File(base.join(file.string()?))),
            _ => Err(self.wrong("a mapping with exactly one of `env` or `file`")),
        }
    }

    /// A whole number within `range`.
    fn number(&self, range: std::ops::RangeInclusive<u64>) -> Result<u64, ManifestError> {
        match self.yaml {
            Yaml::Integer(i) if u64::try_from(*i).is_ok_and(|n| range.contains(&n)) => {
                Ok(*i as u64)
            }
            _ => Err(ManifestError::Invalid {
                key: self.key.clone(),
                message: format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            }),
        }
    }

    fn list(&self) -> Result<Vec<Node<'a>>, ManifestError> {
        let Yaml::Array(items) = self.yaml else {
            return Err(self.wrong("a list"));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| Node::new(item, &format!("{}[{i}]", self.key)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, "test.yaml", Path::new("/m"))
    }

    #[test]
    fn a_full_manifest_parses_with_paths_from_its_directory() {
        let manifest = parse(
            "plugin:\n  file: ./p.wasm\n  sha256: AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12\n\
             settings: { container: tokens, retries: 3 }\n\
             grants:\n  directory: data\n  capabilities: [sql, git]\n  endpoints: [https://db.example]\n\
             \x20 secrets:\n    dsn: { env: MY_DSN }\n    token: { file: /run/secrets/t }\n\
             workspace: ./ws\n",
        )
        .unwrap();
        assert_eq!(manifest.plugin_file, Path::new("/m/./p.wasm"));
        assert_eq!(manifest.sha256.as_deref(), Some(&*"ab12".repeat(16)));
        assert_eq!(
            manifest.settings,
            [
                ("container".into(), "tokens".into()),
                ("retries".into(), "3".into())
            ]
        );
        assert_eq!(manifest.directory.as_deref(), Some(Path::new("/m/data")));
        assert_eq!(manifest.capabilities, [Capability::Sql, Capability::Git]);
        assert_eq!(manifest.endpoints, ["https://db.example"]);
        assert_eq!(
            manifest.secrets,
            [
                ("dsn".into(), SecretSource::Env("MY_DSN".into())),
                ("token".into(), SecretSource::File("/run/secrets/t".into()))
            ]
        );
        assert_eq!(manifest.workspace.as_deref(), Some(Path::new("/m/./ws")));
    }

    #[test]
    fn every_problem_names_its_key() {
        let cases = [
            ("", "`plugin` is required"),
            ("plugin: {}\n", "`plugin.file` is required"),
            (
                "plugin: { file: p.wasm }\nplugins: 1\n",
                "`plugins` is not known",
            ),
            (
                "plugin: { file: p.wasm, sha: x }\n",
                "`plugin.sha` is not known",
            ),
            (
                "plugin: { file: p.wasm, sha256: abc }\n",
                "`plugin.sha256` must be a sha256",
            ),
            (
                "plugin: { file: [a] }\n",
                "`plugin.file` must be a non-empty string",
            ),
            (
                "plugin: { file: p.wasm }\ngrants: { capability: [sql] }\n",
                "`grants.capability` is not known",
            ),
            (
                "plugin: { file: p.wasm }\ngrants: { capabilities: [sql, http2] }\n",
                "`http2` is not a capability",
            ),
            (
                "plugin: { file: p.wasm }\ngrants: { capabilities: sql }\n",
                "`grants.capabilities` must be a list",
            ),
            (
                "plugin: { file: p.wasm }\ngrants: { secrets: { dsn: { env: A, file: b } } }\n",
                "`grants.secrets.dsn` must be a mapping with exactly one",
            ),
            (
                "plugin: { file: p.wasm }\ngrants: { secrets: { dsn: { vault: x } } }\n",
                "`grants.secrets.dsn.vault` is not known",
            ),
            (
                "plugin: { file: p.wasm }\nsettings: [a]\n",
                "`settings` must be a mapping",
            ),
            ("plugin: [\n", "not valid YAML"),
            ("- a\n", "(top level)"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_pin_mismatch_and_missing_secrets_are_refused_without_their_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"not really wasm").unwrap();
        let pinned = format!("plugin: {{ file: p.wasm, sha256: {} }}\n", "ab".repeat(32));
        let manifest = Manifest::parse(&pinned, "m", dir.path()).unwrap();
        let error = manifest.load_plugin().err().unwrap().to_string();
        assert!(error.contains("refusing to load it"), "{error}");

        let text = "plugin: { file: p.wasm }\ngrants: { secrets: { dsn: { env: STOREHOST_TEST_UNSET_VAR_93 } } }\n";
        let error = Manifest::parse(text, "m", dir.path())
            .unwrap()
            .load_plugin()
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("grants.secrets.dsn.env"), "{error}");

        std::fs::write(dir.path().join("t"), "sk-canary-manifest-77\n").unwrap();
        let text = "plugin: { file: p.wasm }\ngrants: { secrets: { token: { file: t } } }\n";
        let loaded = Manifest::parse(text, "m", dir.path())
            .unwrap()
            .load_plugin()
            .unwrap();
        let value = loaded.grants.secret("token").unwrap();
        assert_eq!(value.expose(), "sk-canary-manifest-77");
        assert!(!format!("{:?}", loaded.grants).contains("sk-canary"));
        let text = "plugin: { file: p.wasm }\ngrants: { secrets: { token: { file: missing } } }\n";
        let error = Manifest::parse(text, "m", dir.path())
            .unwrap()
            .load_plugin()
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("grants.secrets.token.file"), "{error}");
    }
}
