//! Every built-in plugin, and the in-memory test backend, pass the kit.

use storehost_tests::conformance::StoreTraits;
use storehost_tests::links::{assert_reads_never_follow_a_swapped_link, keep_swapping};
use storehost_tests::{
    conformance, fault_plugin, local_plugin, local_plugin_rooted, memory_plugin, set_fault,
};

#[tokio::test]
async fn local_plugin_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = local_plugin(dir.path());
    conformance::run(&plugin).await.assert_all_passed();
}

#[tokio::test]
async fn memory_test_backend_passes_the_conformance_kit() {
    conformance::run_single_instance(&memory_plugin())
        .await
        .assert_all_passed();
}

const CONTENTION: &str = "two instances contending on one key: one wins, the other conflicts";

/// A plugin that drops its preconditions fails the contention case even
/// where the kit tolerates a store that is raced through now and again.
#[tokio::test]
async fn contention_case_catches_a_plugin_that_ignores_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    set_fault(dir.path(), Some("ignore-preconditions"));
    let plugin = fault_plugin(dir.path());
    for atomic_conditional_writes in [true, false] {
        let traits = StoreTraits {
            atomic_conditional_writes,
        };
        let report = conformance::run_on(&plugin, traits).await;
        let outcome = report.outcome(CONTENTION).expect("the case ran");
        assert!(!outcome.passed, "{traits:?}: {outcome:?}");
        assert!(
            outcome.detail.contains("2 of two writes")
                || outcome.detail.contains("does not enforce preconditions"),
            "{outcome:?}"
        );
    }
    // Honest again: both forms of the case pass on the same store.
    set_fault(dir.path(), None);
    for atomic_conditional_writes in [true, false] {
        let traits = StoreTraits {
            atomic_conditional_writes,
        };
        conformance::run_on(&plugin, traits)
            .await
            .assert_all_passed();
    }
}

#[tokio::test]
async fn local_plugin_keeps_the_layout_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = local_plugin(dir.path());
    conformance::run(&plugin).await.assert_all_passed();
    let key = storehost::Key::auth("team/a.json");
    let put = storehost::Change::Put {
        key,
        content: b"{}".to_vec(),
        precondition: storehost::Precondition::Any,
    };
    plugin
        .apply(vec![put, config_put()], "layout")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("auths/team/a.json")).unwrap(),
        b"{}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("config/config.yaml")).unwrap(),
        b"a: 1\n"
    );
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.contains(".storehost-tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn refused_ids_never_touch_files_outside_the_store() {
    let outer = tempfile::tempdir().unwrap();
    let store = outer.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let plugin = local_plugin(&store);
    for id in ["../escape.json", "../../escape.json", "/escape.json"] {
        let put = storehost::Change::Put {
            key: storehost::Key::auth(id),
            content: b"{}".to_vec(),
            precondition: storehost::Precondition::Any,
        };
        assert!(plugin.apply(vec![put], "escape").await.is_err(), "{id}");
    }
    assert_eq!(
        walk(outer.path()),
        Vec::<String>::new(),
        "nothing may be created"
    );
}

