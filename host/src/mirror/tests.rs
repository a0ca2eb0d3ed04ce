//! The engine against an in-memory backend: the decisions as they are
//! carried out, without wasm. Real components and servers are exercised
//! by the integration tests.

use super::engine::{Mirror, MirrorOptions, Saved};
use super::hash::doc_hash;
use super::ledger::{Ledger, MetaName};
use super::remote::{Remote, RemoteFuture};
use super::workspace::{Swap, Workspace, WorkspaceError, race};
use crate::fsutil::Durability;
use crate::model::{Change, Document, Entry, Features, Key, Kind, Precondition, Snapshot};
use crate::runtime::{BackendError, PluginError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An in-memory backend with preconditions, batches that apply whole, and
/// two faults: down, and "applies the change but the reply is lost".
#[derive(Default)]
struct FakeRemote {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    documents: BTreeMap<Key, (String, Vec<u8>)>,
    next_version: u64,
    down: bool,
    lose_replies: bool,
    applies: usize,
    reads: usize,
    /// Conditional creates that a racing writer can overwrite (as on
    /// s3s-fs); the backend then says its conditional writes are not
    /// atomic.
    racy_creates: bool,
    /// What a racing writer puts over the next create, when creates are racy.
    racer: Option<Vec<u8>>,
}

fn error(call: &'static str, error: BackendError) -> PluginError {
    PluginError::Backend {
        plugin: "fake".into(),
        call,
        error,
    }
}

impl FakeRemote {
    fn set(&self, key: &Key, content: &[u8]) {
        let mut state = self.state.lock().unwrap();
        state.next_version += 1;
        let version = format!("v{}", state.next_version);
        state
            .documents
            .insert(key.clone(), (version, content.to_vec()));
    }

    fn get(&self, key: &Key) -> Option<Vec<u8>> {
        let state = self.state.lock().unwrap();
        state.documents.get(key).map(|(_, c)| c.clone())
    }

    fn all_contents(&self) -> Vec<Vec<u8>> {
        let state = self.state.lock().unwrap();
        state.documents.values().map(|(_, c)| c.clone()).collect()
    }

    fn remove(&self, key: &Key) {
        self.state.lock().unwrap().documents.remove(key);
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn document(key: &Key, (version, content): &(String, Vec<u8>)) -> Document {
        Document {
            entry: entry(key, version),
            content: content.clone(),
        }
    }

    fn apply_now(&self, changes: Vec<Change>) -> Result<Vec<Option<Entry>>, PluginError> {
        let mut state = self.state.lock().unwrap();
        if state.down {
            return Err(error("apply", BackendError::Unavailable("down".into())));
        }
        state.applies += 1;
        for change in &changes {
            let (key, precondition) = match change {
                Change::Put {
                    key, precondition, ..
                }
                | Change::Remove { key, precondition } => (key, precondition),
            };
            let current = state.documents.get(key).map(|(v, _)| v);
            let holds = match precondition {
                Precondition::Any => true,
                Precondition::Absent => current.is_none(),
                Precondition::Matches(v) => current == Some(v),
            };
            if !holds {
                return Err(error("apply", BackendError::Conflict(key.clone())));
            }
        }
        let mut entries = Vec::new();
        for change in changes {
            match change {
                Change::Put {
                    key,
                    content,
                    precondition,
                } => {
                    state.next_version += 1;
                    let version = format!("v{}", state.next_version);
                    entries.push(Some(entry(&key, &version)));
                    let raced = match precondition {
                        Precondition::Absent if state.racy_creates => state.racer.take(),
                        _ => None,
                    };
                    state
                        .documents
                        .insert(key, (version, raced.unwrap_or(content)));
                }
                Change::Remove { key, .. } => {
                    state.documents.remove(&key);
                    entries.push(None);
                }
            }
        }
        if state.lose_replies {
            return Err(error(
                "apply",
                BackendError::Unavailable("reply lost".into()),
            ));
        }
        Ok(entries)
    }
}

fn entry(key: &Key, version: &str) -> Entry {
    Entry {
        key: key.clone(),
        version: version.to_string(),
        size: 0,
        modified_ms: None,
    }
}

impl Remote for FakeRemote {
    fn name(&self) -> &str {
        "fake"
    }

    fn features(&self) -> RemoteFuture<'_, Features> {
        let atomic = !self.with(|s| s.racy_creates);
        Box::pin(async move {
            Ok(Features {
                atomic_batch: atomic,
                conditional_write: true,
                ..Features::default()
            })
        })
    }

    fn prepare(&self) -> RemoteFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn pull<'a>(&'a self, _cursor: Option<&'a str>) -> RemoteFuture<'a, Snapshot> {
        Box::pin(async move {
            let state = self.state.lock().unwrap();
            if state.down {
                return Err(error("pull", BackendError::Unavailable("down".into())));
            }
            Ok(Snapshot {
                documents: state
                    .documents
                    .iter()
                    .map(|(k, d)| FakeRemote::document(k, d))
                    .collect(),
                removed: Vec::new(),
                cursor: String::new(),
                complete: true,
            })
        })
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> RemoteFuture<'a, Vec<Option<Document>>> {
        Box::pin(async move {
            let mut state = self.state.lock().unwrap();
            state.reads += 1;
            Ok(keys
                .iter()
                .map(|k| state.documents.get(k).map(|d| FakeRemote::document(k, d)))
                .collect())
        })
    }

    fn apply<'a>(
        &'a self,
        changes: Vec<Change>,
        _message: &'a str,
    ) -> RemoteFuture<'a, Vec<Option<Entry>>> {
        Box::pin(async move { self.apply_now(changes) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    remote: Arc<FakeRemote>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            _dir: tempfile::tempdir().unwrap(),
            remote: Arc::new(FakeRemote::default()),
        }
    }

    fn workspace(&self, name: &str) -> Workspace {
        Workspace::new(self._dir.path().join(name))
    }

    async fn mirror(&self, name: &str) -> Mirror {
        let mirror = Mirror::open(
            self.remote.clone(),
            self.workspace(name),
            MirrorOptions::default(),
        )
        .unwrap();
        super::bootstrap::mirrored(&mirror, None).await.unwrap();
        mirror
    }
}

fn auth(id: &str) -> Key {
    Key::auth(id)
}

fn trash_reasons(mirror: &Mirror) -> Vec<String> {
    mirror
        .ledger()
        .trash()
        .unwrap()
        .into_iter()
        .map(|t| t.reason)
        .collect()
}

