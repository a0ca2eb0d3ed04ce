//! A storehost backend on Azure Blob Storage, written as any third party
//! would write one: the storehost SDK for the contract, `wasi:http` for the
//! network, nothing else from the host. The host holds the credential (an
//! account key it signs with, or a SAS it appends); this plugin sends
//! plain requests to the account URL and never sees either.
//!
//! Layout, one container: `config/config.yaml` and `auths/<id>`
//! (storehost's metadata under `.storehost/meta/`). The ETag is the
//! version; the service enforces `If-Match` and `If-None-Match: *` itself.

mod errors;
mod feed;
mod http;
mod listing;
mod service;

use errors::Answer;
use feed::{Feed, entry};
use service::{Condition, Container};
use storehost_sdk::paths::{content_type, path_of};
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Precondition, Put, Settings,
    Snapshot,
};

pub struct AzureBlob {
    container: Container,
    feed: Feed,
}

impl Backend for AzureBlob {
    fn open(settings: Settings) -> Result<Self, Error> {
        Ok(AzureBlob {
            container: Container::open(&settings)?,
            feed: Feed::default(),
        })
    }

    fn info(&self) -> Info {
        Info {
            name: "azure-blob".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::CONDITIONAL_WRITE,
        }
    }

    fn prepare(&self) -> Result<(), Error> {
        self.container.create()
    }

    fn check(&self) -> Result<(), Error> {
        self.container.check()
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(feed::listing(&self.container)?
            .into_iter()
            .map(|(key, blob)| entry(key, &blob))
            .collect())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        feed::read(&self.container, &keys)
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.feed.pull(&self.container, cursor.as_deref())
    }

    fn apply(&self, changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        if changes.len() > 1 {
            self.check_up_front(&changes)?;
        }
        let mut entries = self.put_all(&changes)?;
        for (index, change) in changes.iter().enumerate() {
            if let Change::Remove(remove) = change {
                let name = path_of(&remove.key)?;
                let condition = condition(&remove.precondition);
                if let Condition::Absent = condition {
                    // Only "nothing there" may be removed: checked up front
                    // for a batch, asked here for a single change.
                    if self.container.head_many(&[name])?[0].is_some() {
                        return Err(Error::Conflict(remove.key.clone()));
                    }
                    continue;
                }
                if let Answer::ConditionFailed = self.container.delete(&name, &condition)? {
                    return Err(Error::Conflict(remove.key.clone()));
                }
                entries[index] = None;
            }
        }
        Ok(entries)
    }
}

impl AzureBlob {
    /// A batch checks every condition before it changes anything, so a
    /// batch that conflicts up front leaves the container as it was. The
    /// service still enforces each condition as it writes.
    fn check_up_front(&self, changes: &[Change]) -> Result<(), Error> {
        let checked: Vec<&Change> = changes
            .iter()
            .filter(|change| !matches!(change.precondition(), Precondition::Any))
            .collect();
        if checked.is_empty() {
            return Ok(());
        }
        let names = checked
            .iter()
            .map(|change| path_of(change.key()))
            .collect::<Result<Vec<_>, _>>()?;
        let current = self.container.head_many(&names)?;
        for (change, blob) in checked.into_iter().zip(current) {
            if !change
                .precondition()
                .holds(blob.as_ref().map(|b| b.etag.as_str()))
            {
                return Err(Error::Conflict(change.key().clone()));
            }
        }
        Ok(())
    }

    /// Writes the puts together; one slot per change (removes left `None`).
    fn put_all(&self, changes: &[Change]) -> Result<Vec<Option<Entry>>, Error> {
        let puts: Vec<&Put> = changes
            .iter()
            .filter_map(|change| match change {
                Change::Put(put) => Some(put),
                Change::Remove(_) => None,
            })
            .collect();
        let blobs = puts
            .iter()
            .map(|put| {
                Ok((
                    path_of(&put.key)?,
                    put.content.clone(),
                    content_type(&put.key),
                    condition(&put.precondition),
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let answers = match blobs.is_empty() {
            true => Vec::new(),
            false => self.container.put_many(blobs)?,
        };
        let mut answers = puts.into_iter().zip(answers);
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            entries.push(match change {
                Change::Put(_) => match answers.next() {
                    Some((put, Answer::Done(mut blob))) => {
                        blob.size = put.content.len() as u64;
                        Some(entry(put.key.clone(), &blob))
                    }
                    Some((put, Answer::ConditionFailed)) => {
                        return Err(Error::Conflict(put.key.clone()));
                    }
                    None => return Err(Error::Internal("a put went unanswered".into())),
                },
                Change::Remove(_) => None,
            });
        }
        Ok(entries)
    }
}

fn condition(precondition: &Precondition) -> Condition<'_> {
    match precondition {
        Precondition::Any => Condition::None,
        Precondition::Absent => Condition::Absent,
        Precondition::Matches(etag) => Condition::Matches(etag),
    }
}

storehost_sdk::export_backend!(AzureBlob);
