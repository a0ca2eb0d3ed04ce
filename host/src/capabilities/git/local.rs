//! The host-owned repository: a bare cache of one remote branch.
//!
//! `refs/storehost/head` is the last head fetched or pushed, which the next
//! fetch reports as `previous`: a plugin compares the two to notice a
//! rewritten branch. When the branch is gone from the remote, it stays, so
//! the branch can be restored from it.

use super::errors::{self, is_corruption};
use super::network::{Advertised, RemoteSpec};
use crate::fsutil::create_private_dir;
use crate::runtime::bindings::storehost::plugin::git::{
    Committed, Fetched, FileChange, PushMode, TreeEntry,
};
use crate::runtime::bindings::wit_types::HostError;
use git2::build::TreeUpdateBuilder;
use git2::{AutotagOption, Direction, FetchOptions, FileMode, ObjectType, Oid, PushOptions};
use git2::{Repository, Signature, TreeWalkMode, TreeWalkResult};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

const HEAD_REF: &str = "refs/storehost/head";
/// Points at the commit being pushed; libgit2 pushes refs, not commits.
const PUSH_REF: &str = "refs/storehost/push";
const BRANCH_CONFIG: &str = "storehost.branch";
const AUTHOR: (&str, &str) = ("storehost", "storehost@localhost");

/// Every commit leaves loose objects and every fetch a pack; past these the
/// cache is fetched again from scratch (libgit2 has no `gc`), which packs
/// everything into one.
#[derive(Debug, Clone, Copy)]
struct CacheLimits {
    max_loose_objects: usize,
    max_packs: usize,
    /// Commits between two looks at the cache's size.
    commits_per_check: u32,
}

const CACHE_LIMITS: CacheLimits = CacheLimits {
    max_loose_objects: 5_000,
    max_packs: 64,
    commits_per_check: 200,
};

pub struct LocalRepo {
    dir: PathBuf,
    repo: Repository,
    remote: RemoteSpec,
    /// The branch followed, once known: pinned, or resolved by a fetch.
    branch: Option<String>,
    commits_since_size_check: u32,
    limits: CacheLimits,
    /// Held while this cache is in use: refs and the push ref are not
    /// shared with another instance of the plugin on the same grant.
    _lock: std::fs::File,
}

impl LocalRepo {
    /// Opens the cache for this remote under `git_dir`, or makes a new one
    /// when it is missing or damaged. No network.
    pub fn open(git_dir: &Path, remote: RemoteSpec) -> Result<LocalRepo, HostError> {
        create_private_dir(git_dir).map_err(|e| {
            HostError::Internal(format!("cannot create {}: {e}", git_dir.display()))
        })?;
        let (dir, lock) = claim_cache(git_dir, &cache_name(&remote))?;
        remove_stale_locks(&dir);
        let repo = match open_verified(&dir) {
            Ok(repo) => repo,
            Err(e) => {
                if dir.exists() {
                    tracing::warn!(dir = %dir.display(), "the local git repository is damaged ({}); fetching it again from the remote", e.message());
                }
                fresh(&dir)?
            }
        };
        let branch = remote
            .pinned_branch
            .clone()
            .or_else(|| repo.config().ok()?.get_string(BRANCH_CONFIG).ok());
        Ok(LocalRepo {
            dir,
            repo,
            remote,
            branch,
            // Look at the size at the first fetch.
            commits_since_size_check: CACHE_LIMITS.commits_per_check,
            limits: CACHE_LIMITS,
            _lock: lock,
        })
    }

    pub fn fetch(&mut self) -> Result<Fetched, HostError> {
        self.compact_if_grown()?;
        match self.fetch_once() {
            Err(e) if is_corruption(&e) => {
                self.recover(&e)?;
                self.fetch_once()
                    .map_err(|e| errors::network(e, &self.remote.url, &self.dir))
            }
            other => other.map_err(|e| errors::network(e, &self.remote.url, &self.dir)),
        }
    }

    fn fetch_once(&mut self) -> Result<Fetched, git2::Error> {
        let previous = self.head_ref();
        let deadline = RemoteSpec::deadline();
        let mut remote = self.repo.remote_anonymous(&self.remote.url)?;
        let mut connection = remote.connect_auth(
            Direction::Fetch,
            Some(self.remote.callbacks(deadline)),
            None,
        )?;
        let advertised = Advertised::read(connection.list()?);
        let branch = match &self.remote.pinned_branch {
            Some(pinned) => pinned.clone(),
            None => advertised.follow(self.branch.as_deref()),
        };
        let head = advertised.head_of(&branch);
        if let Some(head) = head
            && self.repo.find_commit(head).is_err()
        {
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(self.remote.callbacks(deadline))
                .download_tags(AutotagOption::None)
                .update_fetchhead(false);
            connection
                .remote()
                .download(&[format!("refs/heads/{branch}")], Some(&mut options))?;
        }
        drop(connection);
        drop(remote);
        self.follow(branch);
        if let Some(head) = head {
            self.set_head_ref(head)?;
        }
        Ok(Fetched {
            head: head.map(|oid| oid.to_string()),
            previous: previous.map(|oid| oid.to_string()),
        })
    }

