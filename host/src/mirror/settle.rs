//! Deciding and acting on documents: the decision function's verdicts
//! carried out against the workspace (guarded swaps, the trash, conflict
//! copies) and the ledger, a chunk of documents per transaction.

use super::decide::{Action, Local, Queued, Remote as RemoteState, decide};
use super::engine::Mirror;
use super::late_writes::Displaced;
use super::ledger::{Base, LedgerError, LedgerTx, Op, PullIntent};
use super::paths::path_key;
use super::scan::DeletionGuard;
use super::trash::record_kept;
use super::workspace::{Swap, TrashedFile, Workspace};
use crate::error::StorehostError;
use crate::fsutil::Durability;
use crate::model::Key;
use rayon::prelude::*;
use std::collections::BTreeSet;

/// Documents decided in one ledger transaction: large enough that the
/// filesystem sync and the parallel phases are paid rarely, small enough to
/// bound a transaction.
const SETTLE_CHUNK: usize = 4096;

/// How [`Mirror::settle`] treats what it finds.
pub(crate) struct Policy<'a> {
    /// Decides whether a local disappearance may become a remote delete.
    pub guard: &'a DeletionGuard,
    pub durability: Durability,
    /// The workspace's documents as listed just before, when the caller
    /// has that list: a key not in it is taken as absent without a read.
    /// A file created since is still never overwritten (the guarded
    /// create refuses and the document is decided again).
    pub listed: Option<&'a BTreeSet<Key>>,
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
    /// Documents whose file did not parse, left as they are: see
    /// [`Mirror::look_again_at_invalid`].
    pub invalid: BTreeSet<Key>,
}

/// A document's local state and content, as [`Mirror::local_now`] reads it.
type LocalNow = (Local, Option<Vec<u8>>);

/// A document as the backend has it, being settled.
#[derive(Clone, Copy)]
struct Doc<'a> {
    key: &'a Key,
    remote: &'a RemoteState,
    content: Option<&'a [u8]>,
}

/// A decision to bring the backend's version (or its absence) into the
/// workspace: the file operation, then what the ledger records of it.
struct PlannedPull<'a> {
    doc: Doc<'a>,
    /// The hash the local file must still have (None: it must be absent).
    expected: Option<String>,
    keep_local: bool,
    /// The outbox entry through which queued changes are dropped.
    drop_through: Option<u64>,
    local_content: Option<Vec<u8>>,
}

impl PlannedPull<'_> {
    fn intent(&self) -> PullIntent {
        PullIntent {
            key: self.doc.key.clone(),
            base: remote_base(self.doc.remote),
            drop_through: self.drop_through,
        }
    }
}

/// The base a pull of the backend's state records: its version, or none
/// when the backend has no such document.
fn remote_base(remote: &RemoteState) -> Option<Base> {
    match remote {
        RemoteState::Present { version, hash } => Some(Base {
            version: version.clone(),
            hash: hash.clone(),
        }),
        _ => None,
    }
}

