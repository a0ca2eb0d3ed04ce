//! Directories opened beneath a root one component at a time with
//! `O_NOFOLLOW`, so no symbolic link on the way is ever followed: every
//! create, write, rename and mode change happens relative to a directory
//! handle that is known to lie inside the root. A check of the path first
//! (lstat) and a use of it after would leave a window in which a directory
//! could be swapped for a link; a handle leaves none.

use super::{DIR_MODE, Durability, FILE_MODE, temp_name};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// `O_NOFOLLOW` met a link.
pub fn is_link_error(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// An open directory and, for messages only, the path it was opened as.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Why [`Dir::open_beneath`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("{path} is a symbolic link; storehost never follows one")]
    Symlink { path: String },
    #[error("{path} is not a plain relative path beneath the root")]
    NotBeneath { path: String },
    #[error("cannot open {path}: {source}")]
    Io { path: String, source: io::Error },
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

impl Dir {
    /// Opens `root` itself, following a link there: the operator named it.
    pub fn open_root(root: &Path) -> io::Result<Dir> {
        let flags = OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY;
        let fd = rustix::fs::open(root, flags, Mode::empty())?;
        Ok(Dir {
            fd,
            path: root.to_path_buf(),
        })
    }

    /// Opens the directory `relative` beneath this one without following
    /// any link; with `create`, missing directories are made 0700 and
    /// existing ones tightened to 0700 (through the handle, never a path).
    pub fn open_beneath(&self, relative: &Path, create: bool) -> Result<Dir, BeneathError> {
        let mut current = self.try_clone().map_err(|source| self.io(source))?;
        for component in relative.components() {
            let Component::Normal(name) = component else {
                return Err(BeneathError::NotBeneath {
                    path: relative.display().to_string(),
                });
            };
            current = current.child(Path::new(name), create)?;
        }
        Ok(current)
    }

    fn child(&self, name: &Path, create: bool) -> Result<Dir, BeneathError> {
        let path = self.path.join(name);
        let fail = |source: io::Error| BeneathError::Io {
            path: path.display().to_string(),
            source,
        };
        if create {
            match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(fail(e.into())),
            }
        }
        let fd = match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(_) if self.is_link(name) => {
                return Err(BeneathError::Symlink {
                    path: path.display().to_string(),
                });
            }
            Err(e) => return Err(fail(e.into())),
        };
        if create {
            tighten(&fd, DIR_MODE).map_err(fail)?;
        }
        Ok(Dir { fd, path })
    }

    pub fn is_link(&self, name: &Path) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
    }

    /// Whether `name` is a directory (a link there is not followed).
    pub fn is_dir(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
    }

    /// Removes the directory `name` if it is empty; fails otherwise (the
    /// kernel checks, so nothing created in it meanwhile is lost).
    pub fn remove_empty_dir(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).map_err(io::Error::from)
    }

    fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    fn io(&self, source: io::Error) -> BeneathError {
        BeneathError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Where `name` in this directory is, for messages.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `content` to a new private temp file for `name` and returns
    /// the temp file's name, for a rename the caller does itself.
    pub fn write_temp(
        &self,
        name: &str,
        content: &[u8],
        durability: Durability,
    ) -> io::Result<String> {
        let temp = temp_name(name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, &temp, flags, Mode::from_raw_mode(FILE_MODE))?;
        let mut file = std::fs::File::from(fd);
        let written = file.write_all(content).and_then(|()| match durability {
            Durability::Now => file.sync_all(),
            Durability::Batched => Ok(()),
        });
        if let Err(e) = written {
            let _ = self.remove(&temp);
            return Err(e);
        }
        Ok(temp)
    }

    /// Atomically replaces (or creates) `name` with `content`; a link at
    /// `name` is replaced, never followed.
    pub fn write_atomic(
        &self,
        name: &str,
        content: &[u8],
        durability: Durability,
    ) -> io::Result<()> {
        let temp = self.write_temp(name, content, durability)?;
        if let Err(e) = self.rename(&temp, self, name, RenameFlags::empty()) {
            let _ = self.remove(&temp);
            return Err(e);
        }
        match durability {
            Durability::Now => self.sync(),
            Durability::Batched => Ok(()),
        }
    }

    /// `renameat2` from `from` here to `to` in `target`.
    pub fn rename(&self, from: &str, target: &Dir, to: &str, flags: RenameFlags) -> io::Result<()> {
        rustix::fs::renameat_with(&self.fd, from, &target.fd, to, flags).map_err(io::Error::from)
    }

    /// Reads `name`, refusing a link there (`ELOOP`) and a name that is
    /// not one entry of this directory (a `/` in it would walk past the
    /// handle's guarantee).
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a file name"),
            ));
        }
        // Non-blocking, so a FIFO put in place of a document cannot hang
        // the reader; only a regular file is read.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())?;
        let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
        if kind != rustix::fs::FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.path_of(name).display()),
            ));
        }
        let mut content = Vec::new();
        io::Read::read_to_end(&mut std::fs::File::from(fd), &mut content)?;
        Ok(content)
    }

    /// The names of this directory's entries, read through the handle
    /// (`.`, `..` and names that are not UTF-8 left out).
    pub fn entry_names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().to_str()
                && name != "."
                && name != ".."
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    /// Removes the file `name` (a link there is removed, not followed).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(io::Error::from)
    }

    /// Sets 0600 on the file `name` (0700 if it is a directory) through a
    /// handle opened without following a link; a link is left alone.
    pub fn tighten(&self, name: &str) -> io::Result<()> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let is_dir =
            FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) == FileType::Directory;
        match is_dir {
            true => tighten(&fd, DIR_MODE),
            false => tighten(&fd, FILE_MODE),
        }
    }

    /// Whether the directory was removed since it was opened (a handle
    /// keeps an unlinked directory alive; nothing written there is seen).
    pub fn is_removed(&self) -> bool {
        rustix::fs::fstat(&self.fd).map_or(true, |stat| stat.st_nlink == 0)
    }

    /// Makes the directory's entries (renames, creates) durable.
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(io::Error::from)
    }
}

