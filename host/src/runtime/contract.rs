//! The contract versions a plugin may be built against, behind one calling
//! surface in the host's own types. A 0.1.0 component has no cooldown
//! documents: this adapter never hands it one (reads of cooldown keys
//! answer "absent", writes of them are refused) and the mirror keeps
//! cooldown state local for it.

use super::bindings::{self as v0_1_0, v0_2_0};
use super::error::BackendError;
use crate::capabilities::HostState;
use crate::model::{Change, Document, Entry, Features, Info, Key, Kind, Precondition, Snapshot};
use wasmtime::Store;
use wasmtime::component::{InstancePre, ResourceAny};

/// The outcome of one export call: a trap, or the backend's own answer.
pub type CallResult<T> = wasmtime::Result<Result<T, BackendError>>;

/// A linked component, ready to instantiate, of either contract version.
#[derive(Clone)]
pub enum BackendPre {
    V0_1(v0_1_0::BackendPluginPre<HostState>),
    V0_2(v0_2_0::BackendPluginPre<HostState>),
}

/// A live instance's exports.
pub enum Backend {
    V0_1(v0_1_0::BackendPlugin),
    V0_2(v0_2_0::BackendPlugin),
}

impl BackendPre {
    /// Picks the version by what the component exports; the error is the
    /// newest version's, the one an author should build against.
    pub fn new(pre: InstancePre<HostState>) -> wasmtime::Result<BackendPre> {
        match v0_2_0::BackendPluginPre::new(pre.clone()) {
            Ok(newest) => Ok(BackendPre::V0_2(newest)),
            Err(newest_error) => v0_1_0::BackendPluginPre::new(pre)
                .map(BackendPre::V0_1)
                .map_err(|_| newest_error),
        }
    }

