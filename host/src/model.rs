//! The host's document model, independent of the generated bindings.

use std::fmt;

/// The id of the one config document.
pub const CONFIG_ID: &str = storehost_sdk::CONFIG_ID;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Config,
    Auth,
    /// The host's own data in the backend (e.g. the lineage id); never
    /// written to the workspace.
    Meta,
    /// The proxy's cooldown state, a `*.cds` file beside the auths.
    Cooldown,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    pub id: String,
}

impl Key {
    pub fn config() -> Self {
        Key {
            kind: Kind::Config,
            id: CONFIG_ID.into(),
        }
    }

    pub fn auth(id: impl Into<String>) -> Self {
        Key {
            kind: Kind::Auth,
            id: id.into(),
        }
    }

    pub fn cooldown(id: impl Into<String>) -> Self {
        Key {
            kind: Kind::Cooldown,
            id: id.into(),
        }
    }

    pub fn meta(id: impl Into<String>) -> Self {
        Key {
            kind: Kind::Meta,
            id: id.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Config => write!(f, "config/{}", self.id),
            Kind::Auth | Kind::Cooldown => write!(f, "auths/{}", self.id),
            Kind::Meta => write!(f, "meta/{}", self.id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Key,
    pub version: String,
    pub size: u64,
    pub modified_ms: Option<i64>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    pub entry: Entry,
    pub content: Vec<u8>,
}

// Content is token material: never print it.
impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("entry", &self.entry)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    Any,
    Absent,
    Matches(String),
}

#[derive(Clone, PartialEq, Eq)]
pub enum Change {
    Put {
        key: Key,
        content: Vec<u8>,
        precondition: Precondition,
    },
    Remove {
        key: Key,
        precondition: Precondition,
    },
}

impl Change {
    pub fn key(&self) -> &Key {
        match self {
            Change::Put { key, .. } | Change::Remove { key, .. } => key,
        }
    }
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Put {
                key,
                content,
                precondition,
            } => write!(
                f,
                "Put {{ key: {key}, content: <{} bytes>, precondition: {precondition:?} }}",
                content.len()
            ),
            Change::Remove { key, precondition } => {
                write!(f, "Remove {{ key: {key}, precondition: {precondition:?} }}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub atomic_batch: bool,
    pub conditional_write: bool,
    pub history: bool,
    pub watch: bool,
    pub incremental_pull: bool,
}

impl Features {
    /// A backend that applies a batch all-or-nothing and enforces its
    /// preconditions itself checks them in the same transaction as the
    /// write: a create that succeeded cannot have been overwritten by a
    /// racing create.
    pub fn atomic_conditional_writes(&self) -> bool {
        self.atomic_batch && self.conditional_write
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.atomic_batch, "atomic-batch"),
            (self.conditional_write, "conditional-write"),
            (self.history, "history"),
            (self.watch, "watch"),
            (self.incremental_pull, "incremental-pull"),
        ];
        let on: Vec<&str> = names
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, n)| *n)
            .collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub features: Features,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub documents: Vec<Document>,
    pub removed: Vec<Key>,
    pub cursor: String,
    pub complete: bool,
}
