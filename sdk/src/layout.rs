//! The on-disk layout shared by the host's workspace and the local plugin.

use crate::ids::{MAX_ID_LEN, check_auth_id};
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prefix of temp files written during atomic replaces; never a document.
pub const TEMP_PREFIX: &str = ".storehost-tmp.";

/// A file's modification time and size, as one stat saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub modified: Option<SystemTime>,
    pub size: u64,
}

impl FileStat {
    pub fn from_metadata(meta: &std::fs::Metadata) -> Self {
        FileStat {
            modified: meta.modified().ok(),
            size: meta.len(),
        }
    }

    pub fn modified_ms(&self) -> Option<i64> {
        let age = self.modified?.duration_since(UNIX_EPOCH).ok()?;
        Some(age.as_millis() as i64)
    }
}

/// Every valid auth id under `auth_dir` (recursively), sorted. Temp files
/// and names that are not valid ids are skipped; a missing dir is empty.
pub fn collect_auth_ids(auth_dir: &Path) -> io::Result<Vec<String>> {
    let found = walk(auth_dir, Stat::No)?;
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

/// [`collect_auth_ids`] with each file's stat, taken as it is listed. A
/// file gone before its stat, or no longer a regular file, is left out
/// (symlinks are never listed, here or there).
pub fn list_auth_files(auth_dir: &Path) -> io::Result<Vec<(String, FileStat)>> {
    let found = walk(auth_dir, Stat::Yes)?;
    Ok(found
        .into_iter()
        .filter_map(|(id, stat)| Some((id, stat?)))
        .collect())
}

/// The content of the regular file `id` names beneath `dir`, with the
/// stat of the very file read; None when it is gone, is not a regular
/// file, or lies beneath a symlinked directory. Nothing beneath `dir` is
/// followed when it is a link, and the type is checked on the opened file:
/// a check first and an open after would read through a link swapped in
/// between, and serve another file's content under this id. (`dir`
/// itself is followed, as the listing follows it.) For many reads in one
/// directory, [`FilesBeneath`] opens it once.
pub fn read_regular_file(dir: &Path, id: &str) -> io::Result<Option<(Vec<u8>, FileStat)>> {
    FilesBeneath::open(dir)?.read(id)
}

/// A directory opened once for reads of the regular files beneath it, as
/// [`read_regular_file`] reads them. It is the directory as it was when
/// opened: one replaced meanwhile is not seen.
pub struct FilesBeneath {
    dir: std::path::PathBuf,
    handle: Handle,
}

enum Handle {
    #[cfg(target_os = "wasi")]
    Wasi(wasip2::filesystem::types::Descriptor),
    #[cfg(all(unix, not(target_os = "wasi")))]
    Unix(std::os::fd::OwnedFd),
    /// Through `std::fs`, where no handle-relative open is at hand.
    #[cfg(any(target_os = "wasi", not(unix)))]
    Plain,
    /// No directory there: no files.
    Missing,
}

impl FilesBeneath {
    pub fn open(dir: &Path) -> io::Result<FilesBeneath> {
        let handle = match open_handle(dir) {
            Ok(handle) => handle,
            Err(e) if is_absent(&e) => Handle::Missing,
            Err(e) => return Err(e),
        };
        Ok(FilesBeneath {
            dir: dir.to_path_buf(),
            handle,
        })
    }

    /// See [`read_regular_file`]; an id with an empty, `.` or `..` step
    /// is refused.
    pub fn read(&self, id: &str) -> io::Result<Option<(Vec<u8>, FileStat)>> {
        if id.split('/').any(|part| matches!(part, "" | "." | "..")) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} names no file beneath {}", self.dir.display()),
            ));
        }
        match &self.handle {
            #[cfg(target_os = "wasi")]
            Handle::Wasi(descriptor) => wasi_dir::read(descriptor, id),
            #[cfg(all(unix, not(target_os = "wasi")))]
            Handle::Unix(descriptor) => unix_dir::read(descriptor, id),
            #[cfg(any(target_os = "wasi", not(unix)))]
            Handle::Plain => read_checked(&self.dir, id),
            Handle::Missing => Ok(None),
        }
    }
}

#[cfg(target_os = "wasi")]
fn open_handle(dir: &Path) -> io::Result<Handle> {
    match wasi_dir::open(dir) {
        Some(opened) => opened.map(Handle::Wasi),
        None => Ok(Handle::Plain),
    }
}

