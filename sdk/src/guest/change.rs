//! What every backend asks of a change: its key, its precondition, and
//! whether that precondition holds for the version stored now.

use crate::{Change, Key, Precondition};

impl Change {
    pub fn key(&self) -> &Key {
        match self {
            Change::Put(put) => &put.key,
            Change::Remove(remove) => &remove.key,
        }
    }

    pub fn precondition(&self) -> &Precondition {
        match self {
            Change::Put(put) => &put.precondition,
            Change::Remove(remove) => &remove.precondition,
        }
    }
}

impl Precondition {
    /// Whether a write with this precondition may replace `current` (the
    /// stored version, `None` when the document is absent). When it does
    /// not, answer `Error::Conflict(key)`.
    pub fn holds(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (Precondition::Any, _) => true,
            (Precondition::Absent, current) => current.is_none(),
            (Precondition::Matches(expected), Some(current)) => expected == current,
            (Precondition::Matches(_), None) => false,
        }
    }
}
