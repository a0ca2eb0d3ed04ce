//! What a backend answers is untrusted: every document is checked before it
//! may touch the workspace. A document that fails is skipped and
//! quarantined (one WARN per key and version, listed by `status`); the rest
//! of the answer goes on.

use super::decide::Remote as RemoteState;
use super::engine::Mirror;
use super::hash::doc_hash;
use super::paths::path_key;
use super::scan::is_auth_file;
use super::settle::Item;
use super::workspace::{normalize_config, validate_cooldown};
use crate::error::StorehostError;
use crate::model::{Document, Key, Kind};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Largest document taken from a backend unless configured otherwise
/// (`STOREHOST_MAX_DOCUMENT_BYTES`).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// Longest version string taken from a backend (a hash, an ETag, an oid).
pub const MAX_VERSION_BYTES: usize = 1024;

/// A document the checks refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub key: Key,
    pub version: String,
    pub problem: String,
}

/// One answer's documents, checked.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub items: Vec<Item>,
    pub rejected: Vec<Rejected>,
    /// Auth-kind documents that are not auths (`*.cds` rows an earlier
    /// writer pushed, temp files): never written into the workspace.
    pub not_auths: Vec<Key>,
}

impl Checked {
    /// Every key the backend sent, good or bad: a key it sent is not gone
    /// there, even when its document is refused.
    pub fn sent_keys(&self) -> BTreeSet<Key> {
        let good = self.items.iter().map(|(key, _, _)| key.clone());
        good.chain(self.rejected.iter().map(|r| r.key.clone()))
            .chain(self.not_auths.iter().cloned())
            .collect()
    }
}

/// Checks each document alone and the answer as a whole (no key twice:
/// neither copy of a duplicated key is trusted). Metadata is not a
/// workspace document and is left out; so is an auth-kind document whose
/// (valid) id is not an auth file, which is never read as an auth. An
/// invalid id is refused whatever its suffix.
pub(crate) fn check(documents: Vec<Document>, max_bytes: usize) -> Checked {
    let mut count: BTreeMap<&Key, usize> = BTreeMap::new();
    for document in &documents {
        *count.entry(&document.entry.key).or_default() += 1;
    }
    let duplicated: BTreeSet<Key> = count
        .into_iter()
        .filter(|(key, n)| *n > 1 && key.kind != Kind::Meta)
        .map(|(key, _)| key.clone())
        .collect();
    let (documents, not_auths): (Vec<Document>, Vec<Document>) =
        documents.into_iter().partition(|document| {
            let key = &document.entry.key;
            key.kind != Kind::Auth
                || is_auth_file(&key.id)
                || storehost_sdk::ids::check_auth_id(&key.id).is_err()
        });
    let results: Vec<Result<Option<Item>, Rejected>> = documents
        .into_par_iter()
        .map(|document| match duplicated.contains(&document.entry.key) {
            true => Err(rejected(
                &document,
                "sent more than once in one answer".into(),
            )),
            false => check_one(document, max_bytes),
        })
        .collect();
    let mut checked = Checked {
        not_auths: not_auths.into_iter().map(|d| d.entry.key).collect(),
        ..Checked::default()
    };
    for result in results {
        match result {
            Ok(Some(item)) => checked.items.push(item),
            Ok(None) => {}
            Err(rejected) => checked.rejected.push(rejected),
        }
    }
    checked
}

/// A workspace key (an id that stays inside `auths/`, the config exactly
/// `config.yaml`), a sane size and version, an auth that is a JSON object,
/// a config that is UTF-8 YAML. None for metadata.
fn check_one(document: Document, max_bytes: usize) -> Result<Option<Item>, Rejected> {
    let key = &document.entry.key;
    let hash = match key.kind {
        Kind::Meta => return Ok(None),
        _ if document.content.len() > max_bytes => Err(format!(
            "{} bytes is over the limit of {max_bytes}",
            document.content.len()
        )),
        _ if document.entry.version.len() > MAX_VERSION_BYTES => Err(format!(
            "a version of {} bytes is over the limit of {MAX_VERSION_BYTES}",
            document.entry.version.len()
        )),
        Kind::Config if *key != Key::config() => {
            Err(format!("a config id must be {}", Key::config().id))
        }
        Kind::Auth => storehost_sdk::ids::check_auth_id(&key.id)
            .map_err(|p| p.to_string())
            .and_then(|()| auth_hash(&document.content)),
        Kind::Cooldown => storehost_sdk::ids::check_cooldown_id(&key.id)
            .map_err(|p| p.to_string())
            .and_then(|()| validate_cooldown(&key.id, &document.content).map_err(|e| e.to_string()))
            .map(|()| doc_hash(key, &document.content)),
        Kind::Config => normalize_config(&document.content)
            .map(|_| doc_hash(key, &document.content))
            .map_err(|e| e.to_string()),
    };
    match hash {
        Ok(hash) => {
            let state = RemoteState::Present {
                version: document.entry.version,
                hash,
            };
            Ok(Some((document.entry.key, state, Some(document.content))))
        }
        Err(problem) => Err(rejected(&document, problem)),
    }
}

fn rejected(document: &Document, problem: String) -> Rejected {
    let mut version = document.entry.version.clone();
    version.truncate(MAX_VERSION_BYTES);
    Rejected {
        key: document.entry.key.clone(),
        version,
        problem,
    }
}

