//! The durable outbox: every local change is an entry on disk (fsynced)
//! before it is acknowledged, and is removed only after the backend took
//! it. Replayed in order after an outage or a crash.

use crate::fsutil::{self, Durability};
use crate::mirror::state::{key_of_path, path_key};
use crate::model::Key;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    /// Content is validated UTF-8 (JSON or YAML).
    Put {
        content: String,
    },
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub seq: u64,
    /// Document path, `auths/<id>` or `config/config.yaml`.
    pub path: String,
    #[serde(flatten)]
    pub op: Op,
}

impl Pending {
    pub fn key(&self) -> Option<Key> {
        key_of_path(&self.path)
    }
}

pub struct Outbox {
    dir: PathBuf,
    next_seq: u64,
}

impl Outbox {
    pub fn open(state_dir: &Path) -> io::Result<Outbox> {
        let dir = state_dir.join("outbox");
        fsutil::create_private_dir(&dir)?;
        let next_seq = Outbox::seqs(&dir)?.last().map_or(1, |last| last + 1);
        Ok(Outbox { dir, next_seq })
    }

    fn seqs(dir: &Path) -> io::Result<Vec<u64>> {
        let mut seqs: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|entry| {
                entry
                    .ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Appends durably; returns the entry's sequence number.
    pub fn push(&mut self, key: &Key, op: Op) -> io::Result<u64> {
        self.push_with(key, op, Durability::Now)
    }

    /// Appends; with `Batched` the entry is durable after [`Outbox::sync`].
    pub fn push_with(&mut self, key: &Key, op: Op, durability: Durability) -> io::Result<u64> {
        let seq = self.next_seq;
        let entry = Pending {
            seq,
            path: path_key(key),
            op,
        };
        let bytes = serde_json::to_vec(&entry).expect("entry serialises");
        fsutil::write_atomic_with(&self.entry_path(seq), &bytes, durability)?;
        self.next_seq += 1;
        Ok(seq)
    }

    pub fn sync(&self) -> io::Result<()> {
        fsutil::sync_filesystem(&self.dir)
    }

    /// Every pending entry, oldest first. Unreadable entries are reported
    /// and left in place for a person to look at.
    pub fn pending(&self) -> io::Result<Vec<Pending>> {
        let mut entries = Vec::new();
        for seq in Outbox::seqs(&self.dir)? {
            let path = self.entry_path(seq);
            match std::fs::read(&path).map(|bytes| serde_json::from_slice::<Pending>(&bytes)) {
                Ok(Ok(entry)) => entries.push(entry),
                Ok(Err(e)) => {
                    tracing::error!(path = %path.display(), "skipping a damaged outbox entry: {e}")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(entries)
    }

    pub fn remove(&self, seq: u64) -> io::Result<()> {
        match std::fs::remove_file(self.entry_path(seq)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn len(&self) -> usize {
        Outbox::seqs(&self.dir).map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let a = outbox
            .push(
                &Key::auth("a.json"),
                Op::Put {
                    content: "{}".into(),
                },
            )
            .unwrap();
        let b = outbox.push(&Key::auth("b.json"), Op::Remove).unwrap();
        let mut reopened = Outbox::open(dir.path()).unwrap();
        let pending = reopened.pending().unwrap();
        assert_eq!(pending.iter().map(|p| p.seq).collect::<Vec<_>>(), [a, b]);
        assert_eq!(pending[1].key(), Some(Key::auth("b.json")));
        reopened.remove(a).unwrap();
        assert_eq!(reopened.push(&Key::config(), Op::Remove).unwrap(), b + 1);
        assert_eq!(reopened.len(), 2);
    }
}