    pub fn tree(&mut self, commit: &str) -> Result<Vec<TreeEntry>, HostError> {
        let commit = parse_oid(commit)?;
        self.with_recovery(|repo| list_tree(repo, commit))
    }

    pub fn read_many(&mut self, blobs: &[String]) -> Result<Vec<Vec<u8>>, HostError> {
        let oids = blobs
            .iter()
            .map(|b| parse_oid(b))
            .collect::<Result<Vec<_>, _>>()?;
        self.with_recovery(|repo| {
            oids.iter()
                .map(|oid| Ok(repo.find_blob(*oid)?.content().to_vec()))
                .collect()
        })
    }

    pub fn is_ancestor(&mut self, ancestor: &str, commit: &str) -> Result<bool, HostError> {
        let (ancestor, commit) = (parse_oid(ancestor)?, parse_oid(commit)?);
        self.with_recovery(|repo| {
            repo.find_commit(commit)?;
            repo.find_commit(ancestor)?;
            Ok(ancestor == commit || repo.graph_descendant_of(commit, ancestor)?)
        })
    }

    pub fn commit(
        &mut self,
        parent: Option<&str>,
        changes: &[FileChange],
        message: &str,
        squash: bool,
    ) -> Result<Committed, HostError> {
        let parent = parent.map(parse_oid).transpose()?;
        for change in changes {
            let (FileChange::Write((path, _)) | FileChange::Remove(path)) = change;
            check_path(path)?;
        }
        self.commits_since_size_check += 1;
        self.with_recovery(|repo| make_commit(repo, parent, changes, message, squash))?
            .map_err(HostError::Invalid)
    }

    /// Starts the cache afresh when loose objects or packs piled up. (The
    /// head seen before goes with it: a rewrite made exactly then is not
    /// noticed.)
    fn compact_if_grown(&mut self) -> Result<(), HostError> {
        if self.commits_since_size_check < self.limits.commits_per_check {
            return Ok(());
        }
        self.commits_since_size_check = 0;
        let (loose, packs) = object_files(&self.dir.join("objects"));
        if loose <= self.limits.max_loose_objects && packs <= self.limits.max_packs {
            return Ok(());
        }
        tracing::info!(dir = %self.dir.display(), loose, packs, "compacting the local git repository: fetching it again");
        self.start_afresh()
    }

    pub fn push(&mut self, commit: &str, mode: &PushMode) -> Result<(), HostError> {
        let commit = parse_oid(commit)?;
        let lease = match mode {
            PushMode::FastForward => None,
            PushMode::Lease(oid) => Some(parse_oid(oid)?),
        };
        let Some(branch) = self.branch.clone() else {
            return Err(HostError::Invalid("fetch before the first push".into()));
        };
        self.with_recovery(|repo| repo.find_commit(commit).map(drop))?;
        let outcome = self.push_once(commit, lease, &branch);
        let _ = self
            .repo
            .find_reference(PUSH_REF)
            .and_then(|mut r| r.delete());
        match outcome {
            Ok(None) => self.set_head_ref(commit).map_err(errors::local),
            Ok(Some(refusal)) => Err(HostError::Rejected(refusal)),
            Err(e) => Err(errors::network(e, &self.remote.url, &self.dir)),
        }
    }