    /// The contract version the component was built against.
    pub fn contract_version(&self) -> &'static str {
        match self {
            BackendPre::V0_1(_) => "0.1.0",
            BackendPre::V0_2(_) => "0.2.0",
        }
    }

    /// Whether the component's documents may be cooldown state.
    pub fn has_cooldown(&self) -> bool {
        matches!(self, BackendPre::V0_2(_))
    }

    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Backend> {
        Ok(match self {
            BackendPre::V0_1(pre) => Backend::V0_1(pre.instantiate_async(store).await?),
            BackendPre::V0_2(pre) => Backend::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// Runs `$body` with `$store` bound to the `store` resource's functions of
/// whichever version the instance speaks; `.into()` converts either way.
macro_rules! on_store {
    ($backend:expr, |$store:ident| $body:expr) => {
        match $backend {
            Backend::V0_1(bindings) => {
                let $store = bindings.storehost_plugin_backend().store();
                $body
            }
            Backend::V0_2(bindings) => {
                let $store = bindings.storehost_plugin0_2_0_backend().store();
                $body
            }
        }
    };
}

fn answer<W, T: From<W>, E: Into<BackendError>>(result: Result<W, E>) -> Result<T, BackendError> {
    result.map(Into::into).map_err(Into::into)
}

fn answers<W, T: From<W>, E: Into<BackendError>>(
    result: Result<Vec<W>, E>,
) -> Result<Vec<T>, BackendError> {
    result
        .map(|all| all.into_iter().map(Into::into).collect())
        .map_err(Into::into)
}

fn optional_answers<W, T: From<W>, E: Into<BackendError>>(
    result: Result<Vec<Option<W>>, E>,
) -> Result<Vec<Option<T>>, BackendError> {
    result
        .map(|all| all.into_iter().map(|one| one.map(Into::into)).collect())
        .map_err(Into::into)
}

impl Backend {
    pub async fn open(
        &self,
        store: &mut Store<HostState>,
        settings: &Vec<(String, String)>,
    ) -> CallResult<ResourceAny> {
        Ok(on_store!(self, |s| s
            .call_open(store, settings)
            .await?
            .map_err(Into::into)))
    }

    pub async fn info(
        &self,
        store: &mut Store<HostState>,
        handle: ResourceAny,
    ) -> CallResult<Info> {
        Ok(on_store!(self, |s| Ok(s
            .call_info(store, handle)
            .await?
            .into())))
    }

    pub async fn prepare(
        &self,
        store: &mut Store<HostState>,
        handle: ResourceAny,
    ) -> CallResult<()> {
        Ok(on_store!(self, |s| answer(
            s.call_prepare(store, handle).await?
        )))
    }

    pub async fn check(&self, store: &mut Store<HostState>, handle: ResourceAny) -> CallResult<()> {
        Ok(on_store!(self, |s| answer(
            s.call_check(store, handle).await?
        )))
    }

    pub async fn list(
        &self,
        store: &mut Store<HostState>,
        handle: ResourceAny,
    ) -> CallResult<Vec<Entry>> {
        Ok(on_store!(self, |s| answers(
            s.call_list(store, handle).await?
        )))
    }

    /// A 0.1.0 component is asked only for the keys it can hold; cooldown
    /// keys answer "absent" in place.
    pub async fn read(
        &self,
        store: &mut Store<HostState>,
        handle: ResourceAny,
        keys: &[Key],
    ) -> CallResult<Vec<Option<Document>>> {
        let asked: Vec<Key> = match self {
            Backend::V0_1(_) => keys
                .iter()
                .filter(|k| k.kind != Kind::Cooldown)
                .cloned()
                .collect(),
            Backend::V0_2(_) => keys.to_vec(),
        };
        let answered: Vec<Option<Document>> = match on_store!(self, |s| {
            let wit_keys: Vec<_> = asked.iter().cloned().map(Into::into).collect();
            optional_answers(s.call_read(store, handle, &wit_keys).await?)
        }) {
            Ok(answered) => answered,
            Err(error) => return Ok(Err(error)),
        };
        if asked.len() == keys.len() || answered.len() != asked.len() {
            // (a wrong count is the caller's to report)
            return Ok(Ok(answered));
        }
        let mut answered = answered.into_iter();
        Ok(Ok(keys
            .iter()
            .map(|key| match key.kind {
                Kind::Cooldown => None,
                _ => answered.next().flatten(),
            })
            .collect()))
    }

    pub async fn pull(
        &self,
        store: &mut Store<HostState>,
        handle: ResourceAny,
        cursor: Option<&str>,
    ) -> CallResult<Snapshot> {
        Ok(on_store!(self, |s| answer(
            s.call_pull(store, handle, cursor).await?
        )))
    }

    pub async fn apply(
        &self,
        store: &mut Store<HostState>,
        handle: ResourceAny,
        changes: Vec<Change>,
        message: &str,
    ) -> CallResult<Vec<Option<Entry>>> {
        if matches!(self, Backend::V0_1(_))
            && changes.iter().any(|c| c.key().kind == Kind::Cooldown)
        {
            return Ok(Err(BackendError::Invalid(
                "a plugin built against contract 0.1.0 cannot store cooldown state".into(),
            )));
        }
        Ok(on_store!(self, |s| {
            let wit_changes: Vec<_> = changes.iter().cloned().map(Into::into).collect();
            optional_answers(s.call_apply(store, handle, &wit_changes, message).await?)
        }))
    }

    pub async fn wait_for_change(
        &self,
        store: &mut Store<HostState>,
        handle: ResourceAny,
        timeout_ms: u32,
    ) -> CallResult<bool> {
        Ok(on_store!(self, |s| answer(
            s.call_wait_for_change(store, handle, timeout_ms).await?
        )))
    }
}

/// The conversions between the host's model and one version's types, the
/// same for every version but `kind`.
macro_rules! conversions {
    ($wit:path, kind_to_wit: $kind_to_wit:expr, kind_from_wit: $kind_from_wit:expr) => {
        const _: () = {
            use $wit as wit;

            impl From<wit::Key> for Key {
                fn from(key: wit::Key) -> Self {
                    let kind_from_wit: fn(wit::Kind) -> Kind = $kind_from_wit;
                    Key {
                        kind: kind_from_wit(key.kind),
                        id: key.id,
                    }
                }
            }

            impl From<Key> for wit::Key {
                fn from(key: Key) -> Self {
                    let kind_to_wit: fn(Kind) -> wit::Kind = $kind_to_wit;
                    wit::Key {
                        kind: kind_to_wit(key.kind),
                        id: key.id,
                    }
                }
            }

            impl From<wit::Entry> for Entry {
                fn from(entry: wit::Entry) -> Self {
                    Entry {
                        key: entry.key.into(),
                        version: entry.version,
                        size: entry.size,
                        modified_ms: entry.modified_ms,
                    }
                }
            }

            impl From<wit::Document> for Document {
                fn from(document: wit::Document) -> Self {
                    Document {
                        entry: document.entry.into(),
                        content: document.content,
                    }
                }
            }

            impl From<Precondition> for wit::Precondition {
                fn from(precondition: Precondition) -> Self {
                    match precondition {
                        Precondition::Any => wit::Precondition::Any,
                        Precondition::Absent => wit::Precondition::Absent,
                        Precondition::Matches(version) => wit::Precondition::Matches(version),
                    }
                }
            }

            impl From<Change> for wit::Change {
                fn from(change: Change) -> Self {
                    match change {
                        Change::Put {
                            key,
                            content,
                            precondition,
                        } => wit::Change::Put(wit::Put {
                            key: key.into(),
                            content,
                            precondition: precondition.into(),
                        }),
                        Change::Remove { key, precondition } => wit::Change::Remove(wit::Remove {
                            key: key.into(),
                            precondition: precondition.into(),
                        }),
                    }
                }
            }

            impl From<wit::Features> for Features {
                fn from(flags: wit::Features) -> Self {
                    Features {
                        atomic_batch: flags.contains(wit::Features::ATOMIC_BATCH),
                        conditional_write: flags.contains(wit::Features::CONDITIONAL_WRITE),
                        history: flags.contains(wit::Features::HISTORY),
                        watch: flags.contains(wit::Features::WATCH),
                        incremental_pull: flags.contains(wit::Features::INCREMENTAL_PULL),
                    }
                }
            }

            impl From<wit::Info> for Info {
                fn from(info: wit::Info) -> Self {
                    Info {
                        name: info.name,
                        version: info.version,
                        features: info.features.into(),
                    }
                }
            }

            impl From<wit::Snapshot> for Snapshot {
                fn from(snapshot: wit::Snapshot) -> Self {
                    Snapshot {
                        documents: snapshot.documents.into_iter().map(Into::into).collect(),
                        removed: snapshot.removed.into_iter().map(Into::into).collect(),
                        cursor: snapshot.cursor,
                        complete: snapshot.complete,
                    }
                }
            }

            impl From<wit::Error> for BackendError {
                fn from(error: wit::Error) -> Self {
                    match error {
                        wit::Error::NotFound(key) => BackendError::NotFound(key.into()),
                        wit::Error::Conflict(key) => BackendError::Conflict(key.into()),
                        wit::Error::Unavailable(m) => BackendError::Unavailable(m),
                        wit::Error::Denied(m) => BackendError::Denied(m),
                        wit::Error::Invalid(m) => BackendError::Invalid(m),
                        wit::Error::Internal(m) => BackendError::Internal(m),
                    }
                }
            }
        };
    };
}

conversions!(
    v0_1_0::storehost::plugin::types,
    kind_to_wit: |kind| match kind {
        Kind::Config => v0_1_0::storehost::plugin::types::Kind::Config,
        Kind::Auth => v0_1_0::storehost::plugin::types::Kind::Auth,
        Kind::Meta => v0_1_0::storehost::plugin::types::Kind::Meta,
        Kind::Cooldown => unreachable!("Backend::read and ::apply keep cooldown keys from 0.1.0"),
    },
    kind_from_wit: |kind| match kind {
        v0_1_0::storehost::plugin::types::Kind::Config => Kind::Config,
        v0_1_0::storehost::plugin::types::Kind::Auth => Kind::Auth,
        v0_1_0::storehost::plugin::types::Kind::Meta => Kind::Meta,
    }
);

conversions!(
    v0_2_0::storehost::plugin0_2_0::types,
    kind_to_wit: |kind| match kind {
        Kind::Config => v0_2_0::storehost::plugin0_2_0::types::Kind::Config,
        Kind::Auth => v0_2_0::storehost::plugin0_2_0::types::Kind::Auth,
        Kind::Meta => v0_2_0::storehost::plugin0_2_0::types::Kind::Meta,
        Kind::Cooldown => v0_2_0::storehost::plugin0_2_0::types::Kind::Cooldown,
    },
    kind_from_wit: |kind| match kind {
        v0_2_0::storehost::plugin0_2_0::types::Kind::Config => Kind::Config,
        v0_2_0::storehost::plugin0_2_0::types::Kind::Auth => Kind::Auth,
        v0_2_0::storehost::plugin0_2_0::types::Kind::Meta => Kind::Meta,
        v0_2_0::storehost::plugin0_2_0::types::Kind::Cooldown => Kind::Cooldown,
    }
);
