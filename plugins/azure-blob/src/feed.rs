//! The change feed: the SDK's ETag feed over a container listing.

use crate::listing::BlobInfo;
use crate::service::Container;
use storehost_sdk::etag_feed::{EtagFeed, Listed};
use storehost_sdk::paths::{AUTH_PREFIX, CONFIG_PATH, META_PREFIX, key_of, path_of};
use storehost_sdk::{Document, Entry, Error, Key, Snapshot};

/// Blobs read per round, so one answer's size stays bounded.
const READ_ROUND: usize = 256;

pub struct Feed {
    etags: EtagFeed,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            etags: EtagFeed::new("azblob1"),
        }
    }
}

impl Feed {
    pub fn pull(&self, container: &Container, cursor: Option<&str>) -> Result<Snapshot, Error> {
        let listing = listing(container)?
            .into_iter()
            .map(|(key, blob)| Listed {
                key,
                name: blob.name,
                etag: blob.etag,
            })
            .collect();
        self.etags
            .pull(listing, cursor, |keys| read(container, keys))
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
