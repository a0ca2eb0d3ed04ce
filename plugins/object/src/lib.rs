//! The object-storage backend (AWS S3, MinIO, R2, Spaces, GCS), through the
//! host's `objects` capability.
//!
//! Layout (compatible with existing deployments): `config/config.yaml`
//! (`application/x-yaml`) and `auths/<id>` (`application/json`). The ETag is
//! the version. Preconditions go to the server as `If-Match` /
//! `If-None-Match`; `prepare` probes whether the server honours them, and
//! where it does not, each conditional write first re-reads the ETag, so a
//! lost race is a conflict rather than a silent overwrite.

mod feed;
mod layout;

use feed::Feed;
use layout::{PROBE_PREFIX, content_type, document_key, object_key};
use std::cell::Cell;
use storehost_sdk::capabilities::objects::{self, Condition, ObjectInfo, PutRequest};
use storehost_sdk::capabilities::secrets;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, HostError, Info, Key, Precondition, Put,
    Remove, Settings, Snapshot, host_error,
};

pub struct ObjectStore {
    bucket: objects::Bucket,
    feed: Feed,
    /// What the server does with conditional headers; probed once.
    honours: Cell<Option<Honours>>,
}

/// Whether the server enforces `If-Match`/`If-None-Match` on put and
/// `If-Match` on delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Honours {
    put: bool,
    delete: bool,
}

impl Backend for ObjectStore {
    fn open(settings: Settings) -> Result<Self, Error> {
        let endpoint = settings
            .get("endpoint")
            .ok_or_else(|| Error::Invalid("setting `endpoint` is required".into()))?;
        let bucket = settings
            .get("bucket")
            .ok_or_else(|| Error::Invalid("setting `bucket` is required".into()))?;
        let region = settings.get_or("region", "us-east-1");
        let access_key = secrets::get("access_key").map_err(host_error)?;
        let secret_key = secrets::get("secret_key").map_err(host_error)?;
        let bucket = objects::open(endpoint, bucket, region, &access_key, &secret_key)
            .map_err(host_error)?;
        Ok(ObjectStore {
            bucket,
            feed: Feed::new(),
            honours: Cell::new(None),
        })
    }

    fn info(&self) -> Info {
        Info {
            name: "object".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::CONDITIONAL_WRITE,
        }
    }

    fn prepare(&self) -> Result<(), Error> {
        self.bucket.ensure().map_err(host_error)?;
        self.honours().map(drop)
    }

