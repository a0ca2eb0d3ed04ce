//! Deciding and acting on documents: the decision function's verdicts
//! carried out against the workspace (guarded swaps, the trash, conflict
//! copies) and the ledger, a chunk of documents per transaction.

use super::decide::{Action, Local, Queued, Remote as RemoteState, decide};
use super::engine::{MAX_DOCUMENT_BYTES, Mirror};
use super::hash::doc_hash;
use super::ledger::{Base, LedgerError, LedgerTx, Op};
use super::paths::path_key;
use super::scan::DeletionGuard;
use super::workspace::{Swap, normalize_config};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::{Document, Key, Kind};

/// Documents decided in one ledger transaction.
const SETTLE_CHUNK: usize = 512;

/// How [`Mirror::settle`] treats what it finds.
pub(crate) struct Policy<'a> {
    /// Decides whether a local disappearance may become a remote delete.
    pub guard: &'a DeletionGuard,
    pub durability: Durability,
}

/// What one document is settled with.
struct Context<'a> {
    policy: &'a Policy<'a>,
    /// False when the document has no outbox entry (spares a query).
    maybe_queued: bool,
}

/// What settling a set of documents did.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub pulled: usize,
    pub deleted_locally: usize,
    pub queued_puts: usize,
    pub queued_removes: usize,
    pub conflicts: Vec<String>,
    /// Disappearances the guard refused: restore them from the remote.
    pub restore: Vec<Key>,
}

impl Mirror {
    /// Decides and acts on each document, in chunks of one transaction
    /// each; a document whose file operation fails is reported and the
    /// rest go on.
    pub(crate) fn settle(
        &self,
        items: Vec<Item>,
        policy: &Policy<'_>,
    ) -> Result<Settled, StorehostError> {
        let mut settled = Settled::default();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<_> = items.by_ref().take(SETTLE_CHUNK).collect();
            let mut ledger = self.ledger();
            let queued = ledger.pending_paths()?;
            ledger.write(|tx| {
                for (key, remote, content) in &chunk {
                    let context = Context {
                        policy,
                        maybe_queued: queued.contains(&path_key(key)),
                    };
                    match self.settle_one(
                        tx,
                        key,
                        remote,
                        content.as_deref(),
                        &context,
                        &mut settled,
                    ) {
                        Ok(()) => {}
                        Err(StorehostError::Ledger(e)) => return Err(e),
                        Err(e) => tracing::error!(%key, "cannot bring this document in step: {e}"),
                    }
                }
                if policy.durability == Durability::Batched {
                    // The files must be on disk before the bases that
                    // describe them.
                    self.workspace
                        .sync()
                        .map_err(|e| LedgerError::Workspace(Box::new(e)))?;
                }
                Ok(())
            })?;
        }
        Ok(settled)
    }

    fn settle_one(
        &self,
        tx: &LedgerTx<'_>,
        key: &Key,
        remote: &RemoteState,
        content: Option<&[u8]>,
        context: &Context<'_>,
        settled: &mut Settled,
    ) -> Result<(), StorehostError> {
        let (local, local_content) = self.local_now(key)?;
        // Agreement can leave a newer local change to queue: decide again.
        for _ in 0..2 {
            let agreed = self.settle_step(
                tx,
                key,
                remote,
                content,
                (&local, &local_content),
                context,
                settled,
            )?;
            if !agreed {
                break;
            }
        }
        Ok(())
    }

    /// One decision and its action; true when it was an agreement.
    #[allow(clippy::too_many_arguments)]
    fn settle_step(
        &self,
        tx: &LedgerTx<'_>,
        key: &Key,
        remote: &RemoteState,
        content: Option<&[u8]>,
        (local, local_content): (&Local, &Option<Vec<u8>>),
        context: &Context<'_>,
        settled: &mut Settled,
    ) -> Result<bool, StorehostError> {
        let policy = context.policy;
        let local_content = local_content.clone();
        let base = tx.base(key);
        let pending = match context.maybe_queued {
            true => tx.pending_for(key)?,
            false => Vec::new(),
        };
        let queued: Vec<Queued> = pending
            .iter()
            .map(|p| Queued {
                seq: p.seq,
                hash: p.hash.clone(),
            })
            .collect();
        let action = decide(base.as_ref(), &queued, local, remote);
        if action != Action::Nothing {
            tracing::debug!(%key, ?action, "decided");
        }
        match action {
            Action::Nothing => {}
            Action::Agree {
                base,
                settled: through,
            } => {
                tx.set_base(key, base.as_ref())?;
                if let Some(seq) = through {
                    tx.remove_pending_through(key, seq)?;
                }
                return Ok(true);
            }
            Action::Push => {
                let content = local_content.expect("a present document has content");
                tx.enqueue(key, &Op::Put(content))?;
                settled.queued_puts += 1;
            }
            Action::PushRemove if policy.guard.blocks(key) => settled.restore.push(key.clone()),
            Action::PushRemove => {
                tx.enqueue(key, &Op::Remove)?;
                settled.queued_removes += 1;
            }
            Action::Resurrect { enqueue } => {
                tracing::warn!(%key, "deleted on the backend but changed here; the local version is kept and pushed again");
                tx.set_base(key, None)?;
                if enqueue {
                    let content = local_content.expect("a present document has content");
                    tx.enqueue(key, &Op::Put(content))?;
                    settled.queued_puts += 1;
                }
            }
            Action::Pull {
                keep_local,
                drop_queued,
            } => {
                let expected = match local {
                    Local::Present(hash) => Some(hash.as_str()),
                    _ => None,
                };
                let swap = match (remote, content) {
                    (RemoteState::Present { .. }, Some(content)) => {
                        self.workspace
                            .replace_if(key, content, expected, policy.durability)?
                    }
                    (_, _) => match expected {
                        Some(hash) => self.workspace.remove_if(key, hash)?,
                        None => Swap::Done { previous: None },
                    },
                };
                let Swap::Done { previous } = swap else {
                    tracing::info!(%key, "the file changed while it was being brought in step; the local change is kept and goes out next");
                    return Ok(false);
                };
                let reason = match (keep_local, remote) {
                    (true, _) => "conflict: the backend's version won",
                    (false, RemoteState::Absent) => "deleted on the backend",
                    (false, _) => "replaced by the backend's version",
                };
                if let Some(previous) = previous {
                    tx.add_trash(&path_key(key), &previous.file, reason, previous.size)?;
                }
                if keep_local && let Some(local) = &local_content {
                    let copy = self.workspace.keep_conflict_copy(key, local)?;
                    tracing::warn!(%key, kept = %copy, "conflict: both sides changed; the backend's version won, the local one is kept beside it");
                    tx.add_conflict(&copy)?;
                    settled.conflicts.push(copy);
                }
                let new_base = match remote {
                    RemoteState::Present { version, hash } => Some(Base {
                        version: version.clone(),
                        hash: hash.clone(),
                    }),
                    _ => None,
                };
                tx.set_base(key, new_base.as_ref())?;
                if drop_queued && let Some(last) = pending.last() {
                    tx.remove_pending_through(key, last.seq)?;
                }
                match new_base {
                    Some(_) => settled.pulled += 1,
                    None => settled.deleted_locally += 1,
                }
            }
        }
        Ok(false)
    }

    /// Restores files whose disappearance the guard refused, from the
    /// backend, where the workspace still lacks them.
    pub(crate) async fn restore_from_remote(
        &self,
        keys: Vec<Key>,
    ) -> Result<usize, StorehostError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let documents = self.remote.read(&keys).await?;
        let mut restored = 0;
        let mut ledger = self.ledger();
        ledger.write(|tx| {
            for (key, state, content) in documents.into_iter().flatten().filter_map(remote_item) {
                let (RemoteState::Present { version, hash }, Some(content)) = (state, content)
                else {
                    continue;
                };
                match self
                    .workspace
                    .replace_if(&key, &content, None, Durability::Now)
                {
                    Ok(Swap::Done { .. }) => {
                        tx.set_base(&key, Some(&Base { version, hash }))?;
                        restored += 1;
                    }
                    Ok(Swap::LocalChanged) => {}
                    Err(e) => tracing::error!(%key, "cannot restore: {e}"),
                }
            }
            Ok(())
        })?;
        Ok(restored)
    }
}

