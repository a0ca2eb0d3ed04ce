//! The change feed: a listing of ETags, compared with the previous one.
//! The cursor names the listing it was taken from (a digest of names and
//! ETags); while this instance still holds that listing, a pull fetches
//! only blobs whose ETag changed and reports the names that disappeared.
//! Any other cursor gets a complete snapshot.

use crate::listing::BlobInfo;
use crate::service::Container;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::BTreeMap;
use storehost_sdk::paths::{AUTH_PREFIX, CONFIG_PATH, META_PREFIX, key_of, path_of};
use storehost_sdk::{Document, Entry, Error, Key, Snapshot};

/// Blobs read per round, so one answer's size stays bounded.
const READ_ROUND: usize = 256;

struct Seen {
    cursor: String,
    etags: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct Feed {
    seen: RefCell<Option<Seen>>,
}

impl Feed {
    pub fn pull(&self, container: &Container, cursor: Option<&str>) -> Result<Snapshot, Error> {
        let listing = listing(container)?;
        let previous = self
            .seen
            .borrow_mut()
            .take()
            .filter(|seen| Some(seen.cursor.as_str()) == cursor);
        let mut etags: BTreeMap<String, String> = listing
            .iter()
            .map(|(_, blob)| (blob.name.clone(), blob.etag.clone()))
            .collect();
        let changed: Vec<Key> = listing
            .iter()
            .filter(|(_, blob)| {
                previous.as_ref().and_then(|p| p.etags.get(&blob.name)) != Some(&blob.etag)
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut documents = Vec::new();
        let mut removed = Vec::new();
        for (key, document) in changed.iter().zip(read(container, &changed)?) {
            match document {
                Some(document) => documents.push(document),
                // Deleted between the listing and the read.
                None => {
                    etags.remove(&path_of(key)?);
                    removed.push(key.clone());
                }
            }
        }
        if let Some(previous) = &previous {
            removed.extend(
                previous
                    .etags
                    .keys()
                    .filter(|name| !etags.contains_key(*name))
                    .filter_map(|name| key_of(name)),
            );
        }
        let cursor = digest(&etags);
        let complete = previous.is_none();
        *self.seen.borrow_mut() = Some(Seen {
            cursor: cursor.clone(),
            etags,
        });
        Ok(Snapshot {
            documents,
            removed: if complete { Vec::new() } else { removed },
            cursor,
            complete,
        })
    }
}

/// Every blob that is a document, with its key: the config, the auths and
/// storehost's metadata, each listed by its prefix. Blobs whose names could
/// never be files are skipped, said once each.
pub fn listing(container: &Container) -> Result<Vec<(Key, BlobInfo)>, Error> {
    let mut documents = Vec::new();
    for prefix in [CONFIG_PATH, AUTH_PREFIX, META_PREFIX] {
        for blob in container.list(prefix)? {
            match key_of(&blob.name) {
                Some(key) => documents.push((key, blob)),
                None if prefix == AUTH_PREFIX => storehost_sdk::log::warn(&format!(
                    "skipping blob {:?}: its id could not be a file",
                    blob.name
                )),
                None => {}
            }
        }
    }
    Ok(documents)
}

/// Reads documents, many requests at a time, in bounded rounds.
pub fn read(container: &Container, keys: &[Key]) -> Result<Vec<Option<Document>>, Error> {
    let mut documents = Vec::with_capacity(keys.len());
    for round in keys.chunks(READ_ROUND) {
        let names: Vec<String> = round.iter().map(path_of).collect::<Result<_, _>>()?;
        let blobs = container.get_many(&names)?;
        documents.extend(round.iter().zip(blobs).map(|(key, blob)| {
            blob.map(|blob| Document {
                entry: entry(key.clone(), &blob.info),
                content: blob.content,
            })
        }));
    }
    Ok(documents)
}

pub fn entry(key: Key, blob: &BlobInfo) -> Entry {
    Entry {
        key,
        version: blob.etag.clone(),
        size: blob.size,
        modified_ms: blob.modified_ms,
    }
}

fn digest(etags: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, etag) in etags {
        hasher.update(format!("{name}\0{etag}\n"));
    }
    format!("azblob1:{}", &hex::encode(hasher.finalize())[..32])
}