    fn check(&self) -> Result<(), Error> {
        self.bucket
            .head(layout::CONFIG_OBJECT)
            .map(drop)
            .map_err(host_error)
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(feed::listing(&self.bucket)?
            .into_iter()
            .map(|(key, info)| entry(key, &info))
            .collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        feed::get_many(&self.bucket, &keys)
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.feed.pull(&self.bucket, cursor.as_deref())
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        let honours = self.honours()?;
        self.check_preconditions(&changes, honours)?;
        // The puts go out together (the host sends them concurrently); the
        // removes, rarer, one by one after them.
        let puts = changes
            .iter()
            .filter_map(|change| match change {
                Change::Put(put) => Some(put_request(put)),
                Change::Remove(_) => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut put_answers = if puts.is_empty() {
            Vec::new()
        } else {
            self.bucket.put_many(&puts).map_err(host_error)?
        }
        .into_iter();
        let mut entries = Vec::with_capacity(changes.len());
        let mut first_error = None;
        for change in &changes {
            let entry = match change {
                Change::Put(put) => match put_answers.next() {
                    Some(Ok(info)) => Some(self.entry_after_put(&put.key, info)?),
                    Some(Err(error)) => {
                        first_error.get_or_insert(conflict_or(&put.key, error));
                        None
                    }
                    None => return Err(Error::Internal("a put went unanswered".into())),
                },
                Change::Remove(remove) => {
                    self.remove(remove)?;
                    None
                }
            };
            entries.push(entry);
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        self.verify_conditional_puts(&changes, &mut entries)?;
        Ok(entries)
    }
}

impl ObjectStore {
    fn honours(&self) -> Result<Honours, Error> {
        if let Some(honours) = self.honours.get() {
            return Ok(honours);
        }
        let honours = probe(&self.bucket)?;
        if !honours.put || !honours.delete {
            storehost_sdk::log::warn(&format!(
                "the object storage ignores conditional headers (put: {}, delete: {}); \
                 conditional writes re-read the ETag first, which leaves a narrow race",
                if honours.put { "honoured" } else { "ignored" },
                if honours.delete {
                    "honoured"
                } else {
                    "ignored"
                },
            ));
        }
        self.honours.set(Some(honours));
        Ok(honours)
    }

    /// Reads back every conditional put: a server that checks a condition
    /// and then writes, without holding the object between the two, lets
    /// two racing writers both pass. The one whose bytes are not there lost:
    /// that is a conflict, as an atomic server would say. The content is
    /// compared, not the ETag: such a server may also store one writer's
    /// bytes under the other's ETag (s3s-fs saves them separately). The
    /// winner's version is the ETag the server holds now, so the next
    /// `If-Match` is checked against what the server compares.
    fn verify_conditional_puts(
        &self,
        changes: &[Change],
        entries: &mut [Option<Entry>],
    ) -> Result<(), Error> {
        let written: Vec<(usize, &Put)> = changes
            .iter()
            .enumerate()
            .filter_map(|(index, change)| match (change, &entries[index]) {
                (Change::Put(put), Some(_)) if !matches!(put.precondition, Precondition::Any) => {
                    Some((index, put))
                }
                _ => None,
            })
            .collect();
        if written.is_empty() {
            return Ok(());
        }
        let objects = written
            .iter()
            .map(|(_, put)| object_key(&put.key))
            .collect::<Result<Vec<_>, _>>()?;
        let current = self.bucket.get_many(&objects).map_err(host_error)?;
        for ((index, put), object) in written.into_iter().zip(current) {
            match object {
                Some(object) if object.content == put.content => {
                    entries[index] = Some(entry(put.key.clone(), &object.info));
                }
                _ => {
                    storehost_sdk::log::warn(&format!(
                        "another writer replaced {} while it was written; reported as a conflict",
                        put.key.id
                    ));
                    return Err(Error::Conflict(put.key.clone()));
                }
            }
        }
        Ok(())
    }

    /// The ETags the keys' objects have now (all asked at once).
    fn current_etags(&self, keys: &[&Key]) -> Result<Vec<Option<String>>, Error> {
        let objects = keys
            .iter()
            .map(|key| object_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        let heads = self.bucket.head_many(&objects).map_err(host_error)?;
        Ok(heads
            .into_iter()
            .map(|head| head.map(|info| info.etag))
            .collect())
    }

    /// Re-reads the ETags (all at once) where the server would not enforce
    /// a condition, for every conditional change of a batch (so a batch
    /// that conflicts up front changes nothing), and for removes that must
    /// find nothing.
    fn check_preconditions(&self, changes: &[Change], honours: Honours) -> Result<(), Error> {
        let batch = changes.len() > 1;
        let checked: Vec<(&Key, &Precondition)> = changes
            .iter()
            .filter_map(|change| {
                let (key, precondition, enforced) = match change {
                    Change::Put(put) => (&put.key, &put.precondition, honours.put),
                    Change::Remove(remove) => (&remove.key, &remove.precondition, honours.delete),
                };
                let must_check = match (change, precondition) {
                    (_, Precondition::Any) => false,
                    (Change::Remove(_), Precondition::Absent) => true,
                    _ => batch || !enforced,
                };
                must_check.then_some((key, precondition))
            })
            .collect();
        if checked.is_empty() {
            return Ok(());
        }
        let keys: Vec<&Key> = checked.iter().map(|(key, _)| *key).collect();
        let etags = self.current_etags(&keys)?;
        for ((key, precondition), current) in checked.into_iter().zip(etags) {
            if !precondition.holds(current.as_deref()) {
                return Err(Error::Conflict(key.clone()));
            }
        }
        Ok(())
    }

    /// Some servers answer a PUT without an ETag: ask for it.
    fn entry_after_put(&self, key: &Key, info: ObjectInfo) -> Result<Entry, Error> {
        if !info.etag.is_empty() {
            return Ok(entry(key.clone(), &info));
        }
        let head = self
            .bucket
            .head(&object_key(key)?)
            .map_err(host_error)?
            .ok_or_else(|| Error::Unavailable("the object vanished after a put".into()))?;
        Ok(entry(key.clone(), &head))
    }

    fn remove(&self, remove: &Remove) -> Result<(), Error> {
        let condition = match &remove.precondition {
            Precondition::Matches(version) => Condition::IfMatch(version.clone()),
            // Absent was checked: there is nothing to delete.
            Precondition::Absent => return Ok(()),
            Precondition::Any => Condition::None,
        };
        self.bucket
            .delete(&object_key(&remove.key)?, &condition)
            .map_err(|error| conflict_or(&remove.key, error))
    }
}

fn put_request(put: &Put) -> Result<PutRequest, Error> {
    Ok(PutRequest {
        key: object_key(&put.key)?,
        content: put.content.clone(),
        content_type: content_type(&put.key).into(),
        condition: match &put.precondition {
            Precondition::Any => Condition::None,
            Precondition::Absent => Condition::IfAbsent,
            Precondition::Matches(version) => Condition::IfMatch(version.clone()),
        },
    })
}

/// A refused condition is a conflict on that key; the rest map as usual.
fn conflict_or(key: &Key, error: HostError) -> Error {
    match error {
        HostError::Conflict(_) => Error::Conflict(key.clone()),
        other => host_error(other),
    }
}

/// Writes a probe object and asks for what must fail: a put with
/// `If-None-Match: *` over it, one with a wrong `If-Match`, and a delete
/// with a wrong `If-Match`.
fn probe(bucket: &objects::Bucket) -> Result<Honours, Error> {
    let key = format!("{PROBE_PREFIX}{}", unique_suffix());
    let refused = |answer: Result<ObjectInfo, HostError>| match answer {
        Err(HostError::Conflict(_)) => Ok(true),
        Ok(_) => Ok(false),
        Err(other) => Err(host_error(other)),
    };
    bucket
        .put(&key, b"probe", "text/plain", &Condition::None)
        .map_err(host_error)?;
    let absent = refused(bucket.put(&key, b"probe", "text/plain", &Condition::IfAbsent))?;
    let wrong = Condition::IfMatch("00000000000000000000000000000000".into());
    let matches = refused(bucket.put(&key, b"probe", "text/plain", &wrong))?;
    let delete = match bucket.delete(&key, &wrong) {
        Err(HostError::Conflict(_)) => true,
        Ok(()) => false,
        Err(other) => return Err(host_error(other)),
    };
    bucket.delete(&key, &Condition::None).map_err(host_error)?;
    Ok(Honours {
        put: absent && matches,
        delete,
    })
}

fn unique_suffix() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("{:016x}", RandomState::new().hash_one(0u8))
}

fn entry(key: Key, info: &ObjectInfo) -> Entry {
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

storehost_sdk::export_backend!(ObjectStore);
