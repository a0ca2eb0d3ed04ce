//! Writes: conditional puts and deletes, checked up front where the
//! server would not enforce a condition and read back where it might
//! have let two racing writers both pass.

use crate::ObjectStore;
use crate::errors::conflict_or;
use crate::feed::entry;
use crate::layout::{PROBE_PREFIX, content_type, object_key};
use storehost_sdk::capabilities::objects::{self, Condition, ObjectInfo, PutRequest};
use storehost_sdk::{Change, Entry, Error, HostError, Key, Precondition, Put, Remove, host_error};

/// Whether the server enforces `If-Match`/`If-None-Match` on put and
/// `If-Match` on delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Honours {
    put: bool,
    delete: bool,
}

impl ObjectStore {
    pub(crate) fn honours(&self) -> Result<Honours, Error> {
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

    /// Checks, then writes: the puts together, the removes one by one.
    pub(crate) fn apply_changes(&self, changes: Vec<Change>) -> Result<Vec<Option<Entry>>, Error> {
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