    /// Pushes `commit` to `branch`; `Ok(Some(why))` when the remote head
    /// did not allow it (not a fast-forward, lease broken, or the remote
    /// refused the update because the branch moved meanwhile).
    fn push_once(
        &self,
        commit: Oid,
        lease: Option<Oid>,
        branch: &str,
    ) -> Result<Option<String>, git2::Error> {
        self.repo
            .reference(PUSH_REF, commit, true, "storehost: push")?;
        let target = format!("refs/heads/{branch}");
        let refusal = RefCell::new(None::<String>);
        let mut callbacks = self.remote.callbacks(RemoteSpec::deadline());
        callbacks.push_negotiation(|updates| {
            for update in updates {
                if update.dst_refname().ok() != Some(target.as_str()) {
                    continue;
                }
                let current = update.src();
                let allowed = match lease {
                    Some(lease) => current == lease,
                    None => {
                        current.is_zero()
                            || current == commit
                            || self
                                .repo
                                .graph_descendant_of(commit, current)
                                .unwrap_or(false)
                    }
                };
                if !allowed {
                    *refusal.borrow_mut() = Some(match lease {
                        Some(lease) => format!(
                            "the lease on {target} no longer holds: the remote is at {current}, not {lease}"
                        ),
                        None => format!(
                            "{target} on the remote is at {current}, which {commit} does not descend from (not a fast-forward)"
                        ),
                    });
                    return Err(git2::Error::from_str("storehost: push refused"));
                }
            }
            Ok(())
        });
        callbacks.push_update_reference(|name, status| {
            if let Some(status) = status {
                *refusal.borrow_mut() =
                    Some(format!("the remote refused to update {name}: {status}"));
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        let mut remote = self.repo.remote_anonymous(&self.remote.url)?;
        let pushed = remote.push(&[format!("+{PUSH_REF}:{target}")], Some(&mut options));
        drop(options);
        match (refusal.into_inner(), pushed) {
            (Some(refusal), _) => Ok(Some(refusal)),
            (None, Ok(())) => Ok(None),
            (None, Err(e)) => Err(e),
        }
    }

    /// Runs a local operation; if the repository turns out damaged, fetches
    /// it again and retries once.
    fn with_recovery<T>(
        &mut self,
        mut op: impl FnMut(&Repository) -> Result<T, git2::Error>,
    ) -> Result<T, HostError> {
        match op(&self.repo) {
            Err(e) if is_corruption(&e) && e.code() != git2::ErrorCode::NotFound => {
                self.recover(&e)?;
                op(&self.repo).map_err(errors::local)
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound && !self.intact() => {
                self.recover(&e)?;
                op(&self.repo).map_err(errors::local)
            }
            other => other.map_err(errors::local),
        }
    }

    /// Whether everything the last known head needs is readable.
    fn intact(&self) -> bool {
        verify(&self.repo).is_ok()
    }

    /// Replaces a damaged cache with a fresh fetch. The cache holds nothing
    /// the remote lacks, so nothing is lost, and nothing left in it is ever
    /// pushed.
    fn recover(&mut self, cause: &git2::Error) -> Result<(), HostError> {
        tracing::warn!(dir = %self.dir.display(), "the local git repository is damaged ({}); fetching it again from the remote", cause.message());
        self.start_afresh()?;
        self.fetch_once()
            .map(drop)
            .map_err(|e| errors::network(e, &self.remote.url, &self.dir))
    }

    /// An empty cache in place of this one; the followed branch is kept.
    fn start_afresh(&mut self) -> Result<(), HostError> {
        self.repo = fresh(&self.dir)?;
        self.remember_branch();
        Ok(())
    }

    fn follow(&mut self, branch: String) {
        if self.branch.as_deref() != Some(branch.as_str()) {
            self.branch = Some(branch);
            self.remember_branch();
        }
    }

    /// Records the followed branch in the cache, for the next start.
    fn remember_branch(&self) {
        if let (Some(branch), Ok(mut config)) = (&self.branch, self.repo.config()) {
            let _ = config.set_str(BRANCH_CONFIG, branch);
        }
    }

    fn head_ref(&self) -> Option<Oid> {
        self.repo.refname_to_id(HEAD_REF).ok()
    }

    fn set_head_ref(&self, oid: Oid) -> Result<(), git2::Error> {
        self.repo
            .reference(HEAD_REF, oid, true, "storehost")
            .map(drop)
    }
}

/// One cache per remote URL and pinned branch, so a changed
/// `GITSTORE_GIT_URL` never reuses another remote's objects or refs.
fn cache_name(remote: &RemoteSpec) -> String {
    let mut hasher = Sha256::new();
    hasher.update(remote.url.as_bytes());
    hasher.update(b"\n");
    hasher.update(remote.pinned_branch.as_deref().unwrap_or("").as_bytes());
    hex::encode(hasher.finalize())[..16].to_string()
}

/// Most caches of one remote in use at once (instances of a plugin on one
/// grant, as the conformance kit's contention case makes).
const MAX_CACHES_PER_REMOTE: usize = 16;

/// The first cache of this remote no other instance holds, and its lock.
/// Two instances sharing one bare repository would move each other's refs
/// mid-push (a push of the other's commit reported as one's own).
fn claim_cache(git_dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File), HostError> {
    for index in 0..MAX_CACHES_PER_REMOTE {
        let stem = match index {
            0 => name.to_string(),
            n => format!("{name}-{n}"),
        };
        let lock_path = git_dir.join(format!("{stem}.lock"));
        let lock = crate::fsutil::try_lock_exclusive(&lock_path).map_err(|e| {
            HostError::Internal(format!("cannot lock {}: {e}", lock_path.display()))
        })?;
        if let Some(lock) = lock {
            return Ok((git_dir.join(format!("{stem}.git")), lock));
        }
    }
    Err(HostError::Unavailable(format!(
        "{MAX_CACHES_PER_REMOTE} instances already use this git remote's caches in {}",
        git_dir.display()
    )))
}

/// Removes the `.lock` files a run killed mid-write left in a cache just
/// claimed: libgit2 refuses to update a ref (or `packed-refs`, `config`)
/// while its lock file exists, so one left behind would fail every push
/// from then on. The claim makes the cache this instance's alone, so no
/// lock in it can be live. Objects are written under other names.
fn remove_stale_locks(dir: &Path) {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let (path, name) = (entry.path(), entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && !(current == dir && name == "objects") {
                pending.push(path);
            } else if kind.is_file() && name.to_string_lossy().ends_with(".lock") {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), "removed a lock file an interrupted run left in the git cache")
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "cannot remove a stale lock file in the git cache: {e}")
                    }
                }
            }
        }
    }
}

