//! An incremental change feed for any store that lists its documents with
//! an ETag each (object stores, blob stores). The cursor names the listing
//! it was taken from (a digest of names and ETags); while this instance
//! still holds that listing, a pull reads only the documents whose ETag
//! changed and reports the ones that disappeared. Any other cursor gets a
//! complete snapshot.

use crate::{Document, Error, Key, Snapshot};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// One document in a store's listing.
pub struct Listed {
    pub key: Key,
    /// The store's own name for it (object key, blob name).
    pub name: String,
    pub etag: String,
}

/// The listing a cursor was handed out for: key and ETag by stored name.
struct Seen {
    cursor: String,
    entries: BTreeMap<String, (Key, String)>,
}

pub struct EtagFeed {
    /// Names the cursor format, e.g. `s3v1`.
    tag: &'static str,
    seen: RefCell<Option<Seen>>,
}

impl EtagFeed {
    pub fn new(tag: &'static str) -> EtagFeed {
        EtagFeed {
            tag,
            seen: RefCell::new(None),
        }
    }

    /// What changed since `cursor`, given the store's current `listing`;
    /// `read` answers the documents of some keys, one answer each, `None`
    /// for a document deleted since the listing.
    pub fn pull(
        &self,
        listing: Vec<Listed>,
        cursor: Option<&str>,
        read: impl FnOnce(&[Key]) -> Result<Vec<Option<Document>>, Error>,
    ) -> Result<Snapshot, Error> {
        let previous = self
            .seen
            .borrow_mut()
            .take()
            .filter(|seen| Some(seen.cursor.as_str()) == cursor);
        let unchanged = |listed: &Listed| {
            previous
                .as_ref()
                .and_then(|p| p.entries.get(&listed.name))
                .is_some_and(|(_, etag)| *etag == listed.etag)
        };
        let (changed_names, changed_keys): (Vec<String>, Vec<Key>) = listing
            .iter()
            .filter(|listed| !unchanged(listed))
            .map(|listed| (listed.name.clone(), listed.key.clone()))
            .unzip();
        let answers = read(&changed_keys)?;
        if answers.len() != changed_keys.len() {
            return Err(Error::Internal(format!(
                "read answered {} of {} documents",
                answers.len(),
                changed_keys.len()
            )));
        }
        let mut entries: BTreeMap<String, (Key, String)> = listing
            .into_iter()
            .map(|listed| (listed.name, (listed.key, listed.etag)))
            .collect();
        let mut documents = Vec::new();
        let mut removed = Vec::new();
        for ((name, key), answer) in changed_names.into_iter().zip(changed_keys).zip(answers) {
            match answer {
                Some(document) => documents.push(document),
                // Deleted between the listing and the read.
                None => {
                    entries.remove(&name);
                    removed.push(key);
                }
            }
        }
        if let Some(previous) = &previous {
            removed.extend(
                previous
                    .entries
                    .iter()
                    .filter(|(name, _)| !entries.contains_key(*name))
                    .map(|(_, (key, _))| key.clone()),
            );
        }
        let cursor = self.digest(&entries);
        let complete = previous.is_none();
        *self.seen.borrow_mut() = Some(Seen {
            cursor: cursor.clone(),
            entries,
        });
        Ok(Snapshot {
            documents,
            removed: if complete { Vec::new() } else { removed },
            cursor,
            complete,
        })
    }

    fn digest(&self, entries: &BTreeMap<String, (Key, String)>) -> String {
        let mut hasher = Sha256::new();
        for (name, (_, etag)) in entries {
            hasher.update(format!("{name}\0{etag}\n"));
        }
        format!("{}:{}", self.tag, &hex::encode(hasher.finalize())[..32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, Kind};
    use std::cell::Cell;

    fn auth(id: &str) -> Key {
        Key {
            kind: Kind::Auth,
            id: id.into(),
        }
    }

    fn listed(id: &str, etag: &str) -> Listed {
        Listed {
            key: auth(id),
            name: format!("auths/{id}"),
            etag: etag.into(),
        }
    }

    fn document(key: &Key) -> Document {
        Document {
            entry: Entry {
                key: key.clone(),
                version: "v".into(),
                size: 0,
                modified_ms: None,
            },
            content: Vec::new(),
        }
    }

    /// Reads every key that exists, and counts the keys asked.
    fn read_all(
        asked: &Cell<usize>,
    ) -> impl FnOnce(&[Key]) -> Result<Vec<Option<Document>>, Error> + '_ {
        move |keys| {
            asked.set(asked.get() + keys.len());
            Ok(keys.iter().map(|key| Some(document(key))).collect())
        }
    }

    fn ids(keys: &[Key]) -> Vec<&str> {
        keys.iter().map(|key| key.id.as_str()).collect()
    }

    #[test]
    fn a_pull_with_its_cursor_reads_only_what_changed_and_names_what_went() {
        let feed = EtagFeed::new("t1");
        let asked = Cell::new(0);
        let first = feed
            .pull(
                vec![listed("a", "1"), listed("b", "1"), listed("c", "1")],
                None,
                read_all(&asked),
            )
            .unwrap();
        assert!(first.complete);
        assert_eq!(first.documents.len(), 3);
        assert!(first.cursor.starts_with("t1:"));

        asked.set(0);
        let second = feed
            .pull(
                vec![listed("a", "1"), listed("b", "2"), listed("d", "1")],
                Some(&first.cursor),
                read_all(&asked),
            )
            .unwrap();
        assert!(!second.complete);
        assert_eq!(asked.get(), 2, "only b (changed) and d (new) are read");
        let read: Vec<&str> = second
            .documents
            .iter()
            .map(|d| d.entry.key.id.as_str())
            .collect();
        assert_eq!(read, ["b", "d"]);
        assert_eq!(ids(&second.removed), ["c"]);
        assert_ne!(second.cursor, first.cursor);
    }

    #[test]
    fn any_other_cursor_gets_a_complete_snapshot() {
        let feed = EtagFeed::new("t1");
        let asked = Cell::new(0);
        feed.pull(vec![listed("a", "1")], None, read_all(&asked))
            .unwrap();
        let again = feed
            .pull(
                vec![listed("a", "1")],
                Some("t1:not-this-one"),
                read_all(&asked),
            )
            .unwrap();
        assert!(again.complete);
        assert_eq!(again.documents.len(), 1);
        assert!(again.removed.is_empty());
    }

    #[test]
    fn a_document_gone_before_it_is_read_is_removed_and_left_out_of_the_cursor() {
        let feed = EtagFeed::new("t1");
        let asked = Cell::new(0);
        let first = feed
            .pull(vec![listed("a", "1")], None, read_all(&asked))
            .unwrap();
        let second = feed
            .pull(
                vec![listed("a", "1"), listed("b", "1")],
                Some(&first.cursor),
                |keys| Ok(keys.iter().map(|_| None).collect()),
            )
            .unwrap();
        assert!(second.documents.is_empty());
        assert_eq!(ids(&second.removed), ["b"]);
        assert_eq!(
            second.cursor, first.cursor,
            "the listing without b is the first one"
        );
    }

    #[test]
    fn a_read_that_answers_too_few_is_an_error() {
        let feed = EtagFeed::new("t1");
        let result = feed.pull(vec![listed("a", "1")], None, |_| Ok(Vec::new()));
        assert!(matches!(result, Err(Error::Internal(_))));
    }
}
