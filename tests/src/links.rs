//! Races a plugin's reads against symlinks swapped in under them: a
//! document, or a directory above one, flips between itself and a link to
//! another document while the plugin reads it. A plugin that checks a path
//! and then opens it reads through a link swapped in between, and serves
//! the other document's content under this key.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use storehost::Key;
use storehost::runtime::Plugin;

/// Exchanges `a` and `b` (either may be a symlink) as fast as it can
/// until the returned guard is dropped, so a failed assertion does not
/// leave the thread spinning.
pub fn keep_swapping(a: PathBuf, b: PathBuf) -> impl Drop {
    struct Swapper(Arc<AtomicBool>, Option<JoinHandle<()>>);
    impl Drop for Swapper {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            let _ = self.1.take().map(JoinHandle::join);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
        let (a, b) = (c(&a), c(&b));
        while !stopped.load(Ordering::Relaxed) {
            // SAFETY: both are NUL-terminated paths that outlive the call.
            let status = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            assert_eq!(status, 0, "renameat2: {}", std::io::Error::last_os_error());
        }
    });
    Swapper(stop, Some(thread))
}

const OWN: &[u8] = br#"{"own":1}"#;

/// Lays out documents in `store` (the directory `plugin` is granted, empty)
/// and reads `x.json`, then `team/a.json`, `reads` times each while it, or
/// `team`, flips with a symlink to another document: every read serves the
/// document's own content or nothing, never the other's.
pub async fn assert_reads_never_follow_a_swapped_link(plugin: &Plugin, store: &Path, reads: usize) {
    let auths = store.join("auths");
    std::fs::create_dir_all(auths.join("team")).unwrap();
    std::fs::create_dir_all(auths.join("elsewhere")).unwrap();
    for (id, content) in [
        ("x.json", OWN),
        ("team/a.json", OWN),
        ("other.json", br#"{"other":1}"#),
        ("elsewhere/a.json", br#"{"other":1}"#),
    ] {
        std::fs::write(auths.join(id), content).unwrap();
    }
    // (relative targets, so each resolves beside the file it replaces)
    std::os::unix::fs::symlink("other.json", store.join("file-link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", store.join("dir-link")).unwrap();
    for (id, link) in [("x.json", "file-link"), ("team/a.json", "dir-link")] {
        let top = id.split('/').next().unwrap();
        let swapping = keep_swapping(auths.join(top), store.join(link));
        let (mut own, mut none, mut leaked) = (0, 0, Vec::new());
        for _ in 0..reads {
            let read = plugin.read(&[Key::auth(id)]).await.unwrap();
            match read.into_iter().next().unwrap() {
                Some(document) if document.content == OWN => own += 1,
                Some(document) => {
                    leaked.push(String::from_utf8_lossy(&document.content).into_owned())
                }
                None => none += 1,
            }
        }
        drop(swapping);
        assert!(
            leaked.is_empty(),
            "{id}: {} of {reads} reads served {:?}",
            leaked.len(),
            leaked[0]
        );
        // (both states were seen: the swap really raced the reads)
        assert!(own > 0 && none > 0, "{id}: own {own}, none {none}");
    }
}
