//! The local backend with faults on command: before every call it reads
//! `<root>/.fault`. `unavailable` fails the call as transient, `fail` as an
//! internal error, `delay:<ms>` waits first; no file means healthy. Tests
//! write that file to take the "remote" down and bring it back. Faults
//! that break the contract: `wrong-apply-count` answers one entry too many
//! and applies nothing; `lying-apply` answers as if it applied them
//! and stores nothing; `spin-watch` claims the watch feature and spins in
//! `wait-for-change`, ignoring its timeout; `ignore-preconditions` applies
//! every change unconditionally (while still claiming conditional writes).
//!
//! Faults that serve untrusted documents (what it stores is untouched):
//! `bad-ids` adds documents whose ids escape or are not what their kind
//! allows; `bad-content` serves every auth as a different kind of garbage
//! (not JSON, a JSON array, invalid UTF-8, 5 MiB) and the config as broken
//! YAML; `duplicates` serves every document twice with different content;
//! `huge-versions` gives every document a 2 KiB version. `wipe-after:<n>`
//! answers n pulls honestly and then deletes everything it stores, as an
//! operator emptying the backend would (pulls are counted in
//! `<root>/.fault-pulls`).

use std::time::Duration;
use storehost_plugin_local::LocalStore;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Kind, Precondition, Settings,
    Snapshot,
};

pub struct Fault {
    inner: LocalStore,
    control: String,
    pulls: String,
    root: String,
}

/// Longer than the host's version limit (1 KiB).
const HUGE_VERSION_LEN: usize = 2048;
/// Larger than the host's default document limit (4 MiB).
const HUGE_DOCUMENT_LEN: usize = 5 << 20;

impl Fault {
    fn command(&self) -> String {
        let command = std::fs::read_to_string(&self.control).unwrap_or_default();
        command.trim().to_string()
    }

    fn gate(&self) -> Result<(), Error> {
        let command = self.command();
        let command = command.as_str();
        if command == "unavailable" {
            return Err(Error::Unavailable("fault injected: backend down".into()));
        }
        if command == "fail" {
            return Err(Error::Internal("fault injected: failure".into()));
        }
        if let Some(ms) = command
            .strip_prefix("delay:")
            .and_then(|ms| ms.parse().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(())
    }

    /// Counts pulls in a file, so the count survives instance replacement.
    fn count_pull(&self) -> u64 {
        let number = self.pulls_done() + 1;
        let _ = std::fs::write(&self.pulls, number.to_string());
        number
    }

    fn pulls_done(&self) -> u64 {
        std::fs::read_to_string(&self.pulls)
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    fn wipe_due(&self, pull_number: u64) -> bool {
        self.command()
            .strip_prefix("wipe-after:")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|honest| pull_number == honest + 1)
    }

    /// As `rm` by someone else would: behind this instance's back.
    fn wipe(&self) -> Result<(), Error> {
        let removed = std::fs::remove_dir_all(format!("{}/auths", self.root))
            .and_then(|()| std::fs::create_dir(format!("{}/auths", self.root)))
            .and_then(|()| std::fs::remove_file(format!("{}/config/config.yaml", self.root)));
        removed.map_err(|e| Error::Internal(format!("fault: wiping failed: {e}")))
    }

    fn distorting(&self) -> bool {
        matches!(
            self.command().as_str(),
            "bad-content" | "huge-versions" | "duplicates" | "bad-ids"
        )
    }

    /// What a corrupting fault makes of the documents it serves.
    fn distort(&self, documents: Vec<Document>) -> Vec<Document> {
        match self.command().as_str() {
            "bad-content" => documents.into_iter().enumerate().map(garbage).collect(),
            "huge-versions" => documents
                .into_iter()
                .map(|mut document| {
                    document.entry.version = "v".repeat(HUGE_VERSION_LEN);
                    document
                })
                .collect(),
            "duplicates" => documents
                .into_iter()
                .flat_map(|document| {
                    let mut twin = document.clone();
                    twin.content = b"{\"twin\":true}".to_vec();
                    twin.entry.version = format!("twin-{}", document.entry.version);
                    [document, twin]
                })
                .collect(),
            "bad-ids" => documents.into_iter().chain(bad_id_documents()).collect(),
            _ => documents,
        }
    }
}

/// The n-th document, spoilt in one of four ways (the config: not YAML).
fn garbage((n, mut document): (usize, Document)) -> Document {
    document.content = match (document.entry.key.kind, n % 4) {
        (Kind::Config, _) => b"key: [unclosed\n\t- : :".to_vec(),
        (_, 0) => b"this is not JSON".to_vec(),
        (_, 1) => b"[1, 2, 3]".to_vec(),
        (_, 2) => vec![b'"', 0xff, 0xfe, b'"'],
        _ => {
            let mut huge = b"{\"pad\":\"".to_vec();
            huge.resize(HUGE_DOCUMENT_LEN, b'x');
            huge.extend_from_slice(b"\"}");
            huge
        }
    };
    document.entry.version = format!("garbage-{n}-{}", document.entry.version);
    document.entry.size = document.content.len() as u64;
    document
}

/// Well-formed content under ids that must never reach the workspace.
fn bad_id_documents() -> Vec<Document> {
    let key = |kind, id: &str| Key {
        kind,
        id: id.to_string(),
    };
    [
        key(Kind::Auth, "../escape.json"),
        key(Kind::Auth, "team/../../escape.json"),
        key(Kind::Auth, "/absolute.json"),
        key(Kind::Auth, "nul\u{0}.json"),
        key(Kind::Config, "../../config.yaml"),
        key(Kind::Meta, "unknown-meta"),
    ]
    .into_iter()
    .map(|key| {
        let content = match key.kind {
            Kind::Config => b"escaped: true\n".to_vec(),
            _ => b"{\"escaped\":true}".to_vec(),
        };
        Document {
            entry: Entry {
                key,
                version: "bad-id".into(),
                size: content.len() as u64,
                modified_ms: None,
            },
            content,
        }
    })
    .collect()
}

impl Backend for Fault {
    fn open(settings: Settings) -> Result<Self, Error> {
        let root = settings.get_or("root", "/store").to_string();
        let (control, pulls) = (format!("{root}/.fault"), format!("{root}/.fault-pulls"));
        Ok(Fault {
            inner: LocalStore::open(settings)?,
            control,
            pulls,
            root,
        })
    }

