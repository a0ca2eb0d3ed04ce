//! The swap's race windows, opened on purpose: the proxy writes at the
//! exact points where a real write lands once in a long while. Both ways
//! the proxy writes are covered: a temp file renamed into place, and
//! rewriting the file in place (`O_TRUNC`) through a handle.

use super::race::{self, Point};
use super::{Swap, Workspace};
use crate::fsutil::Durability;
use crate::mirror::hash::doc_hash;
use crate::model::{Key, Kind};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

const EXPECTED: &[u8] = br#"{"seen":1}"#;
const REMOTE: &[u8] = br#"{"remote":1}"#;
const PROXY_1: &[u8] = br#"{"proxy":1}"#;
const PROXY_2: &[u8] = br#"{"proxy":2}"#;

#[derive(Clone, Copy, Debug)]
enum ProxyWrite {
    Rename,
    InPlace,
}

const BOTH: [ProxyWrite; 2] = [ProxyWrite::Rename, ProxyWrite::InPlace];

fn proxy_write(path: &Path, content: &[u8], how: ProxyWrite) {
    match how {
        ProxyWrite::Rename => {
            let temp = path.with_extension("json.tmp");
            std::fs::write(&temp, content).unwrap();
            std::fs::rename(&temp, path).unwrap();
        }
        ProxyWrite::InPlace => std::fs::write(path, content).unwrap(),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    workspace: Workspace,
    key: Key,
    path: PathBuf,
}

fn setup(initial: &[u8]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::new(dir.path().join("w"));
    workspace.create().unwrap();
    let key = Key {
        kind: Kind::Auth,
        id: "x.json".into(),
    };
    workspace.write(&key, initial).unwrap();
    let path = workspace.auth_dir().join("x.json");
    Setup {
        _dir: dir,
        workspace,
        key,
        path,
    }
}

impl Setup {
    fn live(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    fn trash(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.workspace.trash_dir().join(file)).unwrap()
    }

    /// The contents of every file in the trash, sorted.
    fn trash_contents(&self) -> Vec<Vec<u8>> {
        let mut contents: Vec<Vec<u8>> = self
            .workspace
            .trash_files()
            .unwrap()
            .into_iter()
            .map(|(file, _)| self.trash(&file))
            .collect();
        contents.sort();
        contents
    }

    /// Only the document itself is left in `auths/`: no temp file.
    fn assert_no_temp_left(&self) {
        let names: Vec<String> = std::fs::read_dir(self.workspace.auth_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["x.json"]);
    }

    fn replace(&self, expected: &[u8]) -> Swap {
        let expected = doc_hash(&self.key, expected);
        self.workspace
            .replace_if(&self.key, REMOTE, Some(&expected), Durability::Now)
            .unwrap()
    }
}

/// Runs `write` at the first time the swap reaches `at`.
fn once_at(at: Point, write: impl FnOnce() + Send + 'static) -> impl FnMut(Point) + Send {
    let mut write = Some(write);
    move |point| {
        if point == at
            && let Some(write) = write.take()
        {
            write();
        }
    }
}

/// The proxy writes PROXY_2 the first time the swap reaches `at`.
fn proxy_writes_at(setup: &Setup, at: Point, how: ProxyWrite) -> race::Guard {
    let path = setup.path.clone();
    race::on(
        &setup.path,
        once_at(at, move || proxy_write(&path, PROXY_2, how)),
    )
}

#[test]
fn a_write_between_the_check_and_the_put_back_stays_live() {
    for how in BOTH {
        // The proxy had written PROXY_1 since the decision, so the swap
        // puts it back; as it does, the proxy writes PROXY_2.
        let setup = setup(PROXY_1);
        let _hook = proxy_writes_at(&setup, Point::PuttingBack, how);
        let swap = setup.replace(EXPECTED);
        assert_eq!(setup.live(), PROXY_2, "{how:?}: the newest write is live");
        let Swap::LocalChanged { kept: Some(kept) } = swap else {
            panic!("{how:?}: {swap:?}");
        };
        assert_eq!(setup.trash(&kept.file), PROXY_1, "{how:?}");
        assert_eq!(kept.size, PROXY_1.len() as u64);
        setup.assert_no_temp_left();
    }
}

#[test]
fn a_write_right_after_the_exchange_stays_live_as_a_local_change() {
    for how in BOTH {
        // The file is what the decision saw, but the proxy rewrites it the
        // moment the host's version went in: the swap is done, and the
        // proxy's write is a local change like any other (the next scan
        // pushes it).
        let setup = setup(EXPECTED);
        let _hook = proxy_writes_at(&setup, Point::Exchanged, how);
        let swap = setup.replace(EXPECTED);
        assert_eq!(setup.live(), PROXY_2, "{how:?}");
        let Swap::Done {
            previous: Some(previous),
        } = swap
        else {
            panic!("{how:?}: {swap:?}");
        };
        assert_eq!(setup.trash(&previous.file), EXPECTED, "{how:?}");
        setup.assert_no_temp_left();
    }
}

/// The proxy opened the file (as it was when the decision was made)
/// before the swap, and writes through that handle only after it.
fn write_through(mut handle: std::fs::File, content: &'static [u8]) -> impl FnOnce() + Send {
    move || {
        handle.set_len(0).unwrap();
        handle.rewind().unwrap();
        handle.write_all(content).unwrap();
    }
}

fn open_for_writing(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().write(true).open(path).unwrap()
}

#[test]
fn a_write_through_a_handle_opened_before_a_replace_is_put_back_live() {
    let setup = setup(EXPECTED);
    let handle = open_for_writing(&setup.path);
    let _hook = race::on(
        &setup.path,
        once_at(Point::Trashed, write_through(handle, PROXY_2)),
    );
    let swap = setup.replace(EXPECTED);
    assert_eq!(swap, Swap::LOCAL_CHANGED);
    assert_eq!(setup.live(), PROXY_2);
    // The host's own version left with nothing to keep: the backend has it.
    assert!(setup.trash_contents().is_empty());
    setup.assert_no_temp_left();
}

#[test]
fn a_write_through_a_handle_opened_before_a_removal_is_put_back() {
    let setup = setup(EXPECTED);
    let handle = open_for_writing(&setup.path);
    let _hook = race::on(
        &setup.path,
        once_at(Point::Trashed, write_through(handle, PROXY_2)),
    );
    let expected = doc_hash(&setup.key, EXPECTED);
    let swap = setup.workspace.remove_if(&setup.key, &expected).unwrap();
    assert_eq!(swap, Swap::LOCAL_CHANGED);
    assert_eq!(setup.live(), PROXY_2);
    assert!(setup.trash_contents().is_empty());
}

#[test]
fn a_file_created_while_a_changed_one_is_put_back_keeps_both() {
    for how in BOTH {
        let setup = setup(PROXY_1);
        let _hook = proxy_writes_at(&setup, Point::PuttingBack, how);
        let expected = doc_hash(&setup.key, EXPECTED);
        let swap = setup.workspace.remove_if(&setup.key, &expected).unwrap();
        assert_eq!(setup.live(), PROXY_2, "{how:?}");
        let Swap::LocalChanged { kept: Some(kept) } = swap else {
            panic!("{how:?}: {swap:?}");
        };
        assert_eq!(setup.trash(&kept.file), PROXY_1, "{how:?}");
    }
}

#[test]
fn a_proxy_that_never_stops_writing_ends_the_swap_and_loses_nothing() {
    for how in BOTH {
        let setup = setup(PROXY_1);
        let path = setup.path.clone();
        let mut written = 0;
        let _hook = race::on(&setup.path, move |point| {
            if point == Point::PuttingBack {
                written += 1;
                proxy_write(
                    &path,
                    format!(r#"{{"proxy":{}}}"#, written + 1).as_bytes(),
                    how,
                );
            }
        });
        let swap = setup.replace(EXPECTED);
        let Swap::LocalChanged { kept: Some(kept) } = swap else {
            panic!("{how:?}: {swap:?}");
        };
        // The last write (the eighth put-back's) is live or kept; the one
        // before it is the other.
        let last = format!(r#"{{"proxy":{}}}"#, super::MAX_PUT_BACKS + 1).into_bytes();
        let before = format!(r#"{{"proxy":{}}}"#, super::MAX_PUT_BACKS).into_bytes();
        let mut both = vec![setup.live(), setup.trash(&kept.file)];
        both.sort();
        let mut want = vec![last, before];
        want.sort();
        assert_eq!(both, want, "{how:?}");
        setup.assert_no_temp_left();
    }
}