fn fresh(dir: &Path) -> Result<Repository, HostError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| HostError::Internal(format!("cannot remove {}: {e}", dir.display())))?;
    }
    Repository::init_bare(dir).map_err(errors::local)
}

/// Loose objects and pack files under `objects`.
fn object_files(objects: &Path) -> (usize, usize) {
    let count = |dir: &Path, keep: &dyn Fn(&str) -> bool| {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .filter(|e| keep(&e.file_name().to_string_lossy()))
                .count()
        })
    };
    let fanout = |name: &str| name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let loose = std::fs::read_dir(objects).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| fanout(&e.file_name().to_string_lossy()))
            .map(|e| count(&e.path(), &|_| true))
            .sum()
    });
    let packs = count(&objects.join("pack"), &|name| name.ends_with(".pack"));
    (loose, packs)
}

fn open_verified(dir: &Path) -> Result<Repository, git2::Error> {
    let repo = Repository::open_bare(dir)?;
    verify(&repo)?;
    Ok(repo)
}

/// Reads the header of every object the last known head needs.
fn verify(repo: &Repository) -> Result<(), git2::Error> {
    match repo.refname_to_id(HEAD_REF) {
        Ok(head) => list_tree(repo, head).map(drop),
        Err(_) => Ok(()),
    }
}

fn list_tree(repo: &Repository, commit: Oid) -> Result<Vec<TreeEntry>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    let odb = repo.odb()?;
    let mut entries = Vec::new();
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |root, entry| {
        let Ok(name) = entry.name() else {
            // A name that is not UTF-8 is no document, and a directory of
            // that name is not entered: git2 fails the whole walk on a path
            // it cannot give as a string.
            return TreeWalkResult::Skip;
        };
        // A symlink is a blob too, holding its target's path: no document.
        if entry.kind() != Some(ObjectType::Blob) || !is_regular_file(entry.filemode()) {
            return TreeWalkResult::Ok;
        }
        match odb.read_header(entry.id()) {
            Ok((size, _)) => {
                entries.push(TreeEntry {
                    path: format!("{root}{name}"),
                    blob: entry.id().to_string(),
                    size: size as u64,
                });
                TreeWalkResult::Ok
            }
            Err(e) => {
                failure = Some(e);
                TreeWalkResult::Abort
            }
        }
    })?;
    failure.map_or(Ok(entries), Err)
}

/// The commit, or why a write was refused (the inner error).
fn make_commit(
    repo: &Repository,
    parent: Option<Oid>,
    changes: &[FileChange],
    message: &str,
    squash: bool,
) -> Result<Result<Committed, String>, git2::Error> {
    let parent = parent.map(|oid| repo.find_commit(oid)).transpose()?;
    let base = match &parent {
        Some(parent) => parent.tree()?,
        None => repo.find_tree(repo.treebuilder(None)?.write()?)?,
    };
    // Removals go first, into a tree of their own: a batch may turn a
    // document into a directory of documents (or back), and libgit2 checks
    // a write's parents against the tree it starts from.
    let cleared = without_removed(repo, &base, changes)?;
    let mut update = TreeUpdateBuilder::new();
    let mut blobs = Vec::with_capacity(changes.len());
    for change in changes {
        match change {
            FileChange::Write((path, content)) => {
                if let Some(problem) = held_by_another_entry(&cleared, path)? {
                    return Ok(Err(problem));
                }
                let blob = repo.blob(content)?;
                update.upsert(path.as_str(), blob, FileMode::Blob);
                blobs.push(Some(blob.to_string()));
            }
            FileChange::Remove(_) => blobs.push(None),
        }
    }
    let tree = repo.find_tree(update.create_updated(repo, &cleared)?)?;
    if let Some(parent) = &parent
        && tree.id() == base.id()
        && !squash
    {
        // Nothing changed: no empty commit in the history.
        return Ok(Ok(Committed {
            commit: parent.id().to_string(),
            blobs,
        }));
    }
    let author = Signature::now(AUTHOR.0, AUTHOR.1)?;
    let parents: Vec<&git2::Commit<'_>> = match (&parent, squash) {
        (Some(parent), false) => vec![parent],
        _ => Vec::new(),
    };
    let commit = repo.commit(None, &author, &author, message, &tree, &parents)?;
    Ok(Ok(Committed {
        commit: commit.to_string(),
        blobs,
    }))
}

