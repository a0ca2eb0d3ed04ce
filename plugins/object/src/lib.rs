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
use storehost_sdk::capabilities::objects::{self, Condition, ObjectInfo};
use storehost_sdk::capabilities::secrets;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, HostError, Info, Key, Precondition,
    Settings, Snapshot,
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
        // In a batch every precondition is checked before anything is
        // written, so one that conflicts up front changes nothing; a single
        // change is checked by the server where it honours the headers.
        let batch = changes.len() > 1;
        for change in &changes {
            self.check_precondition(change, honours, batch)?;
        }
        changes
            .iter()
            .map(|change| self.apply_one(change))
            .collect()
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

    /// Re-reads the ETag where the server would not enforce the condition,
    /// for every conditional change of a batch, and for removes that must
    /// find nothing.
    fn check_precondition(
        &self,
        change: &Change,
        honours: Honours,
        batch: bool,
    ) -> Result<(), Error> {
        let (key, precondition, enforced) = match change {
            Change::Put(put) => (&put.key, &put.precondition, honours.put),
            Change::Remove(remove) => (&remove.key, &remove.precondition, honours.delete),
        };
        let must_check = match (change, precondition) {
            (_, Precondition::Any) => false,
            (Change::Remove(_), Precondition::Absent) => true,
            _ => batch || !enforced,
        };
        if !must_check {
            return Ok(());
        }
        let current = self
            .bucket
            .head(&object_key(key)?)
            .map_err(host_error)?
            .map(|info| info.etag);
        let holds = match precondition {
            Precondition::Any => true,
            Precondition::Absent => current.is_none(),
            Precondition::Matches(version) => current.as_deref() == Some(version.as_str()),
        };
        if holds {
            Ok(())
        } else {
            Err(Error::Conflict(key.clone()))
        }
    }

    fn apply_one(&self, change: &Change) -> Result<Option<Entry>, Error> {
        fn conflict(key: &Key) -> impl Fn(HostError) -> Error + '_ {
            move |error| match error {
                HostError::Conflict(_) => Error::Conflict(key.clone()),
                other => host_error(other),
            }
        }
        match change {
            Change::Put(put) => {
                let object = object_key(&put.key)?;
                let condition = match &put.precondition {
                    Precondition::Any => Condition::None,
                    Precondition::Absent => Condition::IfAbsent,
                    Precondition::Matches(version) => Condition::IfMatch(version.clone()),
                };
                let mut info = self
                    .bucket
                    .put(&object, &put.content, content_type(&put.key), &condition)
                    .map_err(conflict(&put.key))?;
                if info.etag.is_empty() {
                    // Some servers answer a PUT without an ETag.
                    info = self
                        .bucket
                        .head(&object)
                        .map_err(host_error)?
                        .ok_or_else(|| {
                            Error::Unavailable("the object vanished after a put".into())
                        })?;
                }
                Ok(Some(entry(put.key.clone(), &info)))
            }
            Change::Remove(remove) => {
                let condition = match &remove.precondition {
                    Precondition::Matches(version) => Condition::IfMatch(version.clone()),
                    // Absent was checked: there is nothing to delete.
                    Precondition::Absent => return Ok(None),
                    Precondition::Any => Condition::None,
                };
                self.bucket
                    .delete(&object_key(&remove.key)?, &condition)
                    .map_err(conflict(&remove.key))?;
                Ok(None)
            }
        }
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

pub(crate) fn host_error(error: HostError) -> Error {
    match error {
        HostError::Denied(m) => Error::Denied(m),
        HostError::Unavailable(m) => Error::Unavailable(m),
        HostError::Invalid(m) => Error::Invalid(m),
        HostError::Conflict(m) => Error::Internal(format!("unexpected conflict: {m}")),
        HostError::NotFound(m) => Error::Internal(format!("not found: {m}")),
        HostError::Rejected(m) | HostError::Internal(m) => Error::Internal(m),
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