/// One decision's outcome.
enum Step<'a> {
    /// Nothing more to do.
    Done,
    /// Both sides agree now; decide again, a newer local change may remain.
    Agreed,
    /// A file operation to carry out, then record.
    Pull(PlannedPull<'a>),
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
        // Deletions go first, in chunks of their own: a document that became
        // a directory of documents (or the reverse) needs its old file or
        // directory gone before the new one can be written.
        let (removals, rest): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|(_, remote, _)| matches!(remote, RemoteState::Absent));
        let chunks = removals
            .chunks(SETTLE_CHUNK)
            .chain(rest.chunks(SETTLE_CHUNK));
        for chunk in chunks {
            let mut ledger = self.ledger();
            let queued = ledger.pending_paths()?;
            // The pulls' intents are committed before any file changes, so
            // a run stopped before the pulls are recorded is finished by
            // the next (see `finish_interrupted_pulls`).
            let pulls = ledger.write(|tx| {
                self.finish_interrupted_pulls(tx)?;
                let pulls = self.plan_chunk(tx, chunk, &queued, policy, &mut settled)?;
                let intents: Vec<_> = pulls.iter().map(|(pull, _)| pull.intent()).collect();
                tx.record_pull_intents(&intents)?;
                Ok(pulls)
            })?;
            if pulls.is_empty() {
                continue;
            }
            ledger.write(|tx| {
                self.carry_out_pulls(tx, pulls, policy, &mut settled)?;
                tx.clear_pull_intents()?;
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

    /// Records what a pull of an earlier run did in the workspace but not in
    /// the ledger (the run was stopped in between): where the file holds
    /// what the pull brought in, its base becomes the backend's version, as
    /// the pull would have recorded. Otherwise the file changed after the
    /// pull, or the pull never happened, and it is decided as it is. What
    /// the pull took out is in the trash, adopted at open.
    fn finish_interrupted_pulls(&self, tx: &LedgerTx<'_>) -> Result<(), LedgerError> {
        let intents = tx.pull_intents()?;
        for intent in &intents {
            let done = match (self.local_now(&intent.key), &intent.base) {
                (Ok((Local::Present(hash), _)), Some(base)) => hash == base.hash,
                (Ok((Local::Absent, _)), None) => true,
                _ => false,
            };
            if done {
                tracing::info!(key = %intent.key, "recording a pull an interrupted run had carried out in the workspace");
                tx.set_base(&intent.key, intent.base.as_ref())?;
                if let Some(seq) = intent.drop_through {
                    tx.remove_pending_through(&intent.key, seq)?;
                }
            }
        }
        if intents.is_empty() {
            return Ok(());
        }
        tx.clear_pull_intents()
    }

    /// Reads the local files of a chunk in parallel and decides each
    /// document; what needs only the ledger is done, and the pulls (file
    /// operations) are returned.
    fn plan_chunk<'a>(
        &self,
        tx: &LedgerTx<'_>,
        chunk: &'a [Item],
        queued: &BTreeSet<String>,
        policy: &'a Policy<'a>,
        settled: &mut Settled,
    ) -> Result<Vec<(PlannedPull<'a>, Context<'a>)>, LedgerError> {
        let locals: Vec<_> = chunk
            .par_iter()
            .map(|(key, _, _)| match policy.listed {
                Some(listed) if !listed.contains(key) => Ok((Local::Absent, None)),
                _ => self.local_now(key),
            })
            .collect();
        let mut pulls = Vec::new();
        for ((key, remote, content), local) in chunk.iter().zip(locals) {
            let context = Context {
                policy,
                maybe_queued: queued.contains(&path_key(key)),
            };
            let doc = Doc {
                key,
                remote,
                content: content.as_deref(),
            };
            let planned =
                local.and_then(|local| self.decide_and_plan(tx, doc, local, &context, settled));
            match planned {
                Ok(Some(pull)) => pulls.push((pull, context)),
                Ok(None) => {}
                Err(e) => report(key, e)?,
            }
        }
        Ok(pulls)
    }

    /// Carries out the file operations of planned pulls in parallel (they
    /// are most of a chunk's cost) and records them in order.
    fn carry_out_pulls(
        &self,
        tx: &LedgerTx<'_>,
        pulls: Vec<(PlannedPull<'_>, Context<'_>)>,
        policy: &Policy<'_>,
        settled: &mut Settled,
    ) -> Result<(), LedgerError> {
        let workspace = self.workspace.batch();
        let swaps: Vec<_> = pulls
            .par_iter()
            .map(|(pull, _)| self.pull_file(&workspace, pull, policy.durability))
            .collect();
        #[cfg(test)]
        if STOP_BEFORE_RECORDING_PULLS.get() {
            return Err(stopped_by_test());
        }
        for ((pull, context), swap) in pulls.into_iter().zip(swaps) {
            let key = pull.doc.key;
            let result = swap.and_then(|swap| match swap {
                Swap::Done { previous } => self.record_pull(tx, pull, previous, settled),
                // The file changed after it was read: decide again on what
                // it holds now, this time one by one.
                Swap::LocalChanged { kept } => {
                    record_kept(tx, key, kept)?;
                    let local = self.local_now(key)?;
                    self.settle_serially(tx, pull, local, &context, settled)
                }
            });
            if let Err(e) = result {
                report(key, e)?;
            }
        }
        Ok(())
    }

    /// Decides (again after an agreement) and does what needs no file
    /// operation; returns the pull still to carry out, if any.
    fn decide_and_plan<'a>(
        &self,
        tx: &LedgerTx<'_>,
        doc: Doc<'a>,
        (local, local_content): LocalNow,
        context: &Context<'_>,
        settled: &mut Settled,
    ) -> Result<Option<PlannedPull<'a>>, StorehostError> {
        for _ in 0..2 {
            let step = self.settle_step(tx, doc, (&local, &local_content), context, settled)?;
            match step {
                Step::Agreed => continue,
                Step::Done => break,
                Step::Pull(pull) => return Ok(Some(pull)),
            }
        }
        Ok(None)
    }

    /// Settles a document whose file changed under a planned pull: each
    /// pull carried out at once, a few times at most.
    fn settle_serially(
        &self,
        tx: &LedgerTx<'_>,
        pull: PlannedPull<'_>,
        mut local: LocalNow,
        context: &Context<'_>,
        settled: &mut Settled,
    ) -> Result<(), StorehostError> {
        let (doc, key) = (pull.doc, pull.doc.key);
        for _ in 0..3 {
            let Some(pull) = self.decide_and_plan(tx, doc, local, context, settled)? else {
                return Ok(());
            };
            match self.pull_file(&self.workspace, &pull, context.policy.durability)? {
                Swap::Done { previous } => return self.record_pull(tx, pull, previous, settled),
                Swap::LocalChanged { kept } => {
                    record_kept(tx, key, kept)?;
                    local = self.local_now(key)?;
                }
            }
        }
        tracing::info!(%key, "the file keeps changing while it is brought in step; the local change is kept and goes out next");
        Ok(())
    }

    /// One decision; what needs only the ledger is done here.
    fn settle_step<'a>(
        &self,
        tx: &LedgerTx<'_>,
        doc: Doc<'a>,
        (local, local_content): (&Local, &Option<Vec<u8>>),
        context: &Context<'_>,
        settled: &mut Settled,
    ) -> Result<Step<'a>, StorehostError> {
        let (policy, key, remote) = (context.policy, doc.key, doc.remote);
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
        if *local == Local::Invalid {
            settled.invalid.insert(key.clone());
        }
        let action = decide(base.as_ref(), &queued, local, remote);
        if action != Action::Nothing {
            tracing::debug!(%key, ?action, "decided");
        }
        let present_content = || {
            local_content
                .clone()
                .expect("a present document has content")
        };
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
                return Ok(Step::Agreed);
            }
            Action::Push => {
                tx.enqueue(key, &Op::Put(present_content()))?;
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
                    tx.enqueue(key, &Op::Put(present_content()))?;
                    settled.queued_puts += 1;
                }
            }
            Action::Pull {
                keep_local,
                drop_queued,
            } => {
                return Ok(Step::Pull(PlannedPull {
                    doc,
                    expected: match local {
                        Local::Present(hash) => Some(hash.clone()),
                        _ => None,
                    },
                    keep_local,
                    drop_through: pending.last().map(|p| p.seq).filter(|_| drop_queued),
                    local_content: local_content.clone(),
                }));
            }
        }
        Ok(Step::Done)
    }

    /// A pull's file operation: the guarded replace or removal.
    fn pull_file(
        &self,
        workspace: &Workspace,
        pull: &PlannedPull<'_>,
        durability: Durability,
    ) -> Result<Swap, StorehostError> {
        let expected = pull.expected.as_deref();
        let swap = match (pull.doc.remote, pull.doc.content) {
            (RemoteState::Present { .. }, Some(content)) => {
                workspace.replace_if(pull.doc.key, content, expected, durability)?
            }
            (_, _) => match expected {
                Some(hash) => workspace.remove_if(pull.doc.key, hash)?,
                None => Swap::Done { previous: None },
            },
        };
        Ok(swap)
    }

    /// What the ledger keeps of a pull carried out: the trash entry, the
    /// conflict copy, the new base, the queued changes it settled.
    fn record_pull(
        &self,
        tx: &LedgerTx<'_>,
        pull: PlannedPull<'_>,
        previous: Option<TrashedFile>,
        settled: &mut Settled,
    ) -> Result<(), StorehostError> {
        let key = pull.doc.key;
        let reason = match (pull.keep_local, pull.doc.remote) {
            (true, _) => "conflict: the backend's version won",
            (false, RemoteState::Absent) => "deleted on the backend",
            (false, _) => "replaced by the backend's version",
        };
        if let Some(previous) = previous {
            tx.add_trash(&path_key(key), &previous.file, reason, previous.size)?;
            if let Some(taken) = &pull.expected {
                let displaced = Displaced {
                    key: key.clone(),
                    file: previous.file,
                    taken: taken.clone(),
                    deleted: matches!(pull.doc.remote, RemoteState::Absent),
                };
                self.late_writes.watch(tx, displaced)?;
            }
        }
        if pull.keep_local
            && let Some(local) = &pull.local_content
        {
            let copy = self.workspace.keep_conflict_copy(key, local)?;
            tracing::warn!(%key, kept = %copy, "conflict: both sides changed; the backend's version won, the local one is kept beside it");
            tx.add_conflict(&copy)?;
            settled.conflicts.push(copy);
        }
        let new_base = remote_base(pull.doc.remote);
        tx.set_base(key, new_base.as_ref())?;
        if let Some(seq) = pull.drop_through {
            tx.remove_pending_through(key, seq)?;
        }
        match new_base {
            Some(_) => settled.pulled += 1,
            None => settled.deleted_locally += 1,
        }
        Ok(())
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
        let checked = self.intake(documents.into_iter().flatten().collect())?;
        let mut restored = 0;
        let mut ledger = self.ledger();
        let intents: Vec<_> = checked
            .items
            .iter()
            .filter(|(_, state, _)| matches!(state, RemoteState::Present { .. }))
            .map(|(key, state, _)| PullIntent {
                key: key.clone(),
                base: remote_base(state),
                drop_through: None,
            })
            .collect();
        ledger.write(|tx| tx.record_pull_intents(&intents))?;
        ledger.write(|tx| {
            for (key, state, content) in checked.items {
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
                    Ok(Swap::LocalChanged { kept }) => record_kept(tx, &key, kept)?,
                    Err(e) => tracing::error!(%key, "cannot restore: {e}"),
                }
            }
            tx.clear_pull_intents()
        })?;
        Ok(restored)
    }
}

#[cfg(test)]
thread_local! {
    /// Makes the next pulls stop between their file operations and their
    /// ledger step, as a killed run does (the transaction rolls back).
    pub(crate) static STOP_BEFORE_RECORDING_PULLS: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn stopped_by_test() -> LedgerError {
    LedgerError::Workspace(Box::new(super::workspace::WorkspaceError::Io {
        action: "record the pulls of",
        path: "the workspace".into(),
        source: std::io::Error::other("the run was stopped here by a test"),
    }))
}

/// A document that cannot be brought in step is reported and the rest go
/// on; a ledger failure ends the transaction.
fn report(key: &Key, error: StorehostError) -> Result<(), LedgerError> {
    match error {
        StorehostError::Ledger(e) => Err(e),
        e => {
            tracing::error!(%key, "cannot bring this document in step: {e}");
            Ok(())
        }
    }
}

/// What [`Mirror::settle`] takes: a document, the backend's state of it,
/// and its content there.
pub(crate) type Item = (Key, RemoteState, Option<Vec<u8>>);