fn tighten(fd: &impl AsFd, wanted: u32) -> io::Result<()> {
    let mode = rustix::fs::fstat(fd)?.st_mode & 0o777;
    if mode != wanted {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(wanted))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn outside_dir(root: &Path) -> PathBuf {
        let outside = root.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
        outside
    }

    #[test]
    fn a_link_on_the_way_is_refused_and_nothing_outside_changes() {
        let temp = tempfile::tempdir().unwrap();
        let outside = outside_dir(temp.path());
        let ws = temp.path().join("ws");
        fs::create_dir(&ws).unwrap();
        symlink(&outside, ws.join("auths")).unwrap();
        let root = Dir::open_root(&ws).unwrap();
        for relative in ["auths", "auths/team"] {
            let error = root.open_beneath(Path::new(relative), true).unwrap_err();
            assert!(matches!(error, BeneathError::Symlink { .. }), "{error}");
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(mode(&outside), 0o755);
        let error = root.open_beneath(Path::new("../x"), true).unwrap_err();
        assert!(matches!(error, BeneathError::NotBeneath { .. }), "{error}");
    }

    #[test]
    fn a_directory_swapped_for_a_link_after_opening_is_not_followed() {
        let temp = tempfile::tempdir().unwrap();
        let outside = outside_dir(temp.path());
        let ws = temp.path().join("ws");
        fs::create_dir(&ws).unwrap();
        let auths = Dir::open_root(&ws)
            .unwrap()
            .open_beneath(Path::new("auths"), true)
            .unwrap();
        assert_eq!(mode(&ws.join("auths")), 0o700);
        fs::rename(ws.join("auths"), ws.join("moved")).unwrap();
        symlink(&outside, ws.join("auths")).unwrap();
        auths
            .write_atomic("a.json", b"{}", Durability::Now)
            .unwrap();
        assert_eq!(fs::read(ws.join("moved/a.json")).unwrap(), b"{}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_link_at_the_file_name_is_replaced_or_left_never_followed() {
        let temp = tempfile::tempdir().unwrap();
        let outside = outside_dir(temp.path());
        let target = outside.join("target.json");
        fs::write(&target, b"outside").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let ws = temp.path().join("ws");
        fs::create_dir(&ws).unwrap();
        symlink(&target, ws.join("a.json")).unwrap();
        symlink(&target, ws.join("b.json")).unwrap();
        let root = Dir::open_root(&ws).unwrap();
        root.tighten("b.json").unwrap();
        assert_eq!(mode(&target), 0o644, "no chmod through a link");
        assert!(is_link_error(&root.read("b.json").unwrap_err()));
        root.write_atomic("a.json", b"{}", Durability::Now).unwrap();
        assert_eq!(fs::read(ws.join("a.json")).unwrap(), b"{}");
        assert_eq!(fs::read(&target).unwrap(), b"outside");
        assert_eq!(mode(&ws.join("a.json")), FILE_MODE);
    }
}