fn config_put() -> storehost::Change {
    storehost::Change::Put {
        key: storehost::Key::config(),
        content: b"a: 1\n".to_vec(),
        precondition: storehost::Precondition::Any,
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Sets a file's modification time an hour back, as if written long ago.
fn age(path: &std::path::Path) -> std::time::SystemTime {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(then).unwrap();
    then
}

fn ids(documents: &[storehost::Document]) -> Vec<String> {
    let mut ids: Vec<_> = documents.iter().map(|d| d.entry.key.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn local_plugin_pulls_only_what_changed_since_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let auths = dir.path().join("auths");
    std::fs::create_dir_all(&auths).unwrap();
    let mut written = std::collections::BTreeMap::new();
    for id in ["a.json", "b.json", "c.json"] {
        std::fs::write(auths.join(id), br#"{"v":1}"#).unwrap();
        written.insert(id, age(&auths.join(id)));
    }
    let plugin = local_plugin(dir.path());
    let first = plugin.pull(None).await.unwrap();
    assert!(first.complete);
    assert_eq!(ids(&first.documents), ["a.json", "b.json", "c.json"]);

    let quiet = plugin.pull(Some(&first.cursor)).await.unwrap();
    assert!(!quiet.complete, "a delta from its own cursor");
    assert!(quiet.documents.is_empty() && quiet.removed.is_empty());

    std::fs::write(auths.join("b.json"), br#"{"v":22}"#).unwrap();
    std::fs::remove_file(auths.join("c.json")).unwrap();
    std::fs::write(auths.join("d.json"), br#"{"v":1}"#).unwrap();
    let delta = plugin.pull(Some(&quiet.cursor)).await.unwrap();
    assert!(!delta.complete);
    assert_eq!(ids(&delta.documents), ["b.json", "d.json"]);
    assert_eq!(removed_ids(&delta), ["c.json"]);

    // Rewritten at once with the same size and time: a recent file's
    // stamp is not trusted, so the change is still seen.
    std::fs::write(auths.join("d.json"), br#"{"v":2}"#).unwrap();
    let racy = plugin.pull(Some(&delta.cursor)).await.unwrap();
    assert_eq!(ids(&racy.documents), ["d.json"]);

    // A document this instance wrote and someone deleted before the next
    // pull shows as removed; one it wrote and nobody touched does not show.
    let put = |id: &str| storehost::Change::Put {
        key: storehost::Key::auth(id),
        content: br#"{"put":1}"#.to_vec(),
        precondition: storehost::Precondition::Absent,
    };
    plugin
        .apply(vec![put("e.json"), put("f.json")], "two")
        .await
        .unwrap();
    std::fs::remove_file(auths.join("e.json")).unwrap();
    let after_apply = plugin.pull(Some(&racy.cursor)).await.unwrap();
    assert!(
        after_apply.documents.is_empty(),
        "{:?}",
        ids(&after_apply.documents)
    );
    assert_eq!(removed_ids(&after_apply), ["e.json"]);

    // An old file rewritten with its size and time kept looks unchanged
    // to a delta; a complete pull (no cursor, or one this instance did
    // not hand out) compares everything.
    std::fs::write(auths.join("a.json"), br#"{"v":9}"#).unwrap();
    let file = std::fs::File::options()
        .write(true)
        .open(auths.join("a.json"))
        .unwrap();
    file.set_modified(written["a.json"]).unwrap();
    for cursor in [None, Some("not-a-cursor-of-this-instance")] {
        let complete = plugin.pull(cursor).await.unwrap();
        assert!(complete.complete, "{cursor:?}");
        let a = complete
            .documents
            .iter()
            .find(|d| d.entry.key.id == "a.json")
            .unwrap();
        assert_eq!(a.content, br#"{"v":9}"#);
    }
}

#[tokio::test]
async fn local_plugin_waits_for_a_held_write_lock_and_breaks_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = local_plugin(dir.path());
    plugin.prepare().await.unwrap();
    let lock = dir.path().join(".storehost/apply.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();

    // Held by another writer for 300 ms: the apply waits, then lands.
    std::fs::write(&lock, b"another writer").unwrap();
    let held = lock.clone();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::remove_file(held).unwrap();
    });
    let started = std::time::Instant::now();
    plugin.apply(vec![config_put()], "waits").await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    releaser.join().unwrap();
    assert!(!lock.exists(), "released after the apply");

    // Kept alive by its holder for longer than a dead lock is trusted:
    // still waited for, never broken under it.
    std::fs::write(&lock, b"live writer, beat 0").unwrap();
    let held = lock.clone();
    let holder = std::thread::spawn(move || {
        for beat in 1..=20 {
            std::thread::sleep(std::time::Duration::from_millis(300));
            std::fs::write(&held, format!("live writer, beat {beat}")).unwrap();
        }
        std::fs::remove_file(held).unwrap();
    });
    let started = std::time::Instant::now();
    plugin
        .apply(vec![config_put()], "waits longer")
        .await
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(5_800));
    holder.join().unwrap();

    // Left by a writer killed mid-apply (unchanged, whatever its file
    // time says): broken once it has not changed for STALE_AFTER, long
    // before the wait gives up.
    std::fs::write(&lock, b"dead writer").unwrap();
    age(&lock);
    let started = std::time::Instant::now();
    plugin.apply(vec![config_put()], "breaks").await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(5), "{waited:?}");
    assert!(waited < std::time::Duration::from_secs(15), "{waited:?}");
    assert!(!lock.exists());
}

fn removed_ids(snapshot: &storehost::Snapshot) -> Vec<String> {
    let mut ids: Vec<_> = snapshot.removed.iter().map(|k| k.id.clone()).collect();
    ids.sort();
    ids
}

/// Files at `dir/auths`: one in a subdirectory, symlinks (to a file, out
/// of the store, to a directory) and a temp file beside them.
fn tangled_auths(dir: &std::path::Path, outside: &std::path::Path) {
    let auths = dir.join("auths");
    std::fs::create_dir_all(auths.join("team")).unwrap();
    for id in ["team/a.json", "b.json", "c.json", "d.json"] {
        std::fs::write(auths.join(id), br#"{"v":1}"#).unwrap();
    }
    std::fs::write(outside.join("secret.json"), br#"{"outside":1}"#).unwrap();
    std::os::unix::fs::symlink("b.json", auths.join("link.json")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.json"), auths.join("out.json")).unwrap();
    std::os::unix::fs::symlink("team", auths.join("linked-team")).unwrap();
    std::fs::write(auths.join(".storehost-tmp.1234"), b"half").unwrap();
}

/// The guest lists through wasi:filesystem itself: only regular files are
/// documents, and an auth that turns into a symlink or a directory between
/// two pulls is gone, never followed.
#[tokio::test]
async fn local_plugin_lists_only_regular_files_as_they_change_between_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    tangled_auths(dir.path(), outside.path());
    let plugin = local_plugin(dir.path());
    let first = plugin.pull(None).await.unwrap();
    let expected = ["b.json", "c.json", "d.json", "team/a.json"];
    assert_eq!(ids(&first.documents), expected);
    let mut listed: Vec<_> = plugin.list().await.unwrap();
    listed.sort_by(|a, b| a.key.id.cmp(&b.key.id));
    let listed: Vec<_> = listed.iter().map(|e| e.key.id.as_str()).collect();
    assert_eq!(listed, expected, "list() sees what pull() sees");

    let auths = dir.path().join("auths");
    std::fs::remove_file(auths.join("b.json")).unwrap();
    std::os::unix::fs::symlink("d.json", auths.join("b.json")).unwrap();
    std::fs::remove_file(auths.join("c.json")).unwrap();
    std::fs::create_dir(auths.join("c.json")).unwrap();
    std::fs::write(auths.join("c.json/x.json"), br#"{"v":1}"#).unwrap();
    std::fs::rename(auths.join("team"), dir.path().join("team-moved")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("team-moved"), auths.join("team")).unwrap();
    std::fs::write(auths.join("d.json"), br#"{"v":2}"#).unwrap();

    let delta = plugin.pull(Some(&first.cursor)).await.unwrap();
    assert!(!delta.complete);
    assert_eq!(ids(&delta.documents), ["c.json/x.json", "d.json"]);
    assert_eq!(removed_ids(&delta), ["b.json", "c.json", "team/a.json"]);
    let again = plugin.pull(None).await.unwrap();
    assert_eq!(ids(&again.documents), ["c.json/x.json", "d.json"]);
}

fn put(id: &str, content: &str, precondition: storehost::Precondition) -> storehost::Change {
    storehost::Change::Put {
        key: storehost::Key::auth(id),
        content: content.as_bytes().to_vec(),
        precondition,
    }
}

/// One batch turns a directory of documents back into one document: its
/// removals go first, whatever their place in the batch, and the answers
/// keep the batch's order. A directory holding anything else is refused,
/// and nothing of the batch is applied.
#[tokio::test]
async fn local_plugin_turns_a_directory_of_documents_into_one_document_in_one_batch() {
    use storehost::Precondition::{Absent, Any};
    let dir = tempfile::tempdir().unwrap();
    let auths = dir.path().join("auths");
    let plugin = local_plugin(dir.path());
    let remove = |id: &str| storehost::Change::Remove {
        key: storehost::Key::auth(id),
        precondition: Any,
    };
    let nested = [
        put("a.json/b.json", r#"{"b":1}"#, Absent),
        put("a.json/c/d.json", r#"{"d":1}"#, Absent),
    ];
    plugin.apply(nested.to_vec(), "t").await.unwrap();

    std::fs::write(auths.join("a.json/c/notes.txt"), "mine").unwrap();
    let batch = vec![
        put("a.json", r#"{"a":1}"#, Absent),
        remove("a.json/b.json"),
        remove("a.json/c/d.json"),
    ];
    let refused = plugin
        .apply(batch.clone(), "t")
        .await
        .expect_err("notes.txt stays");
    assert!(
        refused
            .to_string()
            .contains("is a directory, not a document"),
        "{refused}"
    );
    assert!(auths.join("a.json/b.json").is_file() && auths.join("a.json/c/d.json").is_file());

    std::fs::remove_file(auths.join("a.json/c/notes.txt")).unwrap();
    let answers = plugin.apply(batch, "t").await.unwrap();
    assert!(
        answers[0].is_some() && answers[1].is_none() && answers[2].is_none(),
        "{answers:?}"
    );
    assert_eq!(std::fs::read(auths.join("a.json")).unwrap(), br#"{"a":1}"#);
}

/// What the listing never shows is no document for any other call either:
/// a symlink is not read through (it would serve another file's content
/// under its key), and a write to its path is refused, not reported as a
/// conflict that would be retried against it for ever. It is left as is.
#[tokio::test]
async fn local_plugin_treats_a_symlink_as_no_document_in_every_call() {
    use storehost::Precondition::{Absent, Any};
    use storehost::runtime::error::BackendError;
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    tangled_auths(dir.path(), outside.path());
    let auths = dir.path().join("auths");
    std::os::unix::fs::symlink("nowhere.json", auths.join("dangling.json")).unwrap();
    let plugin = local_plugin(dir.path());
    // The last three go through a linked directory, which the listing
    // never enters either: a write there would land on another document.
    let links = [
        "link.json",
        "out.json",
        "dangling.json",
        "linked-team",
        "linked-team/a.json",
        "linked-team/new.json",
        "linked-team/deeper/new.json",
    ];
    let keys: Vec<_> = links.iter().map(|id| storehost::Key::auth(*id)).collect();
    let read = plugin.read(&keys).await.unwrap();
    assert!(read.iter().all(Option::is_none), "{read:?}");

    for id in links {
        for precondition in [Absent, Any] {
            let error = plugin
                .apply(vec![put(id, r#"{"new":1}"#, precondition.clone())], "t")
                .await
                .expect_err(id);
            assert!(
                matches!(error.backend(), Some(BackendError::Invalid(m)) if m.contains("is a symlink, not a")),
                "{id} {precondition:?}: {error}"
            );
        }
        let remove = storehost::Change::Remove {
            key: storehost::Key::auth(id),
            precondition: Any,
        };
        plugin.apply(vec![remove], "t").await.unwrap();
        let link = id.split_once('/').map_or(id, |(dir, _)| dir);
        assert!(
            auths.join(link).symlink_metadata().unwrap().is_symlink(),
            "{id}"
        );
    }
    assert_eq!(std::fs::read(auths.join("b.json")).unwrap(), br#"{"v":1}"#);
    assert_eq!(
        std::fs::read(auths.join("team/a.json")).unwrap(),
        br#"{"v":1}"#
    );
    let team: Vec<_> = std::fs::read_dir(auths.join("team")).unwrap().collect();
    assert_eq!(team.len(), 1, "nothing written through the link: {team:?}");
    assert_eq!(
        std::fs::read(outside.path().join("secret.json")).unwrap(),
        br#"{"outside":1}"#
    );
    // Beside them, documents are written as ever.
    plugin
        .apply(vec![put("fresh.json", r#"{"f":1}"#, Absent)], "t")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(auths.join("fresh.json")).unwrap(),
        br#"{"f":1}"#
    );
}

/// A document, or a directory above it, flips between itself and a
/// symlink to another document while the local plugin reads it: every
/// read serves the document's own content or nothing.
#[tokio::test]
async fn local_plugin_never_reads_through_a_symlink_swapped_in_mid_read() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = local_plugin(dir.path());
    assert_reads_never_follow_a_swapped_link(&plugin, dir.path(), 3000).await;
}

/// `auths/team` flips between a directory and a symlink to one outside
/// the store while the guest lists it: every pull succeeds, and none
/// lists what lies outside.
#[tokio::test]
async fn local_plugin_lists_through_a_directory_swapped_for_a_symlink_mid_pull() {
    const PULLS: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let auths = dir.path().join("auths");
    std::fs::create_dir_all(auths.join("team")).unwrap();
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(auths.join("team/a.json"), br#"{"own":1}"#).unwrap();
    std::fs::write(auths.join("top.json"), br#"{"own":1}"#).unwrap();
    std::fs::write(dir.path().join("outside/secret.json"), b"{}").unwrap();
    std::os::unix::fs::symlink("../outside", dir.path().join("dir-link")).unwrap();
    let plugin = local_plugin(dir.path());
    let swapping = keep_swapping(auths.join("team"), dir.path().join("dir-link"));
    let (mut failed, mut leaked, mut saw_team) = (Vec::new(), Vec::new(), 0);
    for _ in 0..PULLS {
        match plugin.pull(None).await {
            Ok(snapshot) => {
                let listed = ids(&snapshot.documents);
                saw_team += usize::from(listed.iter().any(|id| id == "team/a.json"));
                if listed.iter().any(|id| id.contains("secret"))
                    || !listed.contains(&"top.json".to_string())
                {
                    leaked.push(listed);
                }
            }
            Err(error) => failed.push(error.to_string()),
        }
    }
    drop(swapping);
    assert!(
        failed.is_empty(),
        "{} of {PULLS} pulls failed: {:?}",
        failed.len(),
        failed[0]
    );
    assert!(
        leaked.is_empty(),
        "{} pulls listed {:?}",
        leaked.len(),
        leaked[0]
    );
    assert!(saw_team > 0 && saw_team < PULLS, "{saw_team}");
}

/// A file whose name is not UTF-8 is no document, and costs the others
/// nothing: wasi:filesystem fails that one directory entry, and the walk
/// steps over it.
#[tokio::test]
async fn local_plugin_skips_a_name_that_is_not_utf8_and_lists_the_rest() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let auths = dir.path().join("auths");
    std::fs::create_dir_all(auths.join("team")).unwrap();
    for name in [&b"bad-\xff.json"[..], b"team/also-\xfe.json"] {
        std::fs::write(auths.join(std::ffi::OsStr::from_bytes(name)), b"{}").unwrap();
    }
    for id in ["a.json", "team/b.json", "z.json"] {
        std::fs::write(auths.join(id), br#"{"v":1}"#).unwrap();
    }
    let plugin = local_plugin(dir.path());
    let snapshot = plugin.pull(None).await.unwrap();
    assert_eq!(
        ids(&snapshot.documents),
        ["a.json", "team/b.json", "z.json"]
    );
    let mut listed: Vec<_> = plugin.list().await.unwrap();
    listed.sort_by(|a, b| a.key.id.cmp(&b.key.id));
    assert_eq!(listed.len(), 3, "{listed:?}");
    // std's walk (for a root with `..`) cannot step over such an entry:
    // its directory stream ends at the first error. It fails the pull,
    // naming the directory, rather than list part of it, which would read
    // as the rest deleted.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let winding = local_plugin_rooted(dir.path(), "/store/sub/..");
    let error = winding.pull(None).await.unwrap_err().to_string();
    assert!(error.contains("cannot list /store/sub/../auths"), "{error}");
}

/// A root the guest cannot open beneath its preopen by plain names (here
/// through `..`) is listed by std instead, with the same result.
#[tokio::test]
async fn local_plugin_lists_the_same_through_a_root_with_dot_dot() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    tangled_auths(dir.path(), outside.path());
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let direct = local_plugin(dir.path()).pull(None).await.unwrap();
    let winding = local_plugin_rooted(dir.path(), "/store/sub/..");
    let snapshot = winding.pull(None).await.unwrap();
    assert_eq!(ids(&snapshot.documents), ids(&direct.documents));
    assert_eq!(
        ids(&snapshot.documents),
        ["b.json", "c.json", "d.json", "team/a.json"]
    );
}

/// A root that is not there is a failure that names it, never an empty
/// store a mirror would read as everything deleted.
#[tokio::test]
async fn local_plugin_fails_a_pull_when_its_root_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    for root in ["/store/gone", "/elsewhere"] {
        let plugin = local_plugin_rooted(dir.path(), root);
        let error = plugin.pull(None).await.unwrap_err().to_string();
        assert!(error.contains(root), "{root}: {error}");
    }
    // Removed under a running instance: the next pull fails as well.
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("auths")).unwrap();
    std::fs::write(root.join("auths/a.json"), b"{}").unwrap();
    let plugin = local_plugin_rooted(dir.path(), "/store/root");
    let first = plugin.pull(None).await.unwrap();
    assert_eq!(ids(&first.documents), ["a.json"]);
    std::fs::remove_dir_all(&root).unwrap();
    let error = plugin.pull(Some(&first.cursor)).await.unwrap_err();
    assert!(error.to_string().contains("/store/root"), "{error}");
}