    fn info(&self) -> Info {
        let inner = self.inner.info();
        let features = match self.command().as_str() {
            "spin-watch" => inner.features | Features::WATCH,
            _ => inner.features,
        };
        Info {
            name: "fault".into(),
            features,
            ..inner
        }
    }

    fn wait_for_change(&self, _timeout_ms: u32) -> Result<bool, Error> {
        if self.command() == "spin-watch" {
            loop {
                std::hint::spin_loop();
            }
        }
        Ok(false)
    }

    fn prepare(&self) -> Result<(), Error> {
        self.gate()?;
        self.inner.prepare()
    }

    fn check(&self) -> Result<(), Error> {
        self.gate()?;
        self.inner.check()
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        self.gate()?;
        let documents = self.distort(self.inner.pull(None)?.documents);
        Ok(documents
            .into_iter()
            .map(|document| document.entry)
            .collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        self.gate()?;
        let found = self.inner.read(keys)?;
        Ok(found
            .into_iter()
            .map(|document| {
                let document = document?;
                match self.command().as_str() {
                    // One answer per key: no twin, no extra id.
                    "duplicates" | "bad-ids" => Some(document),
                    _ => self.distort(vec![document]).pop(),
                }
            })
            .collect())
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.gate()?;
        if self.wipe_due(self.count_pull()) {
            self.wipe()?;
        }
        // A corrupting fault serves everything, changed or not.
        let cursor = match self.distorting() {
            true => None,
            false => cursor,
        };
        let distorting = self.distorting();
        let mut snapshot = self.inner.pull(cursor)?;
        snapshot.documents = self.distort(snapshot.documents);
        if distorting {
            // No cursor to keep: the next honest pull is complete again.
            snapshot.cursor.clear();
        }
        Ok(snapshot)
    }

    fn apply(&self, changes: Vec<Change>, message: String) -> Result<Vec<Option<Entry>>, Error> {
        self.gate()?;
        match self.command().as_str() {
            "wrong-apply-count" => Ok(vec![None; changes.len() + 1]),
            "lying-apply" => Ok(changes
                .into_iter()
                .map(|change| match change {
                    Change::Put(put) => Some(Entry {
                        key: put.key,
                        version: "lie".into(),
                        size: 0,
                        modified_ms: None,
                    }),
                    Change::Remove(_) => None,
                })
                .collect()),
            "ignore-preconditions" => self.inner.apply(unconditional(changes), message),
            _ => self.inner.apply(changes, message),
        }
    }
}

fn unconditional(changes: Vec<Change>) -> Vec<Change> {
    changes
        .into_iter()
        .map(|change| match change {
            Change::Put(mut put) => {
                put.precondition = Precondition::Any;
                Change::Put(put)
            }
            Change::Remove(mut remove) => {
                remove.precondition = Precondition::Any;
                Change::Remove(remove)
            }
        })
        .collect()
}

storehost_sdk::export_backend!(Fault);
