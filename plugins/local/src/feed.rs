//! What the last pull saw of each file (modification time, size and
//! version), so that a pull given that pull's cursor reads and hashes only
//! the files whose stamp changed: one stat per file instead of a read and a
//! hash. A cursor this instance did not hand out (a restart, a host that
//! retries an older one) gets a complete pull.

use crate::LocalStore;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storehost_sdk::layout::FileStat;
use storehost_sdk::{Error, Key, Kind, Snapshot};

/// A file modified this recently may change again within the same
/// timestamp tick without its stamp changing (the "racy" case), so its
/// stamp is not trusted and it is read again next time.
const RACY_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
struct Stamp {
    stat: FileStat,
    version: String,
    trusted: bool,
}

/// The files as one pull saw them, and the cursor it handed out.
#[derive(Debug, Default)]
pub struct Seen {
    generation: String,
    files: HashMap<(u8, String), Stamp>,
}

fn slot(key: &Key) -> (u8, String) {
    let kind = match key.kind {
        Kind::Config => 0,
        Kind::Auth => 1,
        Kind::Meta => 2,
        Kind::Cooldown => 3,
    };
    (kind, key.id.clone())
}

impl Seen {
    pub fn new() -> Seen {
        Seen {
            generation: new_generation(),
            files: HashMap::new(),
        }
    }

    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// The version last seen for `key`, if its file still has that stamp.
    pub fn unchanged(&self, key: &Key, stat: &FileStat) -> Option<&str> {
        let stamp = self.files.get(&slot(key))?;
        (stamp.trusted && stamp.stat == *stat).then_some(stamp.version.as_str())
    }

    /// The version last seen for `key`, whatever its stamp.
    pub fn version(&self, key: &Key) -> Option<&str> {
        self.files
            .get(&slot(key))
            .map(|stamp| stamp.version.as_str())
    }

    pub fn record(&mut self, key: &Key, stat: FileStat, version: &str, now: SystemTime) {
        let trusted = stat.modified.is_some_and(|modified| {
            now.duration_since(modified)
                .is_ok_and(|age| age > RACY_WINDOW)
        });
        let stamp = Stamp {
            stat,
            version: version.to_string(),
            trusted,
        };
        self.files.insert(slot(key), stamp);
    }

    /// A document this instance just wrote: known, and read again at the
    /// next pull (its stamp is not taken, so it is not trusted).
    pub fn record_written(&mut self, key: &Key, version: &str) {
        let stamp = Stamp {
            stat: FileStat {
                modified: None,
                size: 0,
            },
            version: version.to_string(),
            trusted: false,
        };
        self.files.insert(slot(key), stamp);
    }

    pub fn forget(&mut self, key: &Key) {
        self.files.remove(&slot(key));
    }

    /// Keys this pull saw that `next` no longer has.
    pub fn gone_in(&self, next: &Seen) -> Vec<Key> {
        let kinds = [Kind::Config, Kind::Auth, Kind::Meta, Kind::Cooldown];
        self.files
            .keys()
            .filter(|slot| !next.files.contains_key(*slot))
            .map(|(kind, id)| Key {
                kind: kinds[*kind as usize],
                id: id.clone(),
            })
            .collect()
    }
}

/// Unique per instance and pull: a time and a random number.
fn new_generation() -> String {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("local-{now:x}-{random:016x}")
}

impl LocalStore {
    /// One pass over the files. Given the cursor of this instance's last
    /// pull, only files whose modification time or size changed are read,
    /// and the answer is a delta; otherwise every file is read.
    pub(crate) fn pull_files(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        let mut seen = self.seen.borrow_mut();
        let last = seen
            .take()
            .filter(|last| cursor.as_deref() == Some(last.generation()));
        let now = std::time::SystemTime::now();
        let mut next = Seen::new();
        let mut documents = Vec::new();
        let reader = self.layout.reader();
        for (key, stat) in self.layout.stated_keys()? {
            if let Some(version) = last.as_ref().and_then(|last| last.unchanged(&key, &stat)) {
                next.record(&key, stat, version, now);
                continue;
            }
            let Some(document) = reader.read_stated(&key, &stat)? else {
                continue;
            };
            next.record(&key, stat, &document.entry.version, now);
            let known = last.as_ref().and_then(|last| last.version(&key));
            if known != Some(document.entry.version.as_str()) {
                documents.push(document);
            }
        }
        let snapshot = Snapshot {
            documents,
            removed: last
                .as_ref()
                .map(|last| last.gone_in(&next))
                .unwrap_or_default(),
            cursor: next.generation().to_string(),
            complete: last.is_none(),
        };
        *seen = Some(next);
        Ok(snapshot)
    }
}
