//! The one place sync decisions are made: a pure function of what both
//! sides last agreed on, the acknowledged local changes still queued, the
//! workspace now and the backend now.
//!
//! Policy: a change on one side only goes to the other; both changed to
//! the same content is agreement; both changed differently, the remote
//! wins and the local content is kept as a conflict copy; an edit beats a
//! deletion, so a token is never lost to a delete that raced an update. A
//! remote that holds the content of one of our own queued writes took that
//! write (its reply may have been lost): not a conflict.

use super::ledger::Base;

/// The workspace file now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    Absent,
    /// Its content hash.
    Present(String),
    /// There, but not a valid document: left for the user to fix.
    Invalid,
}

/// The backend now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Not looked at (a local scan, or a delta that does not name it).
    Unknown,
    Absent,
    Present {
        version: String,
        hash: String,
    },
}

/// A queued change: its sequence number and a put's content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub seq: u64,
    /// `None` for a removal.
    pub hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Both sides hold the same thing: record it as the base (`None`:
    /// both deleted) and drop queued entries through `settled`.
    Agree {
        base: Option<Base>,
        settled: Option<u64>,
    },
    /// Queue the workspace content for the backend.
    Push,
    /// Queue a removal for the backend.
    PushRemove,
    /// Take the remote into the workspace (write it, or delete the file
    /// when the remote has none). `keep_local` keeps the local content as a
    /// conflict copy first; `drop_queued` drops the queued entries it
    /// supersedes.
    Pull {
        keep_local: bool,
        drop_queued: bool,
    },
    /// The remote deleted a document the workspace changed: forget the
    /// base so the local content is pushed as new; queue it unless a put
    /// is queued already.
    Resurrect {
        enqueue: bool,
    },
}

pub fn decide(base: Option<&Base>, queued: &[Queued], local: &Local, remote: &Remote) -> Action {
    if *local == Local::Invalid {
        return Action::Nothing;
    }
    let remote_changed = match remote {
        Remote::Unknown => false,
        Remote::Absent => base.is_some(),
        // The content decides as much as the version: a server that
        // reports the same version for other content is not believed.
        Remote::Present { version, hash } => {
            base.is_none_or(|b| &b.version != version || &b.hash != hash)
        }
    };
    if !queued.is_empty() {
        return with_queue(queued, local, remote, remote_changed);
    }
    let local_hash = match local {
        Local::Present(hash) => Some(hash),
        _ => None,
    };
    if let (Some(local), Remote::Present { version, hash }) = (local_hash, remote)
        && local == hash
    {
        let agreed = Base {
            version: version.clone(),
            hash: hash.clone(),
        };
        return match base == Some(&agreed) {
            true => Action::Nothing,
            false => Action::Agree {
                base: Some(agreed),
                settled: None,
            },
        };
    }
    let local_changed = local_hash != base.map(|b| &b.hash);
    match (local_changed, remote_changed, local_hash, remote) {
        (false, false, ..) => Action::Nothing,
        (true, false, Some(_), _) => Action::Push,
        (true, false, None, _) => Action::PushRemove,
        (false, true, ..) => Action::Pull {
            keep_local: false,
            drop_queued: false,
        },
        (true, true, None, Remote::Absent) => Action::Agree {
            base: None,
            settled: None,
        },
        // Deleted here, changed there: the remote's change is kept.
        (true, true, None, _) => Action::Pull {
            keep_local: false,
            drop_queued: false,
        },
        (true, true, Some(_), Remote::Absent) => Action::Resurrect { enqueue: true },
        (true, true, Some(_), _) => Action::Pull {
            keep_local: true,
            drop_queued: false,
        },
    }
}