/// What [`Mirror::settle`] takes: a document, the backend's state of it,
/// and its content there.
pub(crate) type Item = (Key, RemoteState, Option<Vec<u8>>);

/// A document from the backend, checked before it may touch the
/// workspace: a workspace key (no metadata, an id that stays inside
/// `auths/`), a sane size, an auth that is a JSON object, a config that is
/// YAML. A bad one is reported and skipped (None); the rest go on.
pub(crate) fn remote_item(document: Document) -> Option<Item> {
    let key = document.entry.key.clone();
    let hash = match key.kind {
        Kind::Meta => return None,
        _ if document.content.len() > MAX_DOCUMENT_BYTES => Err(format!(
            "{} bytes is over the limit of {MAX_DOCUMENT_BYTES}",
            document.content.len()
        )),
        Kind::Auth => storehost_sdk::ids::check_auth_id(&key.id)
            .map_err(|p| p.to_string())
            .and_then(|()| auth_hash(&document.content)),
        Kind::Config => normalize_config(&document.content)
            .map(|_| doc_hash(&key, &document.content))
            .map_err(|e| e.to_string()),
    };
    match hash {
        Ok(hash) => {
            let state = RemoteState::Present {
                version: document.entry.version,
                hash,
            };
            Some((key, state, Some(document.content)))
        }
        Err(problem) => {
            tracing::warn!(key = ?key.to_string(), "skipping a document from the backend: {problem}");
            None
        }
    }
}

/// An auth must be a JSON object; its hash from the one parse.
fn auth_hash(content: &[u8]) -> Result<String, String> {
    match serde_json::from_slice::<serde_json::Value>(content) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(super::hash::json_hash(&value)),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}
