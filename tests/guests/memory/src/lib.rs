//! An in-memory backend: the second implementation the swap tests run the
//! same host code against. Batches are atomic; versions are a counter.

use std::cell::RefCell;
use std::collections::BTreeMap;
use storehost_sdk::ids::check_auth_id;
use storehost_sdk::{
    Backend, CONFIG_ID, Change, Document, Entry, Error, Features, Info, Key, Kind, Settings,
};

#[derive(Default)]
struct State {
    documents: BTreeMap<(u8, String), (Vec<u8>, String)>,
    next_version: u64,
}

pub struct Memory {
    state: RefCell<State>,
}

fn slot(key: &Key) -> Result<(u8, String), Error> {
    let rank = match key.kind {
        Kind::Config if key.id == CONFIG_ID => return Ok((0, key.id.clone())),
        Kind::Config => return Err(Error::Invalid(format!("config id must be {CONFIG_ID}"))),
        Kind::Auth => 1,
        Kind::Meta => 2,
        Kind::Cooldown => 3,
    };
    check_auth_id(&key.id).map_err(|p| Error::Invalid(format!("id {:?}: {p}", key.id)))?;
    Ok((rank, key.id.clone()))
}

fn key_of(slot: &(u8, String)) -> Key {
    let kind = match slot.0 {
        0 => Kind::Config,
        1 => Kind::Auth,
        3 => Kind::Cooldown,
        _ => Kind::Meta,
    };
    Key {
        kind,
        id: slot.1.clone(),
    }
}

fn entry(slot: &(u8, String), content: &[u8], version: &str) -> Entry {
    Entry {
        key: key_of(slot),
        version: version.to_string(),
        size: content.len() as u64,
        modified_ms: None,
    }
}

impl Backend for Memory {
    fn open(_settings: Settings) -> Result<Self, Error> {
        Ok(Memory {
            state: RefCell::new(State::default()),
        })
    }

    fn info(&self) -> Info {
        Info {
            name: "memory".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::ATOMIC_BATCH | Features::CONDITIONAL_WRITE,
        }
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        let state = self.state.borrow();
        Ok(state
            .documents
            .iter()
            .map(|(slot, (content, version))| entry(slot, content, version))
            .collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        let state = self.state.borrow();
        keys.iter()
            .map(|key| {
                let slot = slot(key)?;
                Ok(state
                    .documents
                    .get(&slot)
                    .map(|(content, version)| Document {
                        entry: entry(&slot, content, version),
                        content: content.clone(),
                    }))
            })
            .collect()
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        let mut state = self.state.borrow_mut();
        let mut next = state.documents.clone();
        let mut results = Vec::new();
        for change in changes {
            let slot = slot(change.key())?;
            let current = next.get(&slot).map(|(_, version)| version.as_str());
            if !change.precondition().holds(current) {
                return Err(Error::Conflict(change.key().clone()));
            }
            match change {
                Change::Put(put) => {
                    state.next_version += 1;
                    let version = format!("v{}", state.next_version);
                    results.push(Some(entry(&slot, &put.content, &version)));
                    next.insert(slot, (put.content, version));
                }
                Change::Remove(_) => {
                    next.remove(&slot);
                    results.push(None);
                }
            }
        }
        state.documents = next;
        Ok(results)
    }
}

storehost_sdk::export_backend!(Memory);