#[tokio::test]
async fn a_push_whose_reply_was_lost_is_not_a_conflict() {
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    let key = auth("a.json");
    mirror.enqueue_put(&key, br#"{"v":1}"#.to_vec()).unwrap();
    mirror.drain().await.unwrap();
    fixture.remote.with(|s| s.lose_replies = true);
    mirror.enqueue_put(&key, br#"{"v":2}"#.to_vec()).unwrap();
    assert!(mirror.drain().await.unwrap().blocked);
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"v":2}"#);
    // A newer write queued while the reply was lost.
    mirror.enqueue_put(&key, br#"{"v":3}"#.to_vec()).unwrap();
    fixture.remote.with(|s| s.lose_replies = false);
    let drained = mirror.drain().await.unwrap();
    assert_eq!(drained.resolved, 1, "the replay met its own write once");
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"v":3}"#);
    assert_eq!(mirror.outbox_len().await, 0);
    assert!(mirror.ledger().conflicts().unwrap().is_empty());
    assert_eq!(mirror.workspace.read(&key).unwrap().unwrap(), br#"{"v":3}"#);
}

#[tokio::test]
async fn two_writers_of_one_document_keep_the_loser_as_a_conflict_copy() {
    let fixture = Fixture::new();
    let (a, b) = (fixture.mirror("a").await, fixture.mirror("b").await);
    let key = auth("shared.json");
    a.enqueue_put(&key, br#"{"by":"a"}"#.to_vec()).unwrap();
    b.enqueue_put(&key, br#"{"by":"b"}"#.to_vec()).unwrap();
    a.drain().await.unwrap();
    b.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"by":"a"}"#);
    assert_eq!(b.workspace.read(&key).unwrap().unwrap(), br#"{"by":"a"}"#);
    let copies = b.ledger().conflicts().unwrap();
    assert_eq!(copies.len(), 1);
    let copy = std::fs::read(b.workspace.root().join(&copies[0])).unwrap();
    assert_eq!(copy, br#"{"by":"b"}"#);
    assert_eq!(trash_reasons(&b), ["conflict: the backend's version won"]);
}

/// `t.json` pushed as `{"v":1}`, then changed to `{"v":2}` on the backend.
async fn synced_then_changed_on_the_backend(fixture: &Fixture) -> (Mirror, Key) {
    let mirror = fixture.mirror("a").await;
    let key = auth("t.json");
    mirror.enqueue_put(&key, br#"{"v":1}"#.to_vec()).unwrap();
    mirror.drain().await.unwrap();
    fixture.remote.set(&key, br#"{"v":2}"#);
    (mirror, key)
}

#[tokio::test]
async fn remote_changes_and_deletions_go_through_the_trash_and_come_back() {
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    assert_eq!(mirror.poll().await.unwrap(), 1);
    fixture.remote.remove(&key);
    assert_eq!(mirror.poll().await.unwrap(), 1);
    assert!(mirror.workspace.read(&key).unwrap().is_none());
    let trash = mirror.ledger().trash().unwrap();
    assert_eq!(trash.len(), 2, "{trash:?}");
    assert_eq!(trash[0].reason, "replaced by the backend's version");
    assert_eq!(trash[1].reason, "deleted on the backend");
    // The first version comes back through the normal write path.
    let restored = super::trash::restore(&mirror.workspace, trash[0].id).unwrap();
    assert_eq!(restored, key);
    assert_eq!(mirror.workspace.read(&key).unwrap().unwrap(), br#"{"v":1}"#);
    assert!(mirror.note_local_write(&key).unwrap().is_some());
    mirror.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"v":1}"#);
}

/// A link planted in the trash under a listed entry's file is refused, not
/// followed: a restore never brings another file's content into the
/// workspace, and from there to the backend.
#[tokio::test]
async fn a_restore_never_reads_through_a_link_planted_in_the_trash() {
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    assert_eq!(mirror.poll().await.unwrap(), 1);
    let trash = mirror.ledger().trash().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, br#"{"stolen":1}"#).unwrap();
    let kept = mirror.workspace.trash_dir().join(&trash[0].file);
    std::fs::remove_file(&kept).unwrap();
    std::os::unix::fs::symlink(&secret, &kept).unwrap();
    let error = super::trash::restore(&mirror.workspace, trash[0].id).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert_eq!(mirror.workspace.read(&key).unwrap().unwrap(), br#"{"v":2}"#);
    assert_eq!(mirror.ledger().trash().unwrap().len(), 1);
}

/// The proxy had the file open when a pull replaced it, and writes through
/// that handle just after: its write comes back live, meets the backend's
/// change as a conflict, and is kept as a conflict copy (not only in the
/// trash, under "replaced by the backend's version").
#[tokio::test]
async fn a_proxy_write_through_a_handle_opened_before_a_pull_becomes_a_conflict_copy() {
    use std::io::{Seek, Write};
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    let path = mirror.workspace.auth_dir().join("t.json");
    let mut handle = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut pending = true;
    let _hook = race::on(&path, move |point| {
        if point == race::Point::Trashed && std::mem::take(&mut pending) {
            handle.set_len(0).unwrap();
            handle.rewind().unwrap();
            handle.write_all(br#"{"proxy":3}"#).unwrap();
        }
    });
    assert_eq!(mirror.poll().await.unwrap(), 1);
    assert_eq!(mirror.workspace.read(&key).unwrap().unwrap(), br#"{"v":2}"#);
    let copies = mirror.ledger().conflicts().unwrap();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let copy = std::fs::read(mirror.workspace.root().join(&copies[0])).unwrap();
    assert_eq!(copy, br#"{"proxy":3}"#);
}

/// The proxy's handle on `path`, opened as the file is now, and a way to
/// rewrite the file through it in place (as `O_TRUNC` does, in two steps).
fn held_handle(path: &std::path::Path) -> impl FnMut(&[u8]) + use<> {
    use std::io::{Seek, Write};
    let mut handle = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    move |content| {
        handle.set_len(0).unwrap();
        handle.rewind().unwrap();
        handle.write_all(content).unwrap();
    }
}

fn conflict_copies(mirror: &Mirror) -> Vec<Vec<u8>> {
    let copies = mirror.ledger().conflicts().unwrap();
    copies
        .iter()
        .map(|copy| std::fs::read(mirror.workspace.root().join(copy)).unwrap())
        .collect()
}

/// The proxy held the file open across a pull and writes through that
/// handle only well after the swap's own checks: its write lands in the
/// trash file. Looked at again, it is a conflict like any local change
/// meeting the backend's: the backend's version stays live, the proxy's is
/// kept as a conflict copy. A half-done write waits; a second write through
/// the same handle is kept too.
#[tokio::test]
async fn a_late_write_through_a_handle_held_across_a_pull_is_kept_as_a_conflict_copy() {
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    let mut write = held_handle(&mirror.workspace.auth_dir().join("t.json"));
    assert_eq!(mirror.poll().await.unwrap(), 1);
    assert_eq!(mirror.late_writes.len(), 1);
    assert_eq!(mirror.take_late_writes().await, 0, "nothing written yet");
    write(br#"{"v":2}"#);
    assert_eq!(
        mirror.take_late_writes().await,
        0,
        "the live content: agreement"
    );
    assert!(conflict_copies(&mirror).is_empty());

    write(br#"{"proxy":"#);
    assert_eq!(mirror.take_late_writes().await, 0, "a write under way");
    assert!(conflict_copies(&mirror).is_empty());
    write(br#"{"proxy":3}"#);
    assert_eq!(mirror.take_late_writes().await, 1);
    assert_eq!(mirror.workspace.read(&key).unwrap().unwrap(), br#"{"v":2}"#);
    assert_eq!(conflict_copies(&mirror), [br#"{"proxy":3}"#.to_vec()]);
    let trash = mirror.ledger().trash().unwrap();
    assert_eq!(trash.len(), 1, "{trash:?}");
    assert!(
        trash[0].reason.contains("conflict copy"),
        "{}",
        trash[0].reason
    );
    assert_eq!(trash[0].size, br#"{"proxy":3}"#.len() as u64);
    assert_eq!(mirror.take_late_writes().await, 0, "taken once");

    write(br#"{"proxy":4}"#);
    assert_eq!(mirror.take_late_writes().await, 1);
    let mut copies = conflict_copies(&mirror);
    copies.sort();
    assert_eq!(
        copies,
        [br#"{"proxy":3}"#.to_vec(), br#"{"proxy":4}"#.to_vec()]
    );
    // The backend never got the late writes: they were made against the
    // version it replaced.
    mirror.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"v":2}"#);
}

/// After a deletion on the backend, a late write through a held handle is a
/// local change to a deleted document: the file comes back live (at the
/// next poll) and goes out again, and the handle writes the live file again.
#[tokio::test]
async fn a_late_write_after_a_deletion_on_the_backend_comes_back_and_goes_out() {
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    assert_eq!(mirror.poll().await.unwrap(), 1);
    let mut write = held_handle(&mirror.workspace.auth_dir().join("t.json"));
    fixture.remote.remove(&key);
    assert_eq!(mirror.poll().await.unwrap(), 1);
    assert!(mirror.workspace.read(&key).unwrap().is_none());

    write(br#"{"proxy":3}"#);
    assert_eq!(mirror.poll().await.unwrap(), 0);
    assert_eq!(
        mirror.workspace.read(&key).unwrap().unwrap(),
        br#"{"proxy":3}"#
    );
    mirror.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"proxy":3}"#);
    assert!(conflict_copies(&mirror).is_empty());
    // The deletion's entry went with the file; the replacement's stays.
    assert_eq!(
        trash_reasons(&mirror),
        ["replaced by the backend's version"]
    );
    assert_eq!(mirror.late_writes.len(), 1);

    write(br#"{"proxy":4}"#);
    assert_eq!(
        mirror.workspace.read(&key).unwrap().unwrap(),
        br#"{"proxy":4}"#
    );
    assert_eq!(mirror.take_late_writes().await, 0);
}

/// A late write after a deletion meets a file the proxy created anew since:
/// which came last is unknown, so the new file stays and the late write is
/// kept beside it.
#[tokio::test]
async fn a_late_write_after_a_deletion_never_replaces_a_file_created_since() {
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    fixture.remote.remove(&key);
    let path = mirror.workspace.auth_dir().join("t.json");
    let mut write = held_handle(&path);
    assert_eq!(mirror.poll().await.unwrap(), 1);
    std::fs::write(&path, br#"{"proxy":5}"#).unwrap();
    write(br#"{"proxy":3}"#);
    assert_eq!(mirror.take_late_writes().await, 1);
    assert_eq!(
        mirror.workspace.read(&key).unwrap().unwrap(),
        br#"{"proxy":5}"#
    );
    assert_eq!(conflict_copies(&mirror), [br#"{"proxy":3}"#.to_vec()]);
}

/// A file the host took out is let go once it leaves the trash (restored,
/// expired): nothing of the proxy's can arrive there any more.
#[tokio::test]
async fn a_taken_out_file_that_left_the_trash_is_no_longer_watched() {
    let fixture = Fixture::new();
    let (mirror, _key) = synced_then_changed_on_the_backend(&fixture).await;
    assert_eq!(mirror.poll().await.unwrap(), 1);
    let trash = mirror.ledger().trash().unwrap();
    std::fs::remove_file(mirror.workspace.trash_dir().join(&trash[0].file)).unwrap();
    assert_eq!(mirror.take_late_writes().await, 0);
    assert_eq!(mirror.late_writes.len(), 0);
}

/// The watch outlives the host: a late write made while the host was
/// down (killed, restarted) is found by the next run, from the ledger.
#[tokio::test]
async fn a_late_write_made_while_the_host_was_down_is_found_after_a_restart() {
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    let mut write = held_handle(&mirror.workspace.auth_dir().join("t.json"));
    assert_eq!(mirror.poll().await.unwrap(), 1);
    drop(mirror);

    write(br#"{"proxy":3}"#);
    let mirror = fixture.mirror("a").await;
    assert_eq!(mirror.late_writes.len(), 1);
    // The first poll of the new run looks at the watched files.
    mirror.poll().await.unwrap();
    assert_eq!(mirror.workspace.read(&key).unwrap().unwrap(), br#"{"v":2}"#);
    assert_eq!(conflict_copies(&mirror), [br#"{"proxy":3}"#.to_vec()]);
    drop(mirror);

    // Taken once, across restarts too; a second write is looked for.
    let mirror = fixture.mirror("a").await;
    assert_eq!(mirror.take_late_writes().await, 0, "taken already");
    write(br#"{"proxy":4}"#);
    assert_eq!(mirror.take_late_writes().await, 1);
    assert_eq!(conflict_copies(&mirror).len(), 2);
}

/// A watch let go (its file left the trash) is gone from the ledger too: a
/// restart does not bring it back.
#[tokio::test]
async fn a_watch_let_go_stays_gone_after_a_restart() {
    let fixture = Fixture::new();
    let (mirror, key) = synced_then_changed_on_the_backend(&fixture).await;
    assert_eq!(mirror.poll().await.unwrap(), 1);
    fixture.remote.remove(&key);
    assert_eq!(mirror.poll().await.unwrap(), 1);
    assert_eq!(mirror.late_writes.len(), 2);
    let trash = mirror.ledger().trash().unwrap();
    std::fs::remove_file(mirror.workspace.trash_dir().join(&trash[0].file)).unwrap();
    assert_eq!(mirror.take_late_writes().await, 0);
    assert_eq!(mirror.late_writes.len(), 1);
    drop(mirror);

    let mirror = fixture.mirror("a").await;
    let watched = mirror.ledger().late_watches().unwrap();
    let files: Vec<_> = watched.iter().map(|(_, d)| d.file.clone()).collect();
    assert_eq!(files, [trash[1].file.clone()]);
    assert_eq!(mirror.late_writes.len(), 1);
}

/// A watch begun longer ago than the window is let go at start-up, in the
/// ledger too (its file stays in the trash).
#[tokio::test]
async fn a_watch_older_than_the_window_is_let_go_at_start_up() {
    let fixture = Fixture::new();
    let (mirror, _key) = synced_then_changed_on_the_backend(&fixture).await;
    assert_eq!(mirror.poll().await.unwrap(), 1);
    let state_dir = mirror.workspace.state_dir();
    drop(mirror);
    let eleven_minutes_ago = super::now_ms() as i64 - 11 * 60 * 1000;
    rusqlite::Connection::open(super::ledger::Ledger::file(&state_dir))
        .unwrap()
        .execute("UPDATE late_watch SET since_ms = ?1", [eleven_minutes_ago])
        .unwrap();

    let mirror = fixture.mirror("a").await;
    assert_eq!(mirror.late_writes.len(), 0);
    assert!(mirror.ledger().late_watches().unwrap().is_empty());
    assert_eq!(mirror.ledger().trash().unwrap().len(), 1);
}

/// A damaged watch row does not stop the host from starting: the watches
/// are let go (with an error logged), the trash keeps its files.
#[tokio::test]
async fn a_damaged_watch_in_the_ledger_is_let_go_and_the_host_starts() {
    let fixture = Fixture::new();
    let (mirror, _key) = synced_then_changed_on_the_backend(&fixture).await;
    assert_eq!(mirror.poll().await.unwrap(), 1);
    let state_dir = mirror.workspace.state_dir();
    drop(mirror);
    rusqlite::Connection::open(super::ledger::Ledger::file(&state_dir))
        .unwrap()
        .execute("UPDATE late_watch SET deleted = 'not a flag'", [])
        .unwrap();

    let mirror = fixture.mirror("a").await;
    assert_eq!(mirror.late_writes.len(), 0);
    assert!(mirror.ledger().late_watches().unwrap().is_empty());
    assert_eq!(mirror.ledger().trash().unwrap().len(), 1);
}

#[test]
fn conflict_copies_made_in_one_millisecond_are_all_kept() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("w");
    workspace.create().unwrap();
    let key = auth("t.json");
    let copies: Vec<String> = (0..5)
        .map(|i| {
            workspace
                .keep_conflict_copy(&key, format!("{{\"n\":{i}}}").as_bytes())
                .unwrap()
        })
        .collect();
    let unique: std::collections::BTreeSet<&String> = copies.iter().collect();
    assert_eq!(unique.len(), copies.len(), "{copies:?}");
    for (i, copy) in copies.iter().enumerate() {
        let content = std::fs::read(workspace.root().join(copy)).unwrap();
        assert_eq!(content, format!("{{\"n\":{i}}}").into_bytes());
        assert!(super::workspace::is_conflict_copy(copy), "{copy}");
    }
}

#[tokio::test]
async fn a_guarded_swap_never_clobbers_a_file_that_changed() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("w");
    workspace.create().unwrap();
    let key = auth("x.json");
    workspace.write(&key, br#"{"proxy":2}"#).unwrap();
    let stale = doc_hash(&key, br#"{"proxy":1}"#);
    let swap = workspace
        .replace_if(&key, br#"{"remote":1}"#, Some(&stale), Durability::Now)
        .unwrap();
    assert_eq!(swap, Swap::LOCAL_CHANGED);
    assert_eq!(workspace.read(&key).unwrap().unwrap(), br#"{"proxy":2}"#);
    assert_eq!(
        workspace.remove_if(&key, &stale).unwrap(),
        Swap::LOCAL_CHANGED
    );
    assert_eq!(workspace.read(&key).unwrap().unwrap(), br#"{"proxy":2}"#);
    // Expected absent, but the proxy created it.
    let swap = workspace
        .replace_if(&key, br#"{"remote":1}"#, None, Durability::Now)
        .unwrap();
    assert_eq!(swap, Swap::LOCAL_CHANGED);
    let current = doc_hash(&key, br#"{"proxy":2}"#);
    let Swap::Done {
        previous: Some(previous),
    } = workspace
        .replace_if(&key, br#"{"remote":1}"#, Some(&current), Durability::Now)
        .unwrap()
    else {
        panic!("the swap should happen");
    };
    let kept = std::fs::read(workspace.trash_dir().join(previous.file)).unwrap();
    assert_eq!(kept, br#"{"proxy":2}"#);
    // No temp file is left behind.
    let names: Vec<String> = std::fs::read_dir(workspace.auth_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["x.json"]);
}

#[tokio::test]
async fn a_symlink_in_the_workspace_is_never_written_through() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("w");
    workspace.create().unwrap();
    let outside = fixture._dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, workspace.auth_dir().join("team")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = auth("team/a.json");
    let hash = doc_hash(&key, b"{}");
    let errors = [
        workspace
            .replace_if(&key, b"{}", None, Durability::Now)
            .unwrap_err(),
        workspace
            .replace_if(&key, b"{}", Some(&hash), Durability::Now)
            .unwrap_err(),
        workspace.remove_if(&key, &hash).unwrap_err(),
        workspace.write(&key, b"{}").unwrap_err(),
        workspace.keep_conflict_copy(&key, b"{}").unwrap_err(),
        workspace.secure(&key).unwrap_err(),
        workspace.remove(&key).unwrap_err(),
    ];
    for error in errors {
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "no chmod through the link");

    // A link as the document itself is neither replaced nor read.
    let target = outside.join("target.json");
    std::fs::write(&target, b"{\"outside\":1}").unwrap();
    std::os::unix::fs::symlink(&target, workspace.auth_dir().join("b.json")).unwrap();
    let key = auth("b.json");
    for expected in [Some(hash.as_str()), None] {
        let error = workspace
            .replace_if(&key, b"{}", expected, Durability::Now)
            .unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"{\"outside\":1}");
}

#[tokio::test]
async fn a_link_or_a_fifo_placed_as_an_auth_file_is_never_read_or_pushed() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("w");
    workspace.create().unwrap();
    let secret = fixture._dir.path().join("id_ed25519.json");
    std::fs::write(&secret, br#"{"private":"canary-4471"}"#).unwrap();
    std::os::unix::fs::symlink(&secret, workspace.auth_dir().join("stolen.json")).unwrap();
    let fifo = workspace.auth_dir().join("pipe.json");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::write(workspace.auth_dir().join("real.json"), br#"{"ok":1}"#).unwrap();

    let error = workspace.read(&auth("stolen.json")).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    let error = workspace.read(&auth("pipe.json")).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");

    let mirror = fixture.mirror("w").await;
    mirror.drain().await.unwrap();
    assert!(fixture.remote.get(&auth("real.json")).is_some());
    assert!(fixture.remote.get(&auth("stolen.json")).is_none());
    assert!(fixture.remote.get(&auth("pipe.json")).is_none());
    let everything: Vec<Vec<u8>> = fixture.remote.all_contents();
    assert!(
        !everything
            .iter()
            .any(|c| String::from_utf8_lossy(c).contains("canary-4471")),
        "the linked file's content reached the backend"
    );
    // Left where they are, untouched.
    assert!(std::fs::symlink_metadata(workspace.auth_dir().join("stolen.json")).is_ok());
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        br#"{"private":"canary-4471"}"#
    );
}

#[tokio::test]
async fn instances_starting_together_share_one_lineage() {
    let fixture = Fixture::new();
    let mirrors: Vec<Mirror> = (0..3)
        .map(|i| {
            Mirror::open(
                fixture.remote.clone(),
                fixture.workspace(&format!("m{i}")),
                MirrorOptions::default(),
            )
            .unwrap()
        })
        .collect();
    let reports = futures_join_all(&mirrors).await;
    let lineages: Vec<_> = reports.iter().map(|r| r.lineage.clone().unwrap()).collect();
    assert!(lineages.iter().all(|l| l == &lineages[0]), "{lineages:?}");
    let stored = fixture.remote.get(&Key::meta("lineage")).unwrap();
    assert_eq!(String::from_utf8(stored).unwrap(), lineages[0]);
    // And each restarts cleanly.
    drop(mirrors);
    for i in 0..3 {
        let mirror = fixture.mirror(&format!("m{i}")).await;
        assert_eq!(
            mirror.ledger().meta(MetaName::Lineage).unwrap().unwrap(),
            lineages[0]
        );
    }
}

#[tokio::test]
async fn a_lineage_a_racing_create_replaced_is_adopted_where_creates_are_not_atomic() {
    let fixture = Fixture::new();
    fixture.remote.with(|s| {
        s.racy_creates = true;
        s.racer = Some(b"L-racer".to_vec());
    });
    let mirror = fixture.mirror("a").await;
    assert_eq!(
        mirror.ledger().meta(MetaName::Lineage).unwrap().as_deref(),
        Some("L-racer")
    );
    assert_eq!(fixture.remote.with(|s| s.reads), 1, "one read-back");
}

#[tokio::test]
async fn a_lineage_created_on_an_atomic_backend_is_not_read_back() {
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    let stored = fixture.remote.get(&Key::meta("lineage")).unwrap();
    assert_eq!(
        mirror.ledger().meta(MetaName::Lineage).unwrap().unwrap(),
        String::from_utf8(stored).unwrap()
    );
    assert_eq!(fixture.remote.with(|s| s.reads), 0);
}

async fn futures_join_all(mirrors: &[Mirror]) -> Vec<super::bootstrap::BootstrapReport> {
    let (a, b, c) = tokio::join!(
        super::bootstrap::mirrored(&mirrors[0], None),
        super::bootstrap::mirrored(&mirrors[1], None),
        super::bootstrap::mirrored(&mirrors[2], None),
    );
    vec![a.unwrap(), b.unwrap(), c.unwrap()]
}

#[tokio::test]
async fn an_acknowledged_write_waits_for_nothing_while_the_backend_is_down() {
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    fixture.remote.with(|s| s.down = true);
    let key = auth("down.json");
    let saved = mirror.enqueue_put(&key, br#"{"q":1}"#.to_vec()).unwrap();
    let Saved::Queued(seq) = saved else {
        panic!("{saved:?}")
    };
    assert!(
        !mirror
            .wait_pushed(seq, Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert!(mirror.drain().await.unwrap().blocked);
    fixture.remote.with(|s| s.down = false);
    mirror.drain().await.unwrap();
    assert!(
        mirror
            .wait_pushed(seq, Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"q":1}"#);
}

#[tokio::test]
async fn an_older_workspace_state_is_migrated_into_the_ledger() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("old");
    workspace.create().unwrap();
    let (synced, queued) = (auth("synced.json"), auth("queued.json"));
    workspace.write(&synced, br#"{"s":1}"#).unwrap();
    workspace.write(&queued, br#"{"q":1}"#).unwrap();
    fixture.remote.set(&synced, br#"{"s":1}"#);
    fixture.remote.set(&Key::meta("lineage"), b"L-old");
    let state = serde_json::json!({
        "backend": "fake",
        "lineage": "L-old",
        "cursor": null,
        "last_sync_ms": 1,
        "documents": {
            "auths/synced.json": {"local": super::hash::raw_hash(br#"{"s":1}"#), "remote": "v1"}
        },
        "conflicts": ["auths/x.json.conflict-1"]
    });
    let state_dir = workspace.state_dir();
    std::fs::write(state_dir.join("state.json"), state.to_string()).unwrap();
    std::fs::create_dir_all(state_dir.join("outbox")).unwrap();
    std::fs::write(
        state_dir.join("outbox").join(format!("{:020}.json", 1)),
        r#"{"seq":1,"path":"auths/queued.json","op":"put","content":"{\"q\":1}"}"#,
    )
    .unwrap();
    let mirror = fixture.mirror("old").await;
    assert!(state_dir.join("state.json.migrated").is_file());
    assert!(state_dir.join("outbox.migrated").is_dir());
    assert!(!state_dir.join("state.json").exists());
    let ledger = Ledger::open(&state_dir).unwrap();
    assert_eq!(ledger.meta(MetaName::Lineage).unwrap().unwrap(), "L-old");
    assert_eq!(ledger.conflicts().unwrap(), ["auths/x.json.conflict-1"]);
    drop(ledger);
    // The queued write was replayed; the synced one needed nothing.
    assert_eq!(fixture.remote.get(&queued).unwrap(), br#"{"q":1}"#);
    assert_eq!(mirror.outbox_len().await, 0);
    let synced_version = fixture
        .remote
        .with(|s| s.documents.get(&synced).map(|(v, _)| v.clone()));
    assert_eq!(
        synced_version.as_deref(),
        Some("v1"),
        "the document in step was not pushed again"
    );
    assert!(
        mirror
            .ledger()
            .bases()
            .keys()
            .any(|k| k.kind == Kind::Config)
    );
}

#[tokio::test]
async fn a_link_in_place_of_the_old_state_file_is_refused_not_followed() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("old");
    workspace.create().unwrap();
    let elsewhere = fixture._dir.path().join("elsewhere.json");
    std::fs::write(&elsewhere, r#"{"backend":"fake","lineage":"L-stolen"}"#).unwrap();
    let state_file = workspace.state_dir().join("state.json");
    std::os::unix::fs::symlink(&elsewhere, &state_file).unwrap();

    let opened = Mirror::open(
        fixture.remote.clone(),
        fixture.workspace("old"),
        MirrorOptions::default(),
    );
    let error = match opened {
        Ok(_) => panic!("the state file was read through the link"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("state.json is a symbolic link"), "{error}");
    // Nothing was taken from it, and the link is where it was.
    let ledger = Ledger::open(&workspace.state_dir()).unwrap();
    assert_eq!(ledger.meta(MetaName::Lineage).unwrap(), None);
    assert!(state_file.symlink_metadata().unwrap().is_symlink());
}

#[test]
fn a_fifo_in_place_of_the_old_state_file_fails_the_start_instead_of_hanging_it() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("old");
    workspace.create().unwrap();
    let state_dir = workspace.state_dir();
    let fifo = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        state_dir.join("state.json"),
        rustix::fs::FileType::Fifo,
        fifo,
        0,
    )
    .unwrap();
    std::fs::create_dir_all(state_dir.join("outbox")).unwrap();

    // Opened on its own thread: a read that blocked on the FIFO would
    // never answer.
    let (answer, answered) = std::sync::mpsc::channel();
    let remote = fixture.remote.clone();
    let opened_workspace = fixture.workspace("old");
    std::thread::spawn(move || {
        let opened = Mirror::open(remote, opened_workspace, MirrorOptions::default());
        let _ = answer.send(opened.err().map(|e| e.to_string()));
    });
    let error = answered
        .recv_timeout(Duration::from_secs(20))
        .expect("opening the mirror hung on the FIFO")
        .expect("a FIFO is not a state file");
    assert!(
        error.contains("state.json is not a regular file") && !error.contains("cannot read"),
        "{error}"
    );
}

#[tokio::test]
async fn an_old_outbox_entry_that_is_a_link_is_skipped_not_followed() {
    let fixture = Fixture::new();
    let workspace = fixture.workspace("old");
    workspace.create().unwrap();
    let queued = auth("queued.json");
    workspace.write(&queued, br#"{"q":1}"#).unwrap();
    let outbox = workspace.state_dir().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(
        outbox.join(format!("{:020}.json", 1)),
        r#"{"path":"auths/queued.json","op":"put","content":"{\"q\":1}"}"#,
    )
    .unwrap();
    let elsewhere = fixture._dir.path().join("elsewhere.json");
    std::fs::write(
        &elsewhere,
        r#"{"path":"auths/stolen.json","op":"put","content":"{\"stolen\":1}"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, outbox.join(format!("{:020}.json", 2))).unwrap();

    let mirror = fixture.mirror("old").await;
    mirror.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&queued).unwrap(), br#"{"q":1}"#);
    assert_eq!(fixture.remote.get(&auth("stolen.json")), None);
    let kept = workspace
        .state_dir()
        .join("outbox.migrated")
        .join(format!("{:020}.json", 2));
    assert!(kept.symlink_metadata().unwrap().is_symlink());
}

#[tokio::test]
async fn an_invalid_document_on_the_backend_never_reaches_the_workspace() {
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    let (bad, good) = (auth("bad.json"), auth("good.json"));
    fixture.remote.set(&bad, b"{not json");
    fixture.remote.set(&good, br#"{"ok":1}"#);
    fixture.remote.set(&auth("../escape.json"), br#"{"x":1}"#);
    // A poll takes the good one and skips the rest.
    assert_eq!(mirror.poll().await.unwrap(), 1);
    assert!(mirror.workspace.read(&bad).unwrap().is_none());
    assert_eq!(
        mirror.workspace.read(&good).unwrap().unwrap(),
        br#"{"ok":1}"#
    );
    assert!(!mirror.workspace.root().join("escape.json").exists());
    // A local write of the bad one meets it as a conflict and replaces it.
    mirror
        .enqueue_put(&bad, br#"{"fixed":1}"#.to_vec())
        .unwrap();
    mirror.drain().await.unwrap();
    mirror.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&bad).unwrap(), br#"{"fixed":1}"#);
    assert_eq!(
        mirror.workspace.read(&bad).unwrap().unwrap(),
        br#"{"fixed":1}"#
    );
    assert!(mirror.ledger().conflicts().unwrap().is_empty());
}

/// A file that appeared after the workspace was listed is taken as absent
/// without a read; the guarded create refuses to replace it, and it is
/// decided again on what it holds: never overwritten unseen.
#[tokio::test]
async fn a_file_created_after_the_listing_is_decided_again_not_clobbered() {
    use super::decide::Remote as RemoteState;
    use super::intake::{DEFAULT_MAX_DOCUMENT_BYTES, check};
    use super::scan::DeletionGuard;
    use super::settle::Policy;
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    let (same, differs) = (auth("same.json"), auth("differs.json"));
    fixture.remote.set(&same, br#"{"v":"remote"}"#);
    fixture.remote.set(&differs, br#"{"v":"remote"}"#);
    mirror.workspace.write(&same, br#"{"v":"remote"}"#).unwrap();
    mirror
        .workspace
        .write(&differs, br#"{"v":"local"}"#)
        .unwrap();
    let items: Vec<_> = [&same, &differs]
        .into_iter()
        .map(|key| {
            let content = fixture.remote.get(key).unwrap();
            let version = fixture.remote.with(|s| s.documents[key].0.clone());
            let document = Document {
                entry: entry(key, &version),
                content,
            };
            check(vec![document], DEFAULT_MAX_DOCUMENT_BYTES)
                .items
                .pop()
                .unwrap()
        })
        .collect();
    assert!(
        items
            .iter()
            .all(|(_, r, _)| matches!(r, RemoteState::Present { .. }))
    );
    let listed_before_they_appeared = std::collections::BTreeSet::new();
    let guard = DeletionGuard::never();
    let policy = Policy {
        guard: &guard,
        durability: Durability::Now,
        listed: Some(&listed_before_they_appeared),
    };
    let settled = mirror.settle(items, &policy).unwrap();
    // Equal content: agreed, nothing rewritten, nothing copied.
    assert_eq!(
        mirror.workspace.read(&same).unwrap().unwrap(),
        br#"{"v":"remote"}"#
    );
    assert!(mirror.ledger().base(&same).is_some());
    // Different content: a conflict, and the local bytes are kept.
    assert_eq!(settled.conflicts.len(), 1, "{settled:?}");
    let copy = &settled.conflicts[0];
    let kept = std::fs::read(mirror.workspace.root().join(copy)).unwrap();
    assert_eq!(kept, br#"{"v":"local"}"#);
    assert_eq!(
        mirror.workspace.read(&differs).unwrap().unwrap(),
        br#"{"v":"remote"}"#
    );
    assert_eq!(mirror.ledger().conflicts().unwrap(), vec![copy.clone()]);
}

/// A mirror with `n` auths in step with the backend.
async fn mirrored_auths(fixture: &Fixture, name: &str, n: usize) -> (Mirror, Vec<Key>) {
    let mirror = fixture.mirror(name).await;
    let keys: Vec<Key> = (0..n).map(|i| auth(&format!("w{i}.json"))).collect();
    for (i, key) in keys.iter().enumerate() {
        mirror
            .enqueue_put(key, format!(r#"{{"n":{i}}}"#).into_bytes())
            .unwrap();
    }
    mirror.drain().await.unwrap();
    (mirror, keys)
}

fn wipe_auths(remote: &FakeRemote) {
    remote.with(|s| s.documents.retain(|k, _| k.kind != Kind::Auth));
}

#[tokio::test]
async fn a_wiped_backend_gets_its_documents_back_and_the_workspace_keeps_them() {
    let fixture = Fixture::new();
    let (mirror, keys) = mirrored_auths(&fixture, "a", 10).await;
    wipe_auths(&fixture.remote);
    assert_eq!(mirror.poll().await.unwrap(), 0);
    for key in &keys {
        assert!(mirror.workspace.read(key).unwrap().is_some(), "{key}");
    }
    let refused = mirror
        .ledger()
        .meta(MetaName::RemoteDeletionsRefused)
        .unwrap()
        .unwrap();
    assert!(refused.starts_with("10 "), "{refused}");
    mirror.drain().await.unwrap();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            fixture.remote.get(key).unwrap(),
            format!(r#"{{"n":{i}}}"#).into_bytes()
        );
    }
    // In step again: the next poll changes nothing.
    assert_eq!(mirror.poll().await.unwrap(), 0);
    assert_eq!(mirror.outbox_len().await, 0);
    assert!(mirror.ledger().trash().unwrap().is_empty());
}

#[tokio::test]
async fn a_wipe_done_one_document_at_a_time_is_judged_whole() {
    let fixture = Fixture::new();
    let (mirror, keys) = mirrored_auths(&fixture, "a", 12).await;
    // The first poll meets the wipe after its first deletion.
    fixture.remote.remove(&keys[0]);
    let remote = fixture.remote.clone();
    let rest = keys[1..].to_vec();
    let wiper = tokio::spawn(async move {
        for key in rest {
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            remote.remove(&key);
        }
    });
    assert_eq!(mirror.poll().await.unwrap(), 0, "nothing deleted here");
    wiper.await.unwrap();
    for key in &keys {
        assert!(mirror.workspace.read(key).unwrap().is_some(), "{key}");
    }
    assert!(mirror.ledger().trash().unwrap().is_empty());
    mirror.drain().await.unwrap();
    for key in &keys {
        assert!(fixture.remote.get(key).is_some(), "{key} written back");
    }
}

#[tokio::test]
async fn a_deleted_config_on_the_backend_is_written_back() {
    let fixture = Fixture::new();
    let (mirror, _) = mirrored_auths(&fixture, "a", 3).await;
    assert!(fixture.remote.get(&Key::config()).is_some());
    fixture.remote.remove(&Key::config());
    mirror.poll().await.unwrap();
    assert!(mirror.workspace.config_path().exists());
    mirror.drain().await.unwrap();
    assert!(fixture.remote.get(&Key::config()).is_some());
}

#[tokio::test]
async fn a_wipe_while_stopped_is_refused_at_bootstrap() {
    let fixture = Fixture::new();
    let (mirror, keys) = mirrored_auths(&fixture, "a", 20).await;
    drop(mirror);
    wipe_auths(&fixture.remote);
    let mirror = fixture.mirror("a").await;
    for key in &keys {
        assert!(mirror.workspace.read(key).unwrap().is_some(), "{key}");
        assert!(fixture.remote.get(key).is_some(), "{key} written back");
    }
}

#[tokio::test]
async fn an_accepted_wipe_is_mirrored_once_into_the_trash() {
    let fixture = Fixture::new();
    let (mirror, keys) = mirrored_auths(&fixture, "a", 10).await;
    let now = super::now_ms().to_string();
    mirror
        .ledger()
        .write(|tx| tx.set_meta(MetaName::AcceptRemoteDeletions, Some(&now)))
        .unwrap();
    wipe_auths(&fixture.remote);
    assert_eq!(mirror.poll().await.unwrap(), 10);
    for key in &keys {
        assert!(mirror.workspace.read(key).unwrap().is_none(), "{key}");
    }
    assert_eq!(mirror.ledger().trash().unwrap().len(), 10);
    assert!(
        mirror
            .ledger()
            .meta(MetaName::AcceptRemoteDeletions)
            .unwrap()
            .is_none(),
        "used once"
    );
}

#[tokio::test]
async fn a_tracked_document_gone_bad_on_the_backend_is_not_deleted_here() {
    let fixture = Fixture::new();
    let (mirror, keys) = mirrored_auths(&fixture, "a", 3).await;
    fixture.remote.set(&keys[0], b"[1,2,3]");
    mirror.poll().await.unwrap();
    assert_eq!(
        mirror.workspace.read(&keys[0]).unwrap().unwrap(),
        br#"{"n":0}"#
    );
    assert!(mirror.ledger().trash().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_document_is_quarantined_until_the_backend_fixes_it() {
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    let (bad, good) = (auth("bad.json"), auth("good.json"));
    fixture.remote.set(&bad, b"\"a string\"");
    fixture.remote.set(&good, br#"{"ok":1}"#);
    assert_eq!(mirror.poll().await.unwrap(), 1, "the good one arrives");
    assert_eq!(mirror.poll().await.unwrap(), 0);
    let quarantined = mirror.ledger().quarantined().unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].path, "auths/bad.json");
    assert_eq!(quarantined[0].problem, "not a JSON object");
    fixture.remote.set(&bad, br#"{"fixed":1}"#);
    assert_eq!(mirror.poll().await.unwrap(), 1);
    assert!(mirror.ledger().quarantined().unwrap().is_empty());
    assert_eq!(
        mirror.workspace.read(&bad).unwrap().unwrap(),
        br#"{"fixed":1}"#
    );
}

/// A host killed between moving a file into the trash and writing its
/// entry leaves the copy unlisted: the next open lists it again, under the
/// document's path its name carries, and it can be restored.
#[tokio::test]
async fn a_kept_file_without_its_trash_entry_is_listed_again_at_the_next_open() {
    let fixture = Fixture::new();
    let key = auth("team/100%/t.json");
    let first = fixture.mirror("a").await;
    first.workspace.write(&key, br#"{"v":1}"#).unwrap();
    let current = doc_hash(&key, br#"{"v":1}"#);
    // What the engine does, stopped before the ledger step.
    let Swap::Done {
        previous: Some(previous),
    } = first
        .workspace
        .replace_if(&key, br#"{"v":2}"#, Some(&current), Durability::Now)
        .unwrap()
    else {
        panic!("the swap should happen");
    };
    assert!(first.ledger().trash().unwrap().is_empty());
    // A file of the old naming, which names no document, stays unlisted.
    let trash_dir = first.workspace.trash_dir();
    std::fs::write(trash_dir.join("1-2-3-t.json"), b"{}").unwrap();
    drop(first);

    let second = fixture.mirror("a").await;
    let trash = second.ledger().trash().unwrap();
    assert_eq!(trash.len(), 1, "{trash:?}");
    assert_eq!(trash[0].path, "auths/team/100%/t.json");
    assert_eq!(trash[0].file, previous.file);
    assert_eq!(trash[0].size, previous.size);
    assert!(
        trash[0].reason.contains("interrupted"),
        "{}",
        trash[0].reason
    );
    super::trash::restore(&second.workspace, trash[0].id).unwrap();
    assert_eq!(second.workspace.read(&key).unwrap().unwrap(), br#"{"v":1}"#);
    drop(second);
    // Listed once: opening again adds nothing.
    let third = fixture.mirror("a").await;
    let files: Vec<String> = third
        .ledger()
        .trash()
        .unwrap()
        .into_iter()
        .map(|entry| entry.file)
        .collect();
    let unique: std::collections::BTreeSet<&String> = files.iter().collect();
    assert_eq!(unique.len(), files.len(), "{files:?}");
    assert!(trash_dir.join("1-2-3-t.json").exists());
}

/// The file a pull took out when the host was killed before its ledger
/// step: listed again at the next open, and watched as the pull would
/// have watched it. A write the proxy makes through a handle it still
/// holds is kept as a conflict copy beside the backend's version, once,
/// across restarts too.
#[tokio::test]
async fn a_file_an_interrupted_pull_replaced_is_watched_for_late_writes() {
    let fixture = Fixture::new();
    let (first, key) = synced_then_changed_on_the_backend(&fixture).await;
    let mut write = held_handle(&first.workspace.auth_dir().join("t.json"));
    interrupted_pull(&first, &key, Some(br#"{"v":2}"#));
    drop(first);

    let second = fixture.mirror("a").await;
    assert_eq!(second.late_writes.len(), 1);
    assert_eq!(second.take_late_writes().await, 0, "nothing written since");
    write(br#"{"proxy":3}"#);
    assert_eq!(second.take_late_writes().await, 1);
    assert_eq!(second.workspace.read(&key).unwrap().unwrap(), br#"{"v":2}"#);
    assert_eq!(conflict_copies(&second), [br#"{"proxy":3}"#.to_vec()]);
    drop(second);
    let third = fixture.mirror("a").await;
    assert_eq!(third.late_writes.len(), 1, "the watch outlives a restart");
    assert_eq!(third.take_late_writes().await, 0, "taken once");
}

/// A write the proxy made while no host ran, into the file an interrupted
/// pull took out: the document's base says what was taken, so the write
/// is found at the next start, as a conflict copy beside the backend's
/// version or, after a deletion on the backend, live again and pushed.
#[tokio::test]
async fn a_write_made_while_no_host_ran_into_a_taken_out_file_is_found() {
    for deleted_on_the_backend in [false, true] {
        let fixture = Fixture::new();
        let (first, key) = synced_then_changed_on_the_backend(&fixture).await;
        let mut write = held_handle(&first.workspace.auth_dir().join("t.json"));
        match deleted_on_the_backend {
            false => interrupted_pull(&first, &key, Some(br#"{"v":2}"#)),
            true => {
                fixture.remote.remove(&key);
                interrupted_pull(&first, &key, None);
            }
        }
        drop(first);
        write(br#"{"proxy":3}"#);

        let second = fixture.mirror("a").await;
        assert_eq!(
            second.take_late_writes().await,
            1,
            "{deleted_on_the_backend}"
        );
        if deleted_on_the_backend {
            second.drain().await.unwrap();
            assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"proxy":3}"#);
        } else {
            assert_eq!(conflict_copies(&second), [br#"{"proxy":3}"#.to_vec()]);
            let live = second.workspace.read(&key).unwrap().unwrap();
            assert_eq!(live, br#"{"v":2}"#);
        }
    }
}

/// The same for a file an interrupted pull removed (the backend deleted
/// it): a late write brings it back live, and it goes out again.
#[tokio::test]
async fn a_file_an_interrupted_pull_removed_comes_back_with_a_late_write() {
    let fixture = Fixture::new();
    let (first, key) = synced_then_changed_on_the_backend(&fixture).await;
    fixture.remote.remove(&key);
    let mut write = held_handle(&first.workspace.auth_dir().join("t.json"));
    interrupted_pull(&first, &key, None);
    drop(first);

    let second = fixture.mirror("a").await;
    assert_eq!(second.late_writes.len(), 1);
    write(br#"{"proxy":3}"#);
    assert_eq!(second.take_late_writes().await, 1);
    assert_eq!(
        second.workspace.read(&key).unwrap().unwrap(),
        br#"{"proxy":3}"#
    );
    second.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"proxy":3}"#);
}

/// A file an interrupted pull took out that cannot be watched (its
/// document's path is now a link, which is never read, so whether it was
/// replaced cannot be told) is still listed, and the host opens.
#[tokio::test]
async fn an_adopted_file_that_cannot_be_watched_does_not_stop_the_host() {
    let fixture = Fixture::new();
    let (first, key) = synced_then_changed_on_the_backend(&fixture).await;
    interrupted_pull(&first, &key, None);
    let elsewhere = first.workspace.root().join("elsewhere.json");
    std::os::unix::fs::symlink(elsewhere, first.workspace.auth_dir().join("t.json")).unwrap();
    drop(first);

    let second = Mirror::open(
        fixture.remote.clone(),
        fixture.workspace("a"),
        MirrorOptions::default(),
    )
    .unwrap();
    assert_eq!(second.ledger().trash().unwrap().len(), 1);
    assert_eq!(second.late_writes.len(), 0);
}

/// What a pull does to the file of `key` (replaced by `content`, or
/// removed), stopped before the ledger step, as a kill -9 stops it.
fn interrupted_pull(mirror: &Mirror, key: &Key, content: Option<&[u8]>) {
    let local = mirror.workspace.read(key).unwrap().unwrap();
    let expected = doc_hash(key, &local);
    let swap = match content {
        Some(content) => {
            mirror
                .workspace
                .replace_if(key, content, Some(&expected), Durability::Now)
        }
        None => mirror.workspace.remove_if(key, &expected),
    };
    assert!(
        matches!(swap.unwrap(), Swap::Done { previous: Some(_) }),
        "the swap should happen"
    );
    assert!(mirror.ledger().trash().unwrap().is_empty());
}

/// Polls with the run stopped between the pulls' file operations and
/// their ledger step, as a kill there leaves it.
async fn poll_stopped_before_recording(mirror: &Mirror) {
    use super::settle::STOP_BEFORE_RECORDING_PULLS;
    STOP_BEFORE_RECORDING_PULLS.set(true);
    let polled = mirror.poll().await;
    STOP_BEFORE_RECORDING_PULLS.set(false);
    assert!(polled.is_err(), "the run was stopped: {polled:?}");
}

/// A pull whose file operation was done but whose ledger step was not (the
/// run was killed in between) is recorded by the next run: when the
/// backend has moved on again, its version is pulled as a plain update,
/// not taken for a conflict with a local change nobody made.
#[tokio::test]
async fn a_pull_stopped_before_its_ledger_step_is_recorded_by_the_next_run() {
    let fixture = Fixture::new();
    let (first, key) = synced_then_changed_on_the_backend(&fixture).await;
    let base_before = first.ledger().base(&key).cloned();
    poll_stopped_before_recording(&first).await;
    assert_eq!(first.workspace.read(&key).unwrap().unwrap(), br#"{"v":2}"#);
    assert_eq!(
        first.ledger().base(&key).cloned(),
        base_before,
        "not recorded"
    );
    drop(first);
    fixture.remote.set(&key, br#"{"v":3}"#);

    let second = fixture.mirror("a").await;
    second.poll().await.unwrap();
    assert_eq!(second.workspace.read(&key).unwrap().unwrap(), br#"{"v":3}"#);
    assert_eq!(conflict_copies(&second), Vec::<Vec<u8>>::new());
    assert_eq!(second.outbox_len().await, 0);
    // What the stopped pull took out is still in the trash.
    let trash = second.ledger().trash().unwrap();
    assert!(
        trash.iter().any(|entry| entry.path == "auths/t.json"),
        "{trash:?}"
    );
}

/// The same for a conflict pull (a queued local change met a backend
/// change): the next run drops the queued change as the pull would have,
/// keeps the local version once as a conflict copy (from the trash), and
/// takes the backend's next version without another conflict.
#[tokio::test]
async fn a_conflict_pull_stopped_before_its_ledger_step_keeps_one_conflict_copy() {
    let fixture = Fixture::new();
    let (first, key) = synced_then_changed_on_the_backend(&fixture).await;
    first.enqueue_put(&key, br#"{"local":1}"#.to_vec()).unwrap();
    poll_stopped_before_recording(&first).await;
    assert_eq!(first.workspace.read(&key).unwrap().unwrap(), br#"{"v":2}"#);
    drop(first);
    fixture.remote.set(&key, br#"{"v":3}"#);

    let second = fixture.mirror("a").await;
    second.take_late_writes().await;
    second.poll().await.unwrap();
    second.drain().await.unwrap();
    assert_eq!(second.workspace.read(&key).unwrap().unwrap(), br#"{"v":3}"#);
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"v":3}"#);
    assert_eq!(conflict_copies(&second), [br#"{"local":1}"#.to_vec()]);
    assert_eq!(second.outbox_len().await, 0);
}

/// `a.json` pushed as `{"v":1}`; with the key of `a.json/b.json`.
async fn a_json_synced(fixture: &Fixture) -> (Mirror, Key, Key) {
    let mirror = fixture.mirror("a").await;
    let (file, nested) = (auth("a.json"), auth("a.json/b.json"));
    mirror.enqueue_put(&file, br#"{"v":1}"#.to_vec()).unwrap();
    mirror.drain().await.unwrap();
    (mirror, file, nested)
}

#[tokio::test]
async fn a_document_the_backend_turned_into_a_directory_of_documents_is_pulled() {
    let fixture = Fixture::new();
    let (mirror, file, nested) = a_json_synced(&fixture).await;
    fixture.remote.remove(&file);
    fixture.remote.set(&nested, br#"{"v":2}"#);
    mirror.poll().await.unwrap();
    assert_eq!(
        mirror.workspace.read(&nested).unwrap().unwrap(),
        br#"{"v":2}"#
    );
    assert_eq!(trash_reasons(&mirror), ["deleted on the backend"]);

    // And back: the directory's document goes, the file comes again.
    fixture.remote.remove(&nested);
    fixture.remote.set(&file, br#"{"v":3}"#);
    mirror.poll().await.unwrap();
    assert_eq!(
        mirror.workspace.read(&file).unwrap().unwrap(),
        br#"{"v":3}"#
    );
    assert!(mirror.workspace.read(&nested).unwrap().is_none());
}

#[tokio::test]
async fn a_document_the_proxy_turned_into_a_directory_of_documents_is_pushed() {
    let fixture = Fixture::new();
    let (mirror, file, nested) = a_json_synced(&fixture).await;
    let path = mirror.workspace.path_of(&file).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("b.json"), br#"{"v":2}"#).unwrap();
    mirror.scan(None).await.unwrap();
    mirror.drain().await.unwrap();
    assert_eq!(fixture.remote.get(&nested).unwrap(), br#"{"v":2}"#);
    assert!(fixture.remote.get(&file).is_none());
}

/// A backend with flat keys can hold `a.json` and `a.json/b.json` at once;
/// the workspace cannot. The directory and its document stay, and the
/// other is refused with a reason, not retried as a local change.
#[tokio::test]
async fn a_document_whose_path_holds_a_directory_of_documents_is_refused_clearly() {
    let fixture = Fixture::new();
    let (file, nested) = (auth("a.json"), auth("a.json/b.json"));
    fixture.remote.set(&nested, br#"{"v":1}"#);
    let mirror = fixture.mirror("a").await;
    fixture.remote.set(&file, br#"{"v":2}"#);
    mirror.poll().await.unwrap();
    assert_eq!(
        mirror.workspace.read(&nested).unwrap().unwrap(),
        br#"{"v":1}"#
    );
    assert!(mirror.workspace.read(&file).unwrap().is_none());
    let refused = mirror
        .workspace
        .replace_if(&file, br#"{"v":2}"#, None, Durability::Now);
    assert!(
        matches!(&refused, Err(WorkspaceError::DirectoryInTheWay { path }) if path.ends_with("auths/a.json")),
        "{refused:?}"
    );
    assert_eq!(fixture.remote.get(&file).unwrap(), br#"{"v":2}"#);
}

/// What is logged on this thread while it lives (the tests' runtime runs
/// on the test's thread).
struct CapturedLogs {
    text: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn start() -> CapturedLogs {
        let text = Arc::new(Mutex::new(Vec::new()));
        let sink = text.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        CapturedLogs {
            text,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }
}

/// The proxy's in-place rewrite: the file is empty now (truncated) and
/// holds `content` a moment later.
fn rewritten_in_place_shortly(
    path: std::path::PathBuf,
    content: &'static [u8],
) -> std::thread::JoinHandle<()> {
    std::fs::write(&path, b"").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(&path, content).unwrap();
    })
}

#[tokio::test]
async fn a_file_a_scan_catches_half_written_goes_out_once_complete_without_an_error() {
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    let key = auth("a.json");
    let writer = rewritten_in_place_shortly(mirror.workspace.path_of(&key).unwrap(), br#"{"v":1}"#);
    let logs = CapturedLogs::start();
    let queued = mirror.scan(None).await.unwrap();
    writer.join().unwrap();
    mirror.drain().await.unwrap();
    assert_eq!(queued, 1);
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"v":1}"#);
    assert!(!logs.text().contains("ERROR"), "{}", logs.text());
}

#[tokio::test]
async fn a_file_half_written_at_start_up_goes_out_once_complete_without_an_error() {
    let fixture = Fixture::new();
    let key = auth("a.json");
    let workspace = fixture.workspace("a");
    workspace.create().unwrap();
    let writer = rewritten_in_place_shortly(workspace.path_of(&key).unwrap(), br#"{"v":1}"#);
    let logs = CapturedLogs::start();
    let mirror = Mirror::open(fixture.remote.clone(), workspace, MirrorOptions::default()).unwrap();
    let report = super::bootstrap::mirrored(&mirror, None).await.unwrap();
    writer.join().unwrap();
    assert_eq!(fixture.remote.get(&key).unwrap(), br#"{"v":1}"#);
    assert_eq!(report.uploaded, 2, "the auth and the seeded config");
    assert!(!logs.text().contains("ERROR"), "{}", logs.text());
}

#[tokio::test]
async fn a_file_that_stays_invalid_is_reported_after_the_second_look_and_not_pushed() {
    let fixture = Fixture::new();
    let mirror = fixture.mirror("a").await;
    let key = auth("a.json");
    std::fs::write(mirror.workspace.path_of(&key).unwrap(), b"{").unwrap();
    let logs = CapturedLogs::start();
    assert_eq!(mirror.scan(None).await.unwrap(), 0);
    mirror.drain().await.unwrap();
    assert!(fixture.remote.get(&key).is_none());
    let text = logs.text();
    assert_eq!(text.matches("ERROR").count(), 1, "{text}");
    assert!(
        text.contains("not a JSON object") && text.contains("not pushed"),
        "{text}"
    );
}