/// `base` without the documents `changes` remove. Only a document goes; a
/// link, submodule or directory of that name is another program's and
/// stays.
fn without_removed<'repo>(
    repo: &'repo Repository,
    base: &git2::Tree<'repo>,
    changes: &[FileChange],
) -> Result<git2::Tree<'repo>, git2::Error> {
    let mut update = TreeUpdateBuilder::new();
    let mut any = false;
    for change in changes {
        if let FileChange::Remove(path) = change
            && entry_mode(base, path)?.is_some_and(is_regular_file)
        {
            update.remove(path.as_str());
            any = true;
        }
    }
    match any {
        true => repo.find_tree(update.create_updated(repo, base)?),
        false => Ok(base.clone()),
    }
}

/// Only a regular file (of either mode) holds a document.
fn is_regular_file(mode: i32) -> bool {
    mode & 0o170000 == 0o100000
}

fn entry_kind(mode: i32) -> &'static str {
    match mode & 0o170000 {
        0o100000 => "file",
        0o040000 => "directory",
        0o120000 => "symlink",
        0o160000 => "submodule",
        _ => "special entry",
    }
}

fn entry_mode(tree: &git2::Tree<'_>, path: &str) -> Result<Option<i32>, git2::Error> {
    match tree.get_path(Path::new(path)) {
        Ok(entry) => Ok(Some(entry.filemode())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why writing a document at `path` would replace an entry that holds
/// none: a symlink, submodule or directory at the path, or anything but a
/// directory in place of one of its parents. Another program put it there.
fn held_by_another_entry(base: &git2::Tree<'_>, path: &str) -> Result<Option<String>, git2::Error> {
    for (end, _) in path.match_indices('/') {
        let parent = &path[..end];
        match entry_mode(base, parent)? {
            None => return Ok(None),
            Some(mode) if mode & 0o170000 == 0o040000 => continue,
            Some(mode) => {
                return Ok(Some(format!(
                    "{parent} is a {} in the repository, not a directory of documents; remove it to store {path} there",
                    entry_kind(mode)
                )));
            }
        }
    }
    Ok(entry_mode(base, path)?
        .filter(|&mode| !is_regular_file(mode))
        .map(|mode| {
            format!(
                "{path} is a {} in the repository, not a document; remove it to store this document there",
                entry_kind(mode)
            )
        }))
}

fn parse_oid(oid: &str) -> Result<Oid, HostError> {
    // libgit2 would take a prefix and pad it with zeros.
    let full = oid.len() == 40 && oid.bytes().all(|b| b.is_ascii_hexdigit());
    full.then(|| Oid::from_str(oid).ok())
        .flatten()
        .filter(|oid| !oid.is_zero())
        .ok_or_else(|| HostError::Invalid(format!("not an object id: {oid:?}")))
}

/// Paths a plugin may write: relative, no `.`/`..`/empty segment, nothing
/// under `.git`, no backslash or control character.
fn check_path(path: &str) -> Result<(), HostError> {
    let bad_segment =
        |s: &str| s.is_empty() || s == "." || s == ".." || s.eq_ignore_ascii_case(".git");
    let bad = path.is_empty()
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path.split('/').any(bad_segment);
    if bad {
        Err(HostError::Invalid(format!(
            "not a valid repository path: {path:?}"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::secrets::SecretValue;

    #[test]
    fn paths_that_escape_or_touch_git_internals_are_refused() {
        for path in [
            "auths/a.json",
            "config/config.yaml",
            ".storehost/meta/lineage",
            "a/.gitkeep",
        ] {
            assert!(check_path(path).is_ok(), "{path}");
        }
        for path in [
            "",
            "/etc/passwd",
            "../x",
            "auths/../../x",
            "auths//a",
            ".git/config",
            "a/.GIT/hooks/pre-commit",
            "auths\\a",
            "a\0b",
            "auths/",
        ] {
            assert!(
                matches!(check_path(path), Err(HostError::Invalid(_))),
                "{path:?}"
            );
        }
    }

    /// A temp dir with an empty bare repository in it, and that repository.
    fn empty_remote() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote.git");
        Repository::init_bare(&remote).unwrap();
        (dir, remote)
    }

    fn spec(url: &Path) -> RemoteSpec {
        let url = format!("file://{}", url.display());
        RemoteSpec::new(
            url,
            Some("main".into()),
            "git".into(),
            SecretValue::new("t"),
        )
    }

    #[test]
    fn a_grown_cache_is_fetched_again_into_one_pack_and_keeps_working() {
        let (dir, remote) = empty_remote();
        let mut cache = LocalRepo::open(&dir.path().join("cache"), spec(&remote)).unwrap();
        cache.limits = CacheLimits {
            max_loose_objects: 10,
            max_packs: 64,
            commits_per_check: 5,
        };
        let mut head = cache.fetch().unwrap().head;
        for i in 0..6 {
            let change = FileChange::Write((format!("auths/{i}.json"), b"{}".to_vec()));
            let committed = cache
                .commit(head.as_deref(), &[change], "c", false)
                .unwrap();
            cache
                .push(&committed.commit, &PushMode::FastForward)
                .unwrap();
            head = Some(committed.commit);
        }
        let objects = cache.dir.join("objects");
        assert!(
            object_files(&objects).0 > 10,
            "{:?}",
            object_files(&objects)
        );
        let fetched = cache.fetch().unwrap();
        assert_eq!(fetched.head, head);
        assert_eq!(object_files(&objects), (0, 1), "one pack, nothing loose");
        assert_eq!(cache.tree(head.as_deref().unwrap()).unwrap().len(), 6);
        let change = FileChange::Remove("auths/0.json".into());
        let committed = cache
            .commit(head.as_deref(), &[change], "rm", false)
            .unwrap();
        cache
            .push(&committed.commit, &PushMode::FastForward)
            .unwrap();
    }

    /// A run killed while it updated a ref leaves the ref's `.lock` file;
    /// the next run's pushes and fetches still go through.
    #[test]
    fn lock_files_a_killed_run_left_in_the_cache_do_not_block_the_next() {
        let (dir, remote) = empty_remote();
        let grant = dir.path().join("cache");
        let mut cache = LocalRepo::open(&grant, spec(&remote)).unwrap();
        cache.fetch().unwrap();
        let write = |n: u8| vec![FileChange::Write(("auths/k.json".into(), vec![b'0' + n]))];
        let first = cache.commit(None, &write(1), "1", false).unwrap().commit;
        cache.push(&first, &PushMode::FastForward).unwrap();
        let cache_dir = cache.dir.clone();
        drop(cache);
        let stale = [
            cache_dir.join("refs/storehost/push.lock"),
            cache_dir.join("refs/storehost/head.lock"),
            cache_dir.join("packed-refs.lock"),
        ];
        for lock in &stale {
            std::fs::write(lock, b"").unwrap();
        }

        let mut cache = LocalRepo::open(&grant, spec(&remote)).unwrap();
        assert_eq!(cache.dir, cache_dir, "the same cache");
        let head = cache.fetch().unwrap().head;
        assert_eq!(head.as_deref(), Some(first.as_str()));
        let second = cache
            .commit(head.as_deref(), &write(2), "2", false)
            .unwrap()
            .commit;
        cache.push(&second, &PushMode::FastForward).unwrap();
        assert_eq!(
            cache.fetch().unwrap().head.as_deref(),
            Some(second.as_str())
        );
        for lock in &stale {
            assert!(!lock.exists(), "{} is still there", lock.display());
        }
    }

    /// A lock taken in the cache while it is in use (someone's `git gc`)
    /// fails the push as the cache's fault, naming the lock, not as the
    /// remote being unreachable; it is retried.
    #[test]
    fn a_lock_held_in_the_cache_is_reported_as_a_local_failure_naming_it() {
        let (dir, remote) = empty_remote();
        let mut cache = LocalRepo::open(&dir.path().join("cache"), spec(&remote)).unwrap();
        cache.fetch().unwrap();
        let write = vec![FileChange::Write(("auths/k.json".into(), b"{}".to_vec()))];
        let commit = cache.commit(None, &write, "1", false).unwrap().commit;
        let lock = cache.dir.join("refs/storehost/push.lock");
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(&lock, b"").unwrap();
        let Err(HostError::Unavailable(said)) = cache.push(&commit, &PushMode::FastForward) else {
            panic!("the push went through a held lock");
        };
        assert!(said.contains("local git cache"), "{said}");
        assert!(said.contains(&*lock.to_string_lossy()), "{said}");
        assert!(!said.contains("unreachable"), "{said}");
        std::fs::remove_file(&lock).unwrap();
        cache.push(&commit, &PushMode::FastForward).unwrap();
    }

    #[test]
    fn two_instances_on_one_grant_get_their_own_caches_and_racing_pushes_tell_the_truth() {
        let (dir, remote) = empty_remote();
        let grant = dir.path().join("cache");
        let mut first = LocalRepo::open(&grant, spec(&remote)).unwrap();
        let mut second = LocalRepo::open(&grant, spec(&remote)).unwrap();
        assert_ne!(first.dir, second.dir, "one bare repository shared by two");
        first.fetch().unwrap();
        second.fetch().unwrap();
        let write =
            |content: &[u8]| vec![FileChange::Write(("auths/k.json".into(), content.to_vec()))];
        let ours = first.commit(None, &write(b"a"), "a", false).unwrap().commit;
        let theirs = second
            .commit(None, &write(b"b"), "b", false)
            .unwrap()
            .commit;
        first.push(&ours, &PushMode::FastForward).unwrap();
        let refused = second.push(&theirs, &PushMode::FastForward).unwrap_err();
        assert!(matches!(refused, HostError::Rejected(_)), "{refused:?}");
        assert_eq!(second.fetch().unwrap().head.as_deref(), Some(ours.as_str()));
        drop(first);
        let third = LocalRepo::open(&grant, spec(&remote)).unwrap();
        assert_eq!(
            third.dir,
            grant.join(format!("{}.git", cache_name(&spec(&remote)))),
            "a released cache is reused"
        );
    }

    #[test]
    fn a_push_that_is_not_a_fast_forward_is_rejected_and_a_broken_lease_too() {
        let (dir, remote) = empty_remote();
        let mut first = LocalRepo::open(&dir.path().join("a"), spec(&remote)).unwrap();
        let mut second = LocalRepo::open(&dir.path().join("b"), spec(&remote)).unwrap();
        assert_eq!(first.fetch().unwrap().head, None);
        let write = |name: &str| vec![FileChange::Write((name.to_string(), b"x".to_vec()))];
        let base = first.commit(None, &write("a"), "a", false).unwrap().commit;
        first.push(&base, &PushMode::FastForward).unwrap();
        assert_eq!(second.fetch().unwrap().head.as_deref(), Some(base.as_str()));
        let theirs = first
            .commit(Some(&base), &write("b"), "b", false)
            .unwrap()
            .commit;
        first.push(&theirs, &PushMode::FastForward).unwrap();

        let stale = second
            .commit(Some(&base), &write("c"), "c", false)
            .unwrap()
            .commit;
        let refused = second.push(&stale, &PushMode::FastForward).unwrap_err();
        assert!(matches!(refused, HostError::Rejected(_)), "{refused:?}");
        let squashed = second
            .commit(Some(&base), &write("c"), "c", true)
            .unwrap()
            .commit;
        let refused = second
            .push(&squashed, &PushMode::Lease(base.clone()))
            .unwrap_err();
        assert!(matches!(refused, HostError::Rejected(_)), "{refused:?}");
        assert_eq!(
            second.fetch().unwrap().head.as_deref(),
            Some(theirs.as_str())
        );
        let squashed = second
            .commit(Some(&theirs), &write("c"), "c", true)
            .unwrap()
            .commit;
        second.push(&squashed, &PushMode::Lease(theirs)).unwrap();
        let remote = Repository::open_bare(&remote).unwrap();
        assert_eq!(
            remote.refname_to_id("refs/heads/main").unwrap().to_string(),
            squashed
        );
    }

    /// A commit as another program would make it, straight into the cache.
    fn commit_theirs(repo: &Repository, entries: &[(&str, &[u8], FileMode)]) -> String {
        let mut update = TreeUpdateBuilder::new();
        for (path, content, mode) in entries {
            let oid = match mode {
                FileMode::Commit => {
                    Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap()
                }
                _ => repo.blob(content).unwrap(),
            };
            update.upsert(*path, oid, *mode);
        }
        let empty = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let tree = repo
            .find_tree(update.create_updated(repo, &empty).unwrap())
            .unwrap();
        let author = Signature::now("other", "other@example.com").unwrap();
        repo.commit(None, &author, &author, "theirs", &tree, &[])
            .unwrap()
            .to_string()
    }

    fn listed(cache: &mut LocalRepo, commit: &str) -> Vec<String> {
        cache
            .tree(commit)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn links_submodules_and_directories_are_no_documents_and_stay_as_they_are() {
        let (dir, remote) = empty_remote();
        let mut cache = LocalRepo::open(&dir.path().join("cache"), spec(&remote)).unwrap();
        let head = commit_theirs(
            &cache.repo,
            &[
                (
                    "config/config.yaml",
                    b"../shared/config.yaml",
                    FileMode::Link,
                ),
                ("shared/config.yaml", b"port: 1\n", FileMode::Blob),
                ("auths/linked.json", b"team/z.json", FileMode::Link),
                ("auths/team/z.json", br#"{"z":1}"#, FileMode::Blob),
                ("auths/tool.json", br#"{"t":1}"#, FileMode::BlobExecutable),
                ("auths/module.json", b"", FileMode::Commit),
            ],
        );
        assert_eq!(
            listed(&mut cache, &head),
            ["auths/team/z.json", "auths/tool.json", "shared/config.yaml"]
        );

        let write = |path: &str| FileChange::Write((path.to_string(), b"{}".to_vec()));
        for (path, held_by) in [
            ("config/config.yaml", "config/config.yaml is a symlink"),
            ("auths/linked.json", "auths/linked.json is a symlink"),
            ("auths/module.json", "auths/module.json is a submodule"),
            ("auths/team", "auths/team is a directory"),
            ("auths/team/z.json/new.json", "auths/team/z.json is a file"),
            (
                "auths/linked.json/new.json",
                "auths/linked.json is a symlink",
            ),
            (
                "auths/module.json/a/b.json",
                "auths/module.json is a submodule",
            ),
        ] {
            let refused = cache.commit(Some(&head), &[write(path)], "ours", false);
            assert!(
                matches!(&refused, Err(HostError::Invalid(m)) if m.contains(held_by)),
                "{path}: {refused:?}"
            );
        }
        let written = cache
            .commit(
                Some(&head),
                &[write("auths/tool.json"), write("auths/team/new.json")],
                "ours",
                false,
            )
            .unwrap();
        assert_eq!(
            listed(&mut cache, &written.commit),
            [
                "auths/team/new.json",
                "auths/team/z.json",
                "auths/tool.json",
                "shared/config.yaml"
            ]
        );

        let removes = [
            "config/config.yaml",
            "auths/linked.json",
            "auths/module.json",
            "auths/team",
            "auths/tool.json",
        ]
        .map(|path| FileChange::Remove(path.into()));
        let removed = cache.commit(Some(&head), &removes, "rm", false).unwrap();
        assert_eq!(
            listed(&mut cache, &removed.commit),
            ["auths/team/z.json", "shared/config.yaml"]
        );
        let tree = cache
            .repo
            .find_commit(Oid::from_str(&removed.commit).unwrap())
            .unwrap()
            .tree()
            .unwrap();
        for (path, mode) in [
            ("config/config.yaml", 0o120000),
            ("auths/linked.json", 0o120000),
            ("auths/module.json", 0o160000),
        ] {
            assert_eq!(
                tree.get_path(Path::new(path)).unwrap().filemode(),
                mode,
                "{path}"
            );
        }
    }

    #[test]
    fn one_batch_turns_a_document_into_a_directory_of_documents_and_back() {
        let (dir, remote) = empty_remote();
        let mut cache = LocalRepo::open(&dir.path().join("cache"), spec(&remote)).unwrap();
        let head = commit_theirs(
            &cache.repo,
            &[
                ("auths/a.json", br#"{"a":1}"#, FileMode::Blob),
                ("auths/team/y.json", br#"{"y":1}"#, FileMode::Blob),
                ("auths/team/z.json", br#"{"z":1}"#, FileMode::Blob),
            ],
        );
        let write = |path: &str| FileChange::Write((path.to_string(), b"{}".to_vec()));
        let remove = |path: &str| FileChange::Remove(path.to_string());

        let into_directory = [remove("auths/a.json"), write("auths/a.json/b.json")];
        let nested = cache
            .commit(Some(&head), &into_directory, "ours", false)
            .unwrap();
        assert_eq!(
            listed(&mut cache, &nested.commit),
            [
                "auths/a.json/b.json",
                "auths/team/y.json",
                "auths/team/z.json"
            ]
        );
        assert!(nested.blobs[0].is_none() && nested.blobs[1].is_some());

        // A directory still holding another document is not replaced.
        let partly = [remove("auths/team/z.json"), write("auths/team")];
        let refused = cache.commit(Some(&nested.commit), &partly, "ours", false);
        assert!(
            matches!(&refused, Err(HostError::Invalid(m)) if m.contains("auths/team is a directory")),
            "{refused:?}"
        );

        let back = [
            write("auths/a.json"),
            remove("auths/a.json/b.json"),
            remove("auths/team/y.json"),
            remove("auths/team/z.json"),
            write("auths/team"),
        ];
        let flat = cache
            .commit(Some(&nested.commit), &back, "ours", false)
            .unwrap();
        assert_eq!(
            listed(&mut cache, &flat.commit),
            ["auths/a.json", "auths/team"]
        );
    }

    #[test]
    fn object_ids_must_be_whole() {
        assert!(parse_oid("0123456789abcdef0123456789abcdef01234567").is_ok());
        for bad in [
            "0123",
            "",
            "0000000000000000000000000000000000000000",
            "xyz4567890123456789012345678901234567890",
        ] {
            assert!(parse_oid(bad).is_err(), "{bad}");
        }
    }
}
