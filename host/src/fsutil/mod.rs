//! Durable, private file operations: files 0600, directories 0700, writes
//! atomic (temp file in the same directory, fsync, rename, fsync directory).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use storehost_sdk::layout::TEMP_PREFIX;

pub mod beneath;

pub const FILE_MODE: u32 = 0o600;

/// When a write must be on disk: before returning, or at the next
/// [`sync_filesystem`] that closes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Now,
    Batched,
}

pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and missing parents with mode 0700, and tightens `dir`
/// itself if it already existed with looser bits.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    create_dir_with_mode(dir, false)
}

/// [`create_private_dir`] for a directory an operator named, which may be
/// a link to where it really lives.
pub fn create_private_root(dir: &Path) -> io::Result<()> {
    create_dir_with_mode(dir, true)
}

fn create_dir_with_mode(dir: &Path, follow: bool) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    // Never chmod through a link: that would change a directory elsewhere.
    let meta = match follow {
        true => fs::metadata(dir)?,
        false => fs::symlink_metadata(dir)?,
    };
    if meta.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{} is a symbolic link; refusing to use it as a private directory",
            dir.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode != DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Replaces `path` with `content` so that readers see the old or the new
/// file, never a partial one, and the new one survives a crash.
pub fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    write_atomic_with(path, content, Durability::Now)
}

/// Like [`write_atomic`] without the fsyncs: readers still never see a
/// partial file, and [`sync_filesystem`] makes a whole batch durable at once
/// (10k fsyncs cost seconds; one sync of the filesystem does not).
pub fn write_atomic_unsynced(path: &Path, content: &[u8]) -> io::Result<()> {
    write_atomic_with(path, content, Durability::Batched)
}

/// Temp file, optional fsync, rename, optional directory fsync.
pub fn write_atomic_with(path: &Path, content: &[u8], durability: Durability) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    // Unique per write, so concurrent writers of one path never share a temp file.
    let temp = write_temp(dir, path, content, durability)?;
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    match durability {
        Durability::Now => sync_dir(dir),
        Durability::Batched => Ok(()),
    }
}

/// Writes `content` to a new private temp file beside `path` and returns
/// it, for a rename the caller does itself.
pub fn write_temp(
    dir: &Path,
    path: &Path,
    content: &[u8],
    durability: Durability,
) -> io::Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let temp = dir.join(temp_name(&name.to_string_lossy()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)?;
        file.write_all(content)?;
        if durability == Durability::Now {
            file.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(temp)
}

/// A temp name for writing `name`, unique per write so concurrent writers
/// never share one, and skipped by every listing (the prefix).
pub fn temp_name(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{TEMP_PREFIX}{name}.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Flushes every write on the filesystem holding `path` to disk.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let handle = fs::File::open(path)?;
    rustix::fs::syncfs(&handle).map_err(io::Error::from)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Opens (creating 0600) `path` and takes an exclusive advisory lock on it
/// without waiting; `Ok(None)` when another holder has it. The kernel drops
/// the lock with the file or the process, `kill -9` included.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<fs::File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_dir_is_never_a_link_and_its_target_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let error = create_private_dir(&link).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn atomic_write_is_private_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"{}").unwrap();
        write_atomic(&path, b"{\"a\":1}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dir_tightens_existing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("w");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&sub).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            DIR_MODE
        );
    }
}
