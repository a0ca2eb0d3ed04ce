//! What the host remembers about each document between runs: the hash of
//! the workspace content and the backend version it last saw in step, the
//! remote's lineage, the change-feed cursor and the conflicts it made.
//! Stored as JSON under `.storehost/`, replaced atomically.

use crate::fsutil;
use crate::model::{Key, Kind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The last state in which both sides agreed on a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// SHA-256 of the workspace content.
    pub local: String,
    /// The backend's version.
    pub remote: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    pub backend: String,
    pub lineage: Option<String>,
    pub cursor: Option<String>,
    pub last_sync_ms: Option<u64>,
    /// By document path (`config/config.yaml`, `auths/<id>`).
    pub documents: BTreeMap<String, Seen>,
    /// Conflict copies written, newest last.
    pub conflicts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read sync state {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("sync state {path} is damaged ({reason}); move it away to resynchronise from scratch")]
    Damaged { path: String, reason: String },
    #[error("cannot write sync state {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

pub fn content_hash(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// `config/config.yaml` or `auths/<id>`; meta keys are not tracked.
pub fn path_key(key: &Key) -> String {
    key.to_string()
}

pub fn key_of_path(path: &str) -> Option<Key> {
    match path.split_once('/')? {
        ("config", _) => Some(Key::config()),
        ("auths", id) => Some(Key::auth(id)),
        _ => None,
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl SyncState {
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("state.json")
    }

    /// The saved state, or an empty one for a workspace never synced.
    pub fn load(state_dir: &Path) -> Result<SyncState, StateError> {
        let path = SyncState::file(state_dir);
        let shown = path.display().to_string();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
                path: shown,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
            Err(source) => Err(StateError::Read {
                path: shown,
                source,
            }),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), StateError> {
        let path = SyncState::file(state_dir);
        let bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        fsutil::write_atomic(&path, &bytes).map_err(|source| StateError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn seen(&self, key: &Key) -> Option<&Seen> {
        self.documents.get(&path_key(key))
    }

    pub fn mark(&mut self, key: &Key, local: String, remote: String) {
        debug_assert_ne!(key.kind, Kind::Meta);
        self.documents.insert(path_key(key), Seen { local, remote });
    }

    pub fn forget(&mut self, key: &Key) {
        self.documents.remove(&path_key(key));
    }

    pub fn tracked_keys(&self) -> Vec<Key> {
        self.documents
            .keys()
            .filter_map(|path| key_of_path(path))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SyncState::load(dir.path()).unwrap().documents.is_empty());
        let mut state = SyncState {
            lineage: Some("L".into()),
            ..Default::default()
        };
        state.mark(&Key::auth("team/a.json"), "h".into(), "v1".into());
        state.save(dir.path()).unwrap();
        let loaded = SyncState::load(dir.path()).unwrap();
        assert_eq!(loaded.seen(&Key::auth("team/a.json")).unwrap().remote, "v1");
        assert_eq!(loaded.tracked_keys(), [Key::auth("team/a.json")]);
        std::fs::write(SyncState::file(dir.path()), "{").unwrap();
        assert!(matches!(
            SyncState::load(dir.path()),
            Err(StateError::Damaged { .. })
        ));
    }
}