#[cfg(all(unix, not(target_os = "wasi")))]
fn open_handle(dir: &Path) -> io::Result<Handle> {
    unix_dir::open(dir).map(Handle::Unix)
}

#[cfg(not(any(unix, target_os = "wasi")))]
fn open_handle(_: &Path) -> io::Result<Handle> {
    Ok(Handle::Plain)
}

/// Gone, or a parent that is not a directory: nothing there.
pub fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Through `std::fs`, checking each step before it is taken: where no
/// handle-relative open is at hand (a guest's directory that no preopen
/// holds plainly, a platform without `openat`).
#[cfg(any(target_os = "wasi", not(unix), test))]
fn read_checked(dir: &Path, id: &str) -> io::Result<Option<(Vec<u8>, FileStat)>> {
    let mut path = dir.to_path_buf();
    let mut last = None;
    for part in id.split('/') {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_symlink() => return Ok(None),
            Ok(meta) => last = Some(meta),
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let Some(meta) = last.filter(std::fs::Metadata::is_file) else {
        return Ok(None);
    };
    match std::fs::read(&path) {
        Ok(content) => Ok(Some((content, FileStat::from_metadata(&meta)))),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stat {
    Yes,
    No,
}

type Found = Vec<(String, Option<FileStat>)>;

fn walk(auth_dir: &Path, stat: Stat) -> io::Result<Found> {
    // A file that vanishes while the directory is read (another writer's
    // temp file, renamed away) fails std's walk in a guest: read again.
    let mut attempts = 0;
    loop {
        let mut found = Vec::new();
        match collect_beneath(auth_dir, stat, &mut found) {
            Ok(()) => {
                found.sort_by(|a, b| a.0.cmp(&b.0));
                return Ok(found);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// In a guest, through `wasi:filesystem` itself where a preopen holds the
/// directory: wasi-libc's `readdir` opens and stats every entry once more
/// for its inode number, which a listing does not need.
#[cfg(target_os = "wasi")]
fn collect_beneath(dir: &Path, stat: Stat, found: &mut Found) -> io::Result<()> {
    match wasi_dir::open(dir) {
        Some(Ok(descriptor)) => wasi_dir::collect(&descriptor, "", stat, found),
        Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Some(Err(e)) => Err(e),
        None => collect(dir, "", stat, found),
    }
}

/// Natively, through directory handles opened with `O_NOFOLLOW`: a
/// subdirectory swapped for a symlink between its listing and its opening
/// is skipped, never followed out of the tree.
#[cfg(all(unix, not(target_os = "wasi")))]
fn collect_beneath(dir: &Path, stat: Stat, found: &mut Found) -> io::Result<()> {
    match unix_dir::open(dir) {
        Ok(descriptor) => unix_dir::collect(descriptor, "", stat, found),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(any(unix, target_os = "wasi")))]
fn collect_beneath(dir: &Path, stat: Stat, found: &mut Found) -> io::Result<()> {
    collect(dir, "", stat, found)
}

/// The id of `name` found under the directory of id `prefix`; None for a
/// temp file.
fn child_id(prefix: &str, name: &str) -> Option<String> {
    if name.starts_with(TEMP_PREFIX) {
        return None;
    }
    Some(match prefix.is_empty() {
        true => name.to_string(),
        false => format!("{prefix}/{name}"),
    })
}

/// Whether a directory of id `prefix` can hold a valid id: one that cannot
/// is not descended into, which also bounds how deep a walk goes.
fn may_hold_ids(prefix: &str) -> bool {
    // (the shortest id within: `prefix/x`)
    prefix.len() + 2 <= MAX_ID_LEN
}

/// Adds a regular file a walk found, if its name is a valid id, with its
/// stat when one is asked for; `stat_now` answers None once the file is
/// gone or no longer a regular file (then it is not there).
fn push_file(
    found: &mut Found,
    id: String,
    stat: Stat,
    stat_now: impl FnOnce() -> io::Result<Option<FileStat>>,
) -> io::Result<()> {
    if check_auth_id(&id).is_err() {
        return Ok(());
    }
    let taken = match stat {
        Stat::No => None,
        Stat::Yes => match stat_now()? {
            Some(taken) => Some(taken),
            None => return Ok(()),
        },
    };
    found.push((id, taken));
    Ok(())
}

/// Through `std::fs`: a guest's directory no preopen holds plainly, or a
/// platform without `openat`.
#[cfg(any(target_os = "wasi", not(unix), test))]
fn collect(dir: &Path, prefix: &str, stat: Stat, found: &mut Found) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // A subdirectory that became a file since its parent was listed
        // is no directory of ids; the root itself must be one.
        Err(e) if e.kind() == io::ErrorKind::NotADirectory && !prefix.is_empty() => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        // (an error ends std's directory stream, so it fails the listing,
        // never cuts it short: a vanished entry is retried by the caller;
        // a name wasi-libc cannot give as UTF-8 fails it)
        let entry = entry?;
        // (a name that is not UTF-8 is no id, and its lossy form names no file)
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(id) = child_id(prefix, &name) else {
            continue;
        };
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            // Gone since the listing: it is not there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if file_type.is_dir() {
            if may_hold_ids(&id) {
                collect(&entry.path(), &id, stat, found)?;
            }
        } else if file_type.is_file() {
            push_file(found, id, stat, || match entry.metadata() {
                Ok(meta) => Ok(meta.is_file().then(|| FileStat::from_metadata(&meta))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            })?;
        }
    }
    Ok(())
}

#[cfg(all(unix, not(target_os = "wasi")))]
mod unix_dir {
    use super::{FileStat, Found, Stat, child_id, may_hold_ids, push_file};
    use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
    use rustix::io::Errno;
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    const DIR_FLAGS: OFlags = OFlags::DIRECTORY
        .union(OFlags::CLOEXEC)
        .union(OFlags::RDONLY);

    /// The listed directory itself, following a link there: the caller
    /// named it.
    pub fn open(path: &Path) -> io::Result<OwnedFd> {
        Ok(rustix::fs::open(path, DIR_FLAGS, Mode::empty())?)
    }

    /// Lists `dir` whole before descending, so a walk holds one handle per
    /// level, however deep the tree.
    pub fn collect(dir: OwnedFd, prefix: &str, stat: Stat, found: &mut Found) -> io::Result<()> {
        let mut subdirectories = Vec::new();
        for entry in Dir::read_from(&dir)? {
            let entry = entry?;
            // (a name that is not UTF-8 is no id, and its lossy form names no file)
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let Some(id) = child_id(prefix, name) else {
                continue;
            };
            // (without a type from the listing, the stat that finds it
            // also serves the file's own)
            let (file_type, early) = match entry.file_type() {
                FileType::Unknown => match stat_of(&dir, entry.file_name())? {
                    Some(stat) => (FileType::from_raw_mode(stat.st_mode), Some(stat)),
                    None => continue,
                },
                known => (known, None),
            };
            match file_type {
                FileType::Directory if may_hold_ids(&id) => {
                    subdirectories.push((entry.file_name().to_owned(), id))
                }
                FileType::RegularFile => push_file(found, id, stat, || {
                    let taken = match early {
                        Some(early) => Some(early),
                        None => stat_of(&dir, entry.file_name())?,
                    };
                    Ok(taken
                        .filter(|taken| {
                            FileType::from_raw_mode(taken.st_mode) == FileType::RegularFile
                        })
                        .map(|taken| file_stat(&taken)))
                })?,
                _ => {}
            }
        }
        let flags = DIR_FLAGS | OFlags::NOFOLLOW;
        for (name, id) in subdirectories {
            match rustix::fs::openat(&dir, &name, flags, Mode::empty()) {
                Ok(sub) => collect(sub, &id, stat, found)?,
                // Gone, or no longer a directory (a symlink is not
                // followed) since the listing: not there.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Opens each step of `id` beneath `dir` without following a link,
    /// then reads the file if the opened one is a regular file.
    pub fn read(dir: &OwnedFd, id: &str) -> io::Result<Option<(Vec<u8>, FileStat)>> {
        let (parents, name) = id.rsplit_once('/').unwrap_or(("", id));
        let mut opened: Option<OwnedFd> = None;
        for part in parents.split('/').filter(|part| !part.is_empty()) {
            let at = opened.as_ref().unwrap_or(dir);
            match rustix::fs::openat(at, part, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()) {
                Ok(sub) => opened = Some(sub),
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let at = opened.as_ref().unwrap_or(dir);
        // (non-blocking, so a FIFO put there is seen for what it is, not waited on)
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let file = match rustix::fs::openat(at, name, flags, Mode::empty()) {
            Ok(file) => file,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stat = rustix::fs::fstat(&file)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Ok(None);
        }
        let mut content = Vec::with_capacity(stat.st_size as usize);
        std::io::Read::read_to_end(&mut std::fs::File::from(file), &mut content)?;
        Ok(Some((content, file_stat(&stat))))
    }

    /// The entry's own stat (a link is not followed); None once it is gone.
    fn stat_of(dir: &impl AsFd, name: &std::ffi::CStr) -> io::Result<Option<rustix::fs::Stat>> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    // (the field types differ between targets)
    #[allow(clippy::unnecessary_cast)]
    fn file_stat(stat: &rustix::fs::Stat) -> FileStat {
        let (seconds, nanos) = (stat.st_mtime as i64, stat.st_mtime_nsec as u32);
        let modified = match u64::try_from(seconds) {
            Ok(after) => UNIX_EPOCH.checked_add(Duration::new(after, nanos)),
            Err(_) => UNIX_EPOCH
                .checked_sub(Duration::from_secs(seconds.unsigned_abs()))
                .and_then(|at| at.checked_add(Duration::from_nanos(nanos.into()))),
        };
        FileStat {
            modified,
            size: stat.st_size as u64,
        }
    }
}

#[cfg(target_os = "wasi")]
mod wasi_dir {
    use super::{FileStat, Found, Stat, child_id, may_hold_ids, push_file};
    use std::io;
    use std::path::{Component, Path};
    use std::time::{Duration, UNIX_EPOCH};
    use wasip2::filesystem::preopens::get_directories;
    use wasip2::filesystem::types::{
        Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, ErrorCode, OpenFlags,
        PathFlags,
    };

    /// The directory at `path`, opened beneath the preopen that holds it
    /// (the longest one that does, as wasi-libc picks); None when none does.
    pub fn open(path: &Path) -> Option<io::Result<Descriptor>> {
        PREOPENS.with(|preopens| open_beneath(preopens, path))
    }

    thread_local! {
        /// An instance's preopens never change: asked for once, not at
        /// every open.
        static PREOPENS: Vec<(Descriptor, String)> = get_directories();
    }

    fn open_beneath(
        preopens: &[(Descriptor, String)],
        path: &Path,
    ) -> Option<io::Result<Descriptor>> {
        let (preopen, rest) = preopens
            .iter()
            .filter_map(|(preopen, at)| {
                let rest = path.strip_prefix(at).ok()?.to_path_buf();
                Some((preopen, rest, at.len()))
            })
            .max_by_key(|(_, _, length)| *length)
            .map(|(preopen, rest, _)| (preopen, rest))?;
        // Only plain names beneath it; anything else is wasi-libc's to resolve.
        if !rest
            .components()
            .all(|part| matches!(part, Component::Normal(_)))
        {
            return None;
        }
        let rest = rest.to_str()?;
        // (the preopen itself is opened afresh, as it stays in the list)
        let rest = if rest.is_empty() { "." } else { rest };
        Some(open_dir(preopen, rest).map_err(to_io))
    }

    pub fn collect(
        dir: &Descriptor,
        prefix: &str,
        stat: Stat,
        found: &mut Found,
    ) -> io::Result<()> {
        let entries = dir.read_directory().map_err(to_io)?;
        loop {
            let entry = match entries.read_directory_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                // One entry's failure, and the stream goes on: a name that
                // is not UTF-8 (no id, and no string to name it by), or an
                // entry gone since the directory was read.
                Err(ErrorCode::IllegalByteSequence | ErrorCode::NoEntry) => continue,
                Err(e) => return Err(to_io(e)),
            };
            let Some(id) = child_id(prefix, &entry.name) else {
                continue;
            };
            match entry.type_ {
                DescriptorType::Directory if !may_hold_ids(&id) => {}
                DescriptorType::Directory => {
                    match open_unfollowed(dir, &entry.name, OpenFlags::DIRECTORY) {
                        Ok(Some(sub)) => collect(&sub, &id, stat, found)?,
                        // Gone, or no longer a directory (a symlink is not
                        // followed) since the listing: not there.
                        Ok(None)
                        | Err(ErrorCode::NoEntry | ErrorCode::NotDirectory | ErrorCode::Loop) => {
                            continue;
                        }
                        Err(e) => return Err(to_io(e)),
                    }
                }
                DescriptorType::RegularFile => push_file(found, id, stat, || {
                    match dir.stat_at(PathFlags::empty(), &entry.name) {
                        Ok(stat) if stat.type_ != DescriptorType::RegularFile => Ok(None),
                        Ok(stat) => Ok(Some(file_stat(&stat))),
                        Err(ErrorCode::NoEntry) => Ok(None),
                        Err(e) => Err(to_io(e)),
                    }
                })?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Opens each step of `id` beneath `dir` without following a link,
    /// then reads the file if the opened one is a regular file.
    pub fn read(dir: &Descriptor, id: &str) -> io::Result<Option<(Vec<u8>, FileStat)>> {
        match read_file(dir, id) {
            Ok(found) => Ok(found),
            Err(ErrorCode::NoEntry | ErrorCode::NotDirectory | ErrorCode::Loop) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    fn read_file(dir: &Descriptor, id: &str) -> Result<Option<(Vec<u8>, FileStat)>, ErrorCode> {
        let (parents, name) = id.rsplit_once('/').unwrap_or(("", id));
        let mut opened: Option<Descriptor> = None;
        for part in parents.split('/').filter(|part| !part.is_empty()) {
            let at = opened.as_ref().unwrap_or(dir);
            match open_unfollowed(at, part, OpenFlags::DIRECTORY)? {
                Some(sub) => opened = Some(sub),
                None => return Ok(None),
            }
        }
        let at = opened.as_ref().unwrap_or(dir);
        // Checked before the open too: opening a FIFO would wait for a
        // writer (wasi:filesystem has no non-blocking open).
        if at.stat_at(PathFlags::empty(), name)?.type_ != DescriptorType::RegularFile {
            return Ok(None);
        }
        let Some(file) = open_unfollowed(at, name, OpenFlags::empty())? else {
            return Ok(None);
        };
        let stat = file.stat()?;
        if stat.type_ != DescriptorType::RegularFile {
            return Ok(None);
        }
        let mut content = Vec::with_capacity(stat.size as usize);
        // (one byte past the stat's size: a short answer once that size is
        // read is the end, and the read that would say so is not needed;
        // the host may answer short before, too)
        let asked = stat.size.saturating_add(1).clamp(1, READ_CHUNK);
        loop {
            let (chunk, end) = file.read(asked, content.len() as u64)?;
            content.extend_from_slice(&chunk);
            let short = (chunk.len() as u64) < asked;
            if end || chunk.is_empty() || (short && content.len() as u64 >= stat.size) {
                break;
            }
        }
        Ok(Some((content, file_stat(&stat))))
    }

    /// Opens `name` in `at` for reading without following it; None when
    /// it is gone or a link. wasmtime-wasi answers `not-permitted` for a
    /// link met unfollowed, so that answer is checked against the entry
    /// itself: a denial while it is no link is retried, and one that
    /// persists is a real one.
    fn open_unfollowed(
        at: &Descriptor,
        name: &str,
        flags: OpenFlags,
    ) -> Result<Option<Descriptor>, ErrorCode> {
        let mut attempts = 0;
        loop {
            let denied = match at.open_at(PathFlags::empty(), name, flags, DescriptorFlags::READ) {
                Ok(opened) => return Ok(Some(opened)),
                Err(ErrorCode::NotPermitted) => ErrorCode::NotPermitted,
                Err(e) => return Err(e),
            };
            match at.stat_at(PathFlags::empty(), name) {
                Ok(stat) if stat.type_ == DescriptorType::SymbolicLink => return Ok(None),
                Err(ErrorCode::NoEntry) => return Ok(None),
                _ if attempts < UNFOLLOWED_ATTEMPTS => attempts += 1,
                _ => return Err(denied),
            }
        }
    }

    /// Opens of an entry that is swapped for a link and back meanwhile.
    const UNFOLLOWED_ATTEMPTS: usize = 8;

    /// Bytes asked for per read of a file.
    const READ_CHUNK: u64 = 1 << 20;

    /// The directory the caller named, following a link there.
    fn open_dir(at: &Descriptor, path: &str) -> Result<Descriptor, ErrorCode> {
        at.open_at(
            PathFlags::SYMLINK_FOLLOW,
            path,
            OpenFlags::DIRECTORY,
            DescriptorFlags::READ,
        )
    }

    fn file_stat(stat: &DescriptorStat) -> FileStat {
        FileStat {
            modified: stat
                .data_modification_timestamp
                .map(|at| UNIX_EPOCH + Duration::new(at.seconds, at.nanoseconds)),
            size: stat.size,
        }
    }

    fn to_io(code: ErrorCode) -> io::Error {
        let kind = match code {
            ErrorCode::NoEntry => io::ErrorKind::NotFound,
            ErrorCode::Access | ErrorCode::NotPermitted => io::ErrorKind::PermissionDenied,
            ErrorCode::NotDirectory => io::ErrorKind::NotADirectory,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, code.message())
    }
}

#[cfg(all(test, unix, not(target_os = "wasi")))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn write(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn lists_regular_files_with_their_stat_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let (auths, outside) = (root.path().join("auths"), root.path().join("outside"));
        write(&auths.join("a.json"), "{}");
        write(&auths.join("team/b.json"), "{\"n\":1}");
        write(&auths.join(format!("{TEMP_PREFIX}c.json")), "{}");
        write(&outside.join("secret.json"), "{}");
        symlink(outside.join("secret.json"), auths.join("link.json")).unwrap();
        symlink(&outside, auths.join("linked-dir")).unwrap();
        let not_utf8 = std::ffi::OsStr::from_bytes(b"bad-\xff.json");
        std::fs::write(auths.join(not_utf8), "{}").unwrap();

        let listed = list_auth_files(&auths).unwrap();
        let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a.json", "team/b.json"]);
        for (id, stat) in &listed {
            let meta = std::fs::symlink_metadata(auths.join(id)).unwrap();
            assert_eq!(*stat, FileStat::from_metadata(&meta), "{id}");
        }
        assert_eq!(collect_auth_ids(&auths).unwrap(), ids);
        assert!(
            collect_auth_ids(&root.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn lists_an_id_of_the_longest_length_and_no_longer() {
        let root = tempfile::tempdir().unwrap();
        let auths = root.path().join("auths");
        let deep = "d/".repeat(385);
        // In the deepest directory that can hold an id, and one level below.
        let longest = format!("{deep}{}/x", "n".repeat(MAX_ID_LEN - 2 - deep.len()));
        write(&auths.join(&longest), "{}");
        write(
            &auths.join(format!(
                "{deep}{}/x",
                "n".repeat(MAX_ID_LEN - 1 - deep.len())
            )),
            "{}",
        );
        assert_eq!(collect_auth_ids(&auths).unwrap(), [longest]);
    }

    /// Runs `body` while another thread keeps exchanging `a` and `b`; the
    /// swapper stops when `body` ends, even by a panic.
    fn while_swapping<T>(a: &Path, b: &Path, body: impl FnOnce() -> T) -> T {
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let (at, to) = (rustix::fs::CWD, rustix::fs::RenameFlags::EXCHANGE);
                    rustix::fs::renameat_with(at, a, at, b, to).unwrap();
                }
            });
            let _stop = StopOnDrop(&stop);
            body()
        })
    }

    /// `auths/sub` flips between a directory and a symlink out of the tree
    /// while it is listed: no listing may ever hold what lies outside.
    #[test]
    fn never_follows_a_subdirectory_swapped_for_a_symlink() {
        const LISTINGS: usize = 20_000;
        let root = tempfile::tempdir().unwrap();
        let (auths, outside) = (root.path().join("auths"), root.path().join("outside"));
        write(&auths.join("sub/inside.json"), "{}");
        write(&outside.join("secret.json"), "{}");
        symlink(&outside, root.path().join("swap")).unwrap();
        let (mut leaked, mut saw_inside) = (Vec::new(), 0);
        while_swapping(&auths.join("sub"), &root.path().join("swap"), || {
            for _ in 0..LISTINGS {
                match collect_auth_ids(&auths) {
                    Ok(ids) if ids.iter().any(|id| id == "sub/secret.json") => leaked.push(ids),
                    Ok(ids) => {
                        saw_inside += usize::from(ids.iter().any(|id| id == "sub/inside.json"))
                    }
                    Err(e) => leaked.push(vec![format!("error: {e}")]),
                }
            }
        });
        assert!(
            leaked.is_empty(),
            "{} listings: {:?}",
            leaked.len(),
            leaked.first()
        );
        // (both states were seen: the swap really raced the listing)
        assert!(saw_inside > 0 && saw_inside < LISTINGS, "{saw_inside}");
    }

    /// A file, and a directory above one, flip between themselves and
    /// links out of the tree while they are read: a read serves the
    /// file's own content or nothing. (The std fallback checks before it
    /// reads, so it is held to the same answers only while nothing moves.)
    #[test]
    fn reads_a_regular_file_and_never_through_a_link_swapped_in() {
        const READS: usize = 10_000;
        let root = tempfile::tempdir().unwrap();
        let (auths, outside) = (root.path().join("auths"), root.path().join("outside"));
        write(&auths.join("a.json"), "own");
        write(&auths.join("team/b.json"), "own");
        write(&outside.join("a.json"), "outside");
        write(&outside.join("b.json"), "outside");
        symlink(outside.join("a.json"), root.path().join("file-link")).unwrap();
        symlink(&outside, root.path().join("dir-link")).unwrap();
        type Reader = fn(&Path, &str) -> io::Result<Option<(Vec<u8>, FileStat)>>;
        let readers: [Reader; 2] = [read_regular_file, read_checked];
        let meta = std::fs::metadata(auths.join("team/b.json")).unwrap();
        symlink(outside.join("a.json"), auths.join("link.json")).unwrap();
        symlink(&outside, auths.join("linked")).unwrap();
        for reader in readers {
            let read = reader(&auths, "team/b.json").unwrap().unwrap();
            assert_eq!(read, (b"own".to_vec(), FileStat::from_metadata(&meta)));
            for id in [
                "link.json",
                "linked/a.json",
                "gone.json",
                "team",
                "a.json/x",
            ] {
                assert!(reader(&auths, id).unwrap().is_none(), "{id}");
            }
        }
        for (id, swapped, link) in [
            ("a.json", "a.json", "file-link"),
            ("team/b.json", "team", "dir-link"),
        ] {
            let (mut own, mut none) = (0, 0);
            while_swapping(&auths.join(swapped), &root.path().join(link), || {
                for _ in 0..READS {
                    match read_regular_file(&auths, id).unwrap() {
                        Some((content, _)) => {
                            assert_eq!(content, b"own", "{id}");
                            own += 1;
                        }
                        None => none += 1,
                    }
                }
            });
            assert!(own > 0 && none > 0, "{id}: own {own}, none {none}");
        }
        for id in ["../outside/a.json", "team/../a.json", "", "/a.json"] {
            let error = read_regular_file(&auths, id).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{id}");
        }
    }

    /// `auths/sub` flips between a directory and a regular file while it
    /// is listed, by the native walk and by the std walk a guest falls
    /// back on: neither listing ever fails or lists anything else.
    #[test]
    fn skips_a_subdirectory_that_turns_into_a_file_mid_listing() {
        const LISTINGS: usize = 10_000;
        let root = tempfile::tempdir().unwrap();
        let auths = root.path().join("auths");
        write(&auths.join("sub/inside.json"), "{}");
        write(&auths.join("top.json"), "{}");
        write(&root.path().join("swap"), "{}");
        // (`sub` itself is a document while it is the file)
        let expected = |id: &String| ["top.json", "sub", "sub/inside.json"].contains(&id.as_str());
        let std_walk = |auths: &Path| {
            let mut found = Vec::new();
            collect(auths, "", Stat::Yes, &mut found).map(|()| found)
        };
        let (mut wrong, mut saw_inside) = (Vec::new(), 0);
        while_swapping(&auths.join("sub"), &root.path().join("swap"), || {
            for _ in 0..LISTINGS {
                let native = list_auth_files(&auths).map(|l| l.into_iter().map(|(id, _)| id));
                let native: io::Result<Vec<String>> = native.map(Iterator::collect);
                let by_std = std_walk(&auths).map(|found| {
                    let listed = found.into_iter().filter(|(_, stat)| stat.is_some());
                    listed.map(|(id, _)| id).collect()
                });
                for ids in [native, by_std] {
                    match ids {
                        Ok(ids) if !ids.iter().all(expected) => wrong.push(ids),
                        Ok(ids) if !ids.iter().any(|id| id == "top.json") => wrong.push(ids),
                        Ok(ids) => saw_inside += usize::from(ids.iter().any(|id| id.contains('/'))),
                        Err(e) => wrong.push(vec![format!("error: {e}")]),
                    }
                }
            }
        });
        assert!(
            wrong.is_empty(),
            "{} listings: {:?}",
            wrong.len(),
            wrong.first()
        );
        assert!(saw_inside > 0 && saw_inside < 2 * LISTINGS, "{saw_inside}");
    }
}
