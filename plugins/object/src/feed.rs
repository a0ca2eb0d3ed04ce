//! The change feed: the SDK's ETag feed over a bucket listing.

use crate::layout::{AUTH_PREFIX, document_key, object_key};
use storehost_sdk::capabilities::objects::{self, ObjectInfo};
use storehost_sdk::etag_feed::{EtagFeed, Listed};
use storehost_sdk::host_error;
use storehost_sdk::{Document, Entry, Error, Key, Snapshot};

pub struct Feed {
    etags: EtagFeed,
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            etags: EtagFeed::new("s3v1"),
        }
    }

    pub fn pull(&self, bucket: &objects::Bucket, cursor: Option<&str>) -> Result<Snapshot, Error> {
        let listing = listing(bucket)?
            .into_iter()
            .map(|(key, info)| Listed {
                key,
                name: info.key,
                etag: info.etag,
            })
            .collect();
        self.etags
            .pull(listing, cursor, |keys| get_many(bucket, keys))
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
