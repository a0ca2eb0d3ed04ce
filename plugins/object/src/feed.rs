//! The change feed: a listing of ETags, compared with the previous one.
//! The cursor names the listing it was taken from (a digest of keys and
//! ETags); while this instance still holds that listing, a pull fetches
//! only objects whose ETag changed and reports the keys that disappeared.
//! Any other cursor gets a complete snapshot.

use crate::layout::{AUTH_PREFIX, document_key, object_key};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::BTreeMap;
use storehost_sdk::capabilities::objects::{self, ObjectInfo};
use storehost_sdk::host_error;
use storehost_sdk::{Document, Entry, Error, Key, Snapshot};

/// The listing a cursor was handed out for: ETags by object name.
struct Seen {
    cursor: String,
    etags: BTreeMap<String, String>,
}

pub struct Feed {
    seen: RefCell<Option<Seen>>,
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            seen: RefCell::new(None),
        }
    }

    pub fn pull(&self, bucket: &objects::Bucket, cursor: Option<&str>) -> Result<Snapshot, Error> {
        let listing = listing(bucket)?;
        let previous = self
            .seen
            .borrow_mut()
            .take()
            .filter(|seen| Some(seen.cursor.as_str()) == cursor);
        let mut etags: BTreeMap<String, String> = listing
            .iter()
            .map(|(_, info)| (info.key.clone(), info.etag.clone()))
            .collect();
        let changed: Vec<Key> = listing
            .iter()
            .filter(|(_, info)| {
                previous.as_ref().and_then(|p| p.etags.get(&info.key)) != Some(&info.etag)
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut documents = Vec::new();
        let mut removed = Vec::new();
        for (key, document) in changed.iter().zip(get_many(bucket, &changed)?) {
            match document {
                Some(document) => documents.push(document),
                // Deleted between the listing and the read.
                None => {
                    etags.remove(&object_key(key)?);
                    removed.push(key.clone());
                }
            }
        }
        if let Some(previous) = &previous {
            removed.extend(
                previous
                    .etags
                    .keys()
                    .filter(|object| !etags.contains_key(*object))
                    .filter_map(|object| document_key(object)),
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

/// Every document object, paginated by the host.
pub fn listing(bucket: &objects::Bucket) -> Result<Vec<(Key, ObjectInfo)>, Error> {
    let objects = bucket.list("").map_err(host_error)?;
    for skipped in objects
        .iter()
        .filter(|o| o.key.starts_with(AUTH_PREFIX) && document_key(&o.key).is_none())
    {
        storehost_sdk::log::warn(&format!(
            "skipping object {:?}: its id could not be a file",
            skipped.key
        ));
    }
    Ok(documents_of(objects))
}

/// Reads documents, many requests at a time (the host fans them out), in
/// rounds small enough to keep one answer's size bounded.
pub fn get_many(bucket: &objects::Bucket, keys: &[Key]) -> Result<Vec<Option<Document>>, Error> {
    const ROUND: usize = 256;
    let mut documents = Vec::with_capacity(keys.len());
    for round in keys.chunks(ROUND) {
        let objects: Vec<String> = round.iter().map(object_key).collect::<Result<_, _>>()?;
        let answers = bucket.get_many(&objects).map_err(host_error)?;
        documents.extend(round.iter().zip(answers).map(|(key, object)| {
            object.map(|object| Document {
                entry: Entry {
                    key: key.clone(),
                    version: object.info.etag,
                    size: object.info.size,
                    modified_ms: object.info.modified_ms,
                },
                content: object.content,
            })
        }));
    }
    Ok(documents)
}

fn digest(etags: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (object, etag) in etags {
        hasher.update(format!("{object}\0{etag}\n"));
    }
    format!("s3v1:{}", &hex::encode(hasher.finalize())[..32])
}

pub fn entry(key: Key, info: &ObjectInfo) -> Entry {
    Entry {
        key,
        version: info.etag.clone(),
        size: info.size,
        modified_ms: info.modified_ms,
    }
}

/// Objects that are documents, with their keys.
fn documents_of(objects: Vec<ObjectInfo>) -> Vec<(Key, ObjectInfo)> {
    objects
        .into_iter()
        .filter_map(|info| Some((document_key(&info.key)?, info)))
        .collect()
}