/// An auth must be a JSON object; its hash from the one parse.
fn auth_hash(content: &[u8]) -> Result<String, String> {
    match serde_json::from_slice::<serde_json::Value>(content) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(super::hash::json_hash(&value)),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

impl Mirror {
    /// Checks an answer's documents with this mirror's limits and keeps
    /// the quarantine up to date: refused ones are recorded (and reported
    /// once per key and version), accepted ones leave it.
    pub(crate) fn intake(&self, documents: Vec<Document>) -> Result<Checked, StorehostError> {
        let checked = check(documents, self.options.max_document_bytes);
        for key in &checked.not_auths {
            self.not_mirrored.mention("backend", &key.id);
        }
        let mut ledger = self.ledger();
        let quarantined = ledger.quarantined()?;
        if checked.rejected.is_empty() && quarantined.is_empty() {
            return Ok(checked);
        }
        let known: BTreeMap<String, String> = quarantined
            .into_iter()
            .map(|q| (q.path, q.version))
            .collect();
        let cleared: Vec<String> = checked
            .items
            .iter()
            .map(|(key, _, _)| path_key(key))
            .filter(|path| known.contains_key(path))
            .collect();
        ledger.write(|tx| {
            for rejected in &checked.rejected {
                let path = path_key(&rejected.key);
                if known.get(&path) != Some(&rejected.version) {
                    tracing::warn!(
                        key = ?path,
                        version = ?rejected.version,
                        "skipping a document from the backend (quarantined, see storehost status): {}",
                        rejected.problem
                    );
                }
                tx.quarantine(&path, &rejected.version, &rejected.problem)?;
            }
            for path in &cleared {
                tx.release(path)?;
            }
            Ok(())
        })?;
        Ok(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;

    fn document(key: Key, version: &str, content: &[u8]) -> Document {
        Document {
            entry: Entry {
                key,
                version: version.into(),
                size: content.len() as u64,
                modified_ms: None,
            },
            content: content.to_vec(),
        }
    }

    #[test]
    fn auth_kind_documents_that_are_not_auth_files_are_left_out_not_refused() {
        let checked = check(
            vec![
                document(Key::auth("a.json"), "v", b"{}"),
                document(Key::auth("UPPER.JSON"), "v", b"{}"),
                document(Key::auth("a_b.com.cds"), "v", br#"{"version":1}"#),
                document(Key::auth("team/x.json.tmp"), "v", b"{}"),
                document(Key::auth("../escape.cds"), "v", b"{}"),
            ],
            64,
        );
        let accepted: Vec<&str> = checked
            .items
            .iter()
            .map(|(k, _, _)| k.id.as_str())
            .collect();
        assert_eq!(accepted, ["a.json", "UPPER.JSON"]);
        let left_out: Vec<&str> = checked.not_auths.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(left_out, ["a_b.com.cds", "team/x.json.tmp"]);
        let refused: Vec<&str> = checked.rejected.iter().map(|r| r.key.id.as_str()).collect();
        assert_eq!(
            refused,
            ["../escape.cds"],
            "a bad id is refused whatever its suffix"
        );
        assert!(checked.sent_keys().contains(&Key::auth("a_b.com.cds")));
    }

    fn problems(documents: Vec<Document>) -> Vec<String> {
        check(documents, 64)
            .rejected
            .into_iter()
            .map(|r| format!("{}: {}", r.key, r.problem))
            .collect()
    }

    #[test]
    fn good_documents_pass_and_metadata_is_left_out() {
        let checked = check(
            vec![
                document(Key::auth("a.json"), "v1", br#"{"a":1}"#),
                document(Key::config(), "v1", b"port: 1\n"),
                document(Key::meta("lineage"), "v1", b"L"),
            ],
            64,
        );
        assert_eq!(checked.items.len(), 2);
        assert!(checked.rejected.is_empty());
    }

    #[test]
    fn each_bad_document_is_refused_with_its_reason() {
        let found = problems(vec![
            document(Key::auth("array.json"), "v", b"[1]"),
            document(Key::auth("text.json"), "v", b"hello"),
            document(Key::auth("utf8.json"), "v", b"\xff\xfe"),
            document(Key::auth("big.json"), "v", &[b' '; 65]),
            document(Key::auth("../escape.json"), "v", b"{}"),
            document(Key::auth("long.json"), &"v".repeat(2000), b"{}"),
            Document {
                entry: Entry {
                    key: Key {
                        kind: Kind::Config,
                        id: "../../config.yaml".into(),
                    },
                    version: "v".into(),
                    size: 0,
                    modified_ms: None,
                },
                content: Vec::new(),
            },
            document(Key::config(), "v", b"\xff"),
        ]);
        assert_eq!(found.len(), 8, "{found:?}");
        for (needle, reason) in [
            ("array.json", "not a JSON object"),
            ("text.json", "not JSON"),
            ("utf8.json", "not JSON"),
            ("big.json", "over the limit of 64"),
            ("long.json", "version of 2000 bytes"),
            ("../../config.yaml", "config id must be"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|f| f.contains(needle) && f.contains(reason)),
                "{needle}: {found:?}"
            );
        }
    }

    #[test]
    fn a_key_sent_twice_is_trusted_in_neither_copy() {
        let checked = check(
            vec![
                document(Key::auth("twice.json"), "v1", br#"{"a":1}"#),
                document(Key::auth("once.json"), "v1", br#"{"a":1}"#),
                document(Key::auth("twice.json"), "v2", br#"{"a":2}"#),
            ],
            64,
        );
        assert_eq!(checked.items.len(), 1);
        assert_eq!(checked.rejected.len(), 2);
        assert!(checked.sent_keys().contains(&Key::auth("twice.json")));
    }
}