/// Local changes are queued: the drain pushes them unless the remote moved.
/// A workspace file newer than the last queued change (written while the
/// host was down, or in the instant before a crash) is queued too.
fn with_queue(queued: &[Queued], local: &Local, remote: &Remote, remote_changed: bool) -> Action {
    let last = queued.last().expect("a queue");
    if !remote_changed {
        return match (local, &last.hash) {
            (Local::Present(local), Some(queued)) if local == queued => Action::Nothing,
            (Local::Present(_), _) => Action::Push,
            (Local::Absent, Some(_)) => Action::PushRemove,
            _ => Action::Nothing,
        };
    }
    match remote {
        Remote::Unknown => Action::Nothing,
        Remote::Present { version, hash } => {
            // Newest first: the latest of our writes the remote holds.
            match queued.iter().rev().find(|q| q.hash.as_ref() == Some(hash)) {
                Some(own) => Action::Agree {
                    base: Some(Base {
                        version: version.clone(),
                        hash: hash.clone(),
                    }),
                    settled: Some(own.seq),
                },
                None => Action::Pull {
                    keep_local: matches!(local, Local::Present(l) if l != hash),
                    drop_queued: true,
                },
            }
        }
        Remote::Absent if last.hash.is_none() => Action::Agree {
            base: None,
            settled: Some(last.seq),
        },
        Remote::Absent => Action::Resurrect { enqueue: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(version: &str, hash: &str) -> Option<Base> {
        Some(Base {
            version: version.into(),
            hash: hash.into(),
        })
    }
    fn present(hash: &str) -> Local {
        Local::Present(hash.into())
    }
    fn remote(version: &str, hash: &str) -> Remote {
        Remote::Present {
            version: version.into(),
            hash: hash.into(),
        }
    }
    fn put(seq: u64, hash: &str) -> Queued {
        Queued {
            seq,
            hash: Some(hash.into()),
        }
    }
    fn remove(seq: u64) -> Queued {
        Queued { seq, hash: None }
    }
    const NOTHING: Action = Action::Nothing;
    const PULL: Action = Action::Pull {
        keep_local: false,
        drop_queued: false,
    };
    const CONFLICT: Action = Action::Pull {
        keep_local: true,
        drop_queued: false,
    };
    fn agree(version: &str, hash: &str, settled: Option<u64>) -> Action {
        Action::Agree {
            base: base(version, hash),
            settled,
        }
    }

    /// (case, base, queued, local, remote, expected)
    type Case = (
        &'static str,
        Option<Base>,
        Vec<Queued>,
        Local,
        Remote,
        Action,
    );

    #[test]
    fn every_case() {
        use Local::{Absent as LAbsent, Invalid};
        use Remote::{Absent as RAbsent, Unknown};
        let b = base("v1", "A");
        #[rustfmt::skip]
        let table: Vec<Case> = vec![
            ("in step", b.clone(), vec![], present("A"), remote("v1", "A"), NOTHING),
            ("in step, remote not looked at", b.clone(), vec![], present("A"), Unknown, NOTHING),
            ("own write echoed back", base("v2", "B"), vec![], present("B"), remote("v2", "B"), NOTHING),
            ("changed locally", b.clone(), vec![], present("B"), Unknown, Action::Push),
            ("changed locally, remote as before", b.clone(), vec![], present("B"), remote("v1", "A"), Action::Push),
            ("new locally", None, vec![], present("B"), Unknown, Action::Push),
            ("new locally, absent remotely", None, vec![], present("B"), RAbsent, Action::Push),
            ("deleted locally", b.clone(), vec![], LAbsent, Unknown, Action::PushRemove),
            ("deleted locally, remote as before", b.clone(), vec![], LAbsent, remote("v1", "A"), Action::PushRemove),
            ("changed remotely", b.clone(), vec![], present("A"), remote("v2", "B"), PULL),
            ("new remotely", None, vec![], LAbsent, remote("v1", "A"), PULL),
            ("deleted remotely, local unchanged", b.clone(), vec![], present("A"), RAbsent, PULL),
            ("both deleted", b.clone(), vec![], LAbsent, RAbsent, Action::Agree { base: None, settled: None }),
            ("same version, other content (a lying server)", b.clone(), vec![], present("A"), remote("v1", "B"), PULL),
            ("new version, same content", b.clone(), vec![], present("A"), remote("v2", "A"), agree("v2", "A", None)),
            ("both changed to equal content", b.clone(), vec![], present("C"), remote("v2", "C"), agree("v2", "C", None)),
            ("both new with equal content", None, vec![], present("C"), remote("v1", "C"), agree("v1", "C", None)),
            ("both changed differently", b.clone(), vec![], present("B"), remote("v2", "C"), CONFLICT),
            ("both new, different", None, vec![], present("B"), remote("v1", "C"), CONFLICT),
            ("deleted locally, changed remotely", b.clone(), vec![], LAbsent, remote("v2", "C"), PULL),
            ("changed locally, deleted remotely", b.clone(), vec![], present("B"), RAbsent, Action::Resurrect { enqueue: true }),
            ("invalid local file", b.clone(), vec![], Invalid, remote("v2", "C"), NOTHING),
            ("queued, remote as before", b.clone(), vec![put(7, "B")], present("B"), remote("v1", "A"), NOTHING),
            ("queued, remote not looked at", b.clone(), vec![put(7, "B")], present("B"), Unknown, NOTHING),
            ("queued, the file is newer still", b.clone(), vec![put(7, "B")], present("C"), Unknown, Action::Push),
            ("queued, the file is gone since", b.clone(), vec![put(7, "B")], LAbsent, remote("v1", "A"), Action::PushRemove),
            ("queued removal, the file is back", b.clone(), vec![remove(7)], present("C"), Unknown, Action::Push),
            ("queued removal, still gone", b.clone(), vec![remove(7)], LAbsent, Unknown, NOTHING),
            ("queued write whose reply was lost", b.clone(), vec![put(7, "B")], present("B"), remote("v2", "B"), agree("v2", "B", Some(7))),
            ("older queued write reached the remote", b.clone(), vec![put(7, "B"), put(9, "C")], present("C"), remote("v2", "B"), agree("v2", "B", Some(7))),
            ("newest queued write reached the remote", b.clone(), vec![put(7, "B"), put(9, "C")], present("C"), remote("v3", "C"), agree("v3", "C", Some(9))),
            ("queued, another writer won", b.clone(), vec![put(7, "B")], present("B"), remote("v2", "C"), Action::Pull { keep_local: true, drop_queued: true }),
            ("queued, another writer won, proxy wrote theirs too", b.clone(), vec![put(7, "B")], present("C"), remote("v2", "C"), Action::Pull { keep_local: false, drop_queued: true }),
            ("queued removal, removed remotely too", b.clone(), vec![remove(7)], LAbsent, RAbsent, Action::Agree { base: None, settled: Some(7) }),
            ("queued removal, changed remotely", b.clone(), vec![remove(7)], LAbsent, remote("v2", "C"), Action::Pull { keep_local: false, drop_queued: true }),
            ("queued put, deleted remotely", b.clone(), vec![put(7, "B")], present("B"), RAbsent, Action::Resurrect { enqueue: false }),
            ("queued put of a new file, remote absent", None, vec![put(7, "B")], present("B"), RAbsent, NOTHING),
        ];
        for (case, base, queued, local, remote, expected) in table {
            assert_eq!(
                decide(base.as_ref(), &queued, &local, &remote),
                expected,
                "{case}"
            );
        }
    }
}
