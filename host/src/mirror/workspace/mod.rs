//! The workspace layout (`config/config.yaml`, `auths/<id>`, `.storehost/`)
//! and content rules: ids that stay inside `auths/`, auths that are JSON
//! objects, configs that are UTF-8 YAML.

use crate::fsutil::beneath::{BeneathError, Dir, is_link_error};
use crate::fsutil::{self, Durability};
use crate::model::{CONFIG_ID, Key, Kind};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use storehost_sdk::ids::check_auth_id;
use storehost_sdk::layout::collect_auth_ids;

mod swap;
#[cfg(test)]
pub(crate) use swap::race;
pub use swap::{Swap, TrashedFile, path_in_trash_name};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("invalid auth id {id:?}: {problem}")]
    InvalidId { id: String, problem: String },
    #[error("auth {id:?} is not a JSON object: {reason}")]
    InvalidAuth { id: String, reason: String },
    #[error("config is not valid YAML: {reason}")]
    InvalidConfig { reason: String },
    #[error("{0} is backend metadata, never a workspace file")]
    NotAWorkspaceDocument(String),
    #[error("{path} is outside the auth directory {auth_dir}")]
    OutsideAuthDir { path: String, auth_dir: String },
    #[error("{path} is a symbolic link; storehost never follows one")]
    Symlink { path: String },
    #[error("{path} is a directory of documents; a document of that name cannot be written there")]
    DirectoryInTheWay { path: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: io::Error,
    },
}

/// The local workspace directory.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    /// Set on a batch's copy (see [`Workspace::batch`]).
    open_dirs: Option<Arc<OpenDirs>>,
}

/// Directory handles opened once for a batch of file operations: opening
/// one beneath the root costs five system calls, and a batch of
/// thousands of documents mostly shares one directory.
#[derive(Debug, Default)]
struct OpenDirs {
    by_path: Mutex<HashMap<(PathBuf, bool), Arc<Dir>>>,
}

impl Workspace {
    /// The root is made absolute (without resolving links): the watcher
    /// reports absolute paths, and `./ws` must name the same files as `ws`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Workspace {
            root: std::path::absolute(&root).unwrap_or(root),
            open_dirs: None,
        }
    }

    /// A copy for one batch of file operations that keeps the directories
    /// it opens. Kept only as long as the batch: a directory removed
    /// meanwhile is opened (and made) again, never written into unseen.
    pub fn batch(&self) -> Workspace {
        Workspace {
            root: self.root.clone(),
            open_dirs: Some(Arc::default()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config").join(CONFIG_ID)
    }

    pub fn auth_dir(&self) -> PathBuf {
        self.root.join("auths")
    }

    /// The host's own state; never mirrored.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    fn open_root(&self) -> Result<Dir, WorkspaceError> {
        Dir::open_root(&self.root).map_err(|source| io_error("open", &self.root, source))
    }

    /// A directory of the workspace, opened (and with `create` made, 0700)
    /// without following a link on the way.
    fn open_dir(&self, relative: &Path, create: bool) -> Result<Arc<Dir>, WorkspaceError> {
        let Some(open_dirs) = &self.open_dirs else {
            return Ok(Arc::new(self.open_root()?.open_beneath(relative, create)?));
        };
        let slot = (relative.to_path_buf(), create);
        let kept = open_dirs.lock().get(&slot).cloned();
        if let Some(dir) = kept.filter(|dir| !dir.is_removed()) {
            return Ok(dir);
        }
        let dir = Arc::new(self.open_root()?.open_beneath(relative, create)?);
        open_dirs.lock().insert(slot, Arc::clone(&dir));
        Ok(dir)
    }

    /// The directory holding `key`'s file and the file's name there.
    fn document_dir(&self, key: &Key, create: bool) -> Result<(Arc<Dir>, String), WorkspaceError> {
        let path = self.path_of(key)?;
        let relative = path
            .strip_prefix(&self.root)
            .expect("documents live in the workspace");
        let name = relative
            .file_name()
            .and_then(|name| name.to_str())
            .expect("document ids are UTF-8 with a last segment")
            .to_string();
        let parent = relative.parent().unwrap_or(Path::new(""));
        Ok((self.open_dir(parent, create)?, name))
    }

    /// [`Self::document_dir`] without creating it; `None` when a directory
    /// on the way is missing or is a file (then the document is absent).
    fn existing_document_dir(
        &self,
        key: &Key,
    ) -> Result<Option<(Arc<Dir>, String)>, WorkspaceError> {
        match self.document_dir(key, false) {
            Err(WorkspaceError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            found => found.map(Some),
        }
    }

    fn trash(&self) -> Result<Arc<Dir>, WorkspaceError> {
        self.open_dir(&Path::new(STATE_DIR).join(TRASH_DIR), true)
    }

    /// Creates the layout with private permissions.
    pub fn create(&self) -> Result<(), WorkspaceError> {
        fsutil::create_private_root(&self.root)
            .map_err(|source| io_error("create", &self.root, source))?;
        let root = self.open_root()?;
        for dir in ["config", "auths", STATE_DIR] {
            root.open_beneath(Path::new(dir), true)?;
        }
        Ok(())
    }

    pub fn path_of(&self, key: &Key) -> Result<PathBuf, WorkspaceError> {
        match key.kind {
            Kind::Config => Ok(self.config_path()),
            Kind::Auth | Kind::Cooldown => {
                check_id(&key.id)?;
                Ok(self.auth_dir().join(&key.id))
            }
            Kind::Meta => Err(WorkspaceError::NotAWorkspaceDocument(key.to_string())),
        }
    }

    /// The auth id of a path given absolute or relative to the auth dir.
    pub fn auth_id_of(&self, path: &Path) -> Result<String, WorkspaceError> {
        let auth_dir = self.auth_dir();
        let relative = if path.is_absolute() {
            path.strip_prefix(&auth_dir)
                .map_err(|_| WorkspaceError::OutsideAuthDir {
                    path: path.display().to_string(),
                    auth_dir: auth_dir.display().to_string(),
                })?
        } else {
            path
        };
        let id = relative.to_str().ok_or_else(|| WorkspaceError::InvalidId {
            id: relative.display().to_string(),
            problem: "not UTF-8".into(),
        })?;
        check_id(id)?;
        Ok(id.to_string())
    }

    /// The document's bytes, read without following a link anywhere
    /// beneath the workspace: a link placed as an auth file (say, to a key
    /// elsewhere on the machine) is refused, never read and pushed.
    pub fn read(&self, key: &Key) -> Result<Option<Vec<u8>>, WorkspaceError> {
        let Some((dir, name)) = self.existing_document_dir(key)? else {
            return Ok(None);
        };
        match dir.read(&name) {
            Ok(content) => Ok(Some(content)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // A directory of documents where this one was: it is absent.
            Err(_) if dir.is_dir(&name) => Ok(None),
            Err(source) => Err(read_error(&dir.path_of(&name), source)),
        }
    }

    /// Writes atomically and durably with mode 0600, creating private
    /// parent dirs.
    pub fn write(&self, key: &Key, content: &[u8]) -> Result<(), WorkspaceError> {
        self.write_with(key, content, Durability::Now)
    }

    pub fn write_with(
        &self,
        key: &Key,
        content: &[u8],
        durability: Durability,
    ) -> Result<(), WorkspaceError> {
        let (dir, name) = self.document_dir(key, true)?;
        dir.write_atomic(&name, content, durability)
            .map_err(|source| io_error("write", &dir.path_of(&name), source))
    }

    /// Makes every batched write durable.
    pub fn sync(&self) -> Result<(), WorkspaceError> {
        fsutil::sync_filesystem(&self.root).map_err(|source| io_error("sync", &self.root, source))
    }

    pub fn remove(&self, key: &Key) -> Result<(), WorkspaceError> {
        let Some((dir, name)) = self.existing_document_dir(key)? else {
            return Ok(());
        };
        match dir.remove(&name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io_error("remove", &dir.path_of(&name), source)),
        }
    }

    /// Files the plugin wrote through WASI get the default mode; this makes
    /// a document and the directories up to the workspace private.
    pub fn secure(&self, key: &Key) -> Result<(), WorkspaceError> {
        fsutil::create_private_root(&self.root)
            .map_err(|source| io_error("secure", &self.root, source))?;
        let (dir, name) = self.document_dir(key, true)?;
        match dir.tighten(&name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io_error("secure", &dir.path_of(&name), source)),
        }
    }

    /// Writes `content` beside `key` as `<name>.conflict-<unix ms>` and
    /// returns that path, relative to the workspace. Never over an earlier
    /// copy: one made in the same millisecond takes the next stamp.
    pub fn keep_conflict_copy(&self, key: &Key, content: &[u8]) -> Result<String, WorkspaceError> {
        let (dir, name) = self.document_dir(key, true)?;
        let temp = dir
            .write_temp(&name, content, Durability::Now)
            .map_err(|source| io_error("write", &dir.path_of(&name), source))?;
        let mut stamp = crate::mirror::now_ms();
        loop {
            let copy = format!("{name}{CONFLICT_MARK}{stamp}");
            let path = dir.path_of(&copy);
            match dir.rename(&temp, &dir, &copy, rustix::fs::RenameFlags::NOREPLACE) {
                Ok(()) => {
                    dir.sync()
                        .map_err(|source| io_error("sync", &path, source))?;
                    return Ok(path
                        .strip_prefix(&self.root)
                        .unwrap_or(&path)
                        .display()
                        .to_string());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => stamp += 1,
                Err(source) => {
                    let _ = dir.remove(&temp);
                    return Err(io_error("write", &path, source));
                }
            }
        }
    }

    /// Auth ids of every file under `auths/`, sorted; temp files skipped.
    pub fn auth_ids(&self) -> Result<Vec<String>, WorkspaceError> {
        let dir = self.auth_dir();
        collect_auth_ids(&dir).map_err(|source| io_error("list", &dir, source))
    }
}

impl OpenDirs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(PathBuf, bool), Arc<Dir>>> {
        // A panic elsewhere leaves the map whole: it only caches handles.
        self.by_path.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const STATE_DIR: &str = ".storehost";
const TRASH_DIR: &str = "trash";

fn symlink(path: &Path) -> WorkspaceError {
    WorkspaceError::Symlink {
        path: path.display().to_string(),
    }
}

/// A failed read of `path` through a directory handle: a link there is
/// named as one, anything else is an I/O error.
fn read_error(path: &Path, source: io::Error) -> WorkspaceError {
    if is_link_error(&source) {
        symlink(path)
    } else {
        io_error("read", path, source)
    }
}

impl From<BeneathError> for WorkspaceError {
    fn from(error: BeneathError) -> Self {
        match error {
            BeneathError::Symlink { path } => WorkspaceError::Symlink { path },
            BeneathError::NotBeneath { path } => WorkspaceError::InvalidId {
                id: path,
                problem: "it is not a plain path beneath the workspace".into(),
            },
            BeneathError::Io { path, source } => WorkspaceError::Io {
                action: "open",
                path,
                source,
            },
        }
    }
}

const CONFLICT_MARK: &str = ".conflict-";

/// Conflict copies stay local: they are never uploaded as documents.
pub fn is_conflict_copy(id: &str) -> bool {
    id.rsplit_once(CONFLICT_MARK)
        .is_some_and(|(_, stamp)| !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()))
}

fn check_id(id: &str) -> Result<(), WorkspaceError> {
    check_auth_id(id).map_err(|problem| WorkspaceError::InvalidId {
        id: id.to_string(),
        problem: problem.to_string(),
    })
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> WorkspaceError {
    WorkspaceError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Equal content: the same bytes, or for auths the same JSON (a backend
/// such as PostgreSQL's JSONB may store it in its own canonical form).
pub fn same_document(key: &Key, a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    matches!(key.kind, Kind::Auth | Kind::Cooldown)
        && matches!(
            (serde_json::from_slice::<serde_json::Value>(a), serde_json::from_slice::<serde_json::Value>(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// A document's content as it may stand in the workspace: an auth or
/// cooldown state that parses as the proxy reads it, a config that is
/// UTF-8 YAML (returned with `\n` line endings).
pub fn validate_document(key: &Key, content: Vec<u8>) -> Result<Vec<u8>, WorkspaceError> {
    match key.kind {
        Kind::Auth => validate_auth(&key.id, &content).map(|()| content),
        Kind::Cooldown => validate_cooldown(&key.id, &content).map(|()| content),
        Kind::Config | Kind::Meta => normalize_config(&content),
    }
}

/// Cooldown state must load in the proxy, where one bad file loses every
/// cooldown: a JSON object whose `records` (any case) is an array of
/// objects, each naming its auth.
pub fn validate_cooldown(id: &str, content: &[u8]) -> Result<(), WorkspaceError> {
    let invalid = |reason: String| WorkspaceError::InvalidAuth {
        id: id.to_string(),
        reason,
    };
    let value =
        serde_json::from_slice::<serde_json::Value>(content).map_err(|e| invalid(e.to_string()))?;
    let serde_json::Value::Object(document) = value else {
        return Err(invalid(format!("found a JSON {}", json_kind(&value))));
    };
    let records = document
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("records"))
        .map(|(_, records)| records);
    let records = match records {
        None | Some(serde_json::Value::Null) => return Ok(()),
        Some(serde_json::Value::Array(records)) => records,
        Some(other) => return Err(invalid(format!("`records` is a JSON {}", json_kind(other)))),
    };
    for record in records {
        let names_its_auth = record.as_object().is_some_and(|record| {
            record.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case("auth_id")
                    && value.as_str().is_some_and(|id| !id.trim().is_empty())
            })
        });
        if !names_its_auth {
            return Err(invalid(
                "a record is not an object with an `auth_id`".into(),
            ));
        }
    }
    Ok(())
}

/// An auth document must be a JSON object.
pub fn validate_auth(id: &str, content: &[u8]) -> Result<(), WorkspaceError> {
    let invalid = |reason: String| WorkspaceError::InvalidAuth {
        id: id.to_string(),
        reason,
    };
    match serde_json::from_slice::<serde_json::Value>(content) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(other) => Err(invalid(format!("found a JSON {}", json_kind(&other)))),
        Err(e) => Err(invalid(e.to_string())),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// A config must be UTF-8 YAML; returns it with `\n` line endings.
pub fn normalize_config(content: &[u8]) -> Result<Vec<u8>, WorkspaceError> {
    let text = std::str::from_utf8(content).map_err(|e| WorkspaceError::InvalidConfig {
        reason: format!("not UTF-8: {e}"),
    })?;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    yaml_rust2::YamlLoader::load_from_str(&text).map_err(|e| WorkspaceError::InvalidConfig {
        reason: e.to_string(),
    })?;
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_content_must_be_a_json_object() {
        assert!(validate_auth("a", br#"{"type":"claude"}"#).is_ok());
        for bad in [&b"[1]"[..], b"\"s\"", b"{", b"", b"null"] {
            assert!(
                matches!(
                    validate_auth("a", bad),
                    Err(WorkspaceError::InvalidAuth { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn config_is_yaml_with_normalised_line_endings() {
        assert_eq!(
            normalize_config(b"a: 1\r\nb: 2\r").unwrap(),
            b"a: 1\nb: 2\n"
        );
        assert_eq!(normalize_config(b"").unwrap(), b"");
        assert!(matches!(
            normalize_config(b"a: [1, 2"),
            Err(WorkspaceError::InvalidConfig { .. })
        ));
        assert!(matches!(
            normalize_config(b"\xff\xfe"),
            Err(WorkspaceError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn paths_map_to_ids_only_inside_the_auth_dir() {
        let ws = Workspace::new("/w");
        assert_eq!(
            ws.auth_id_of(Path::new("/w/auths/team/a.json")).unwrap(),
            "team/a.json"
        );
        assert_eq!(ws.auth_id_of(Path::new("b.json")).unwrap(), "b.json");
        assert!(matches!(
            ws.auth_id_of(Path::new("/w/config/config.yaml")),
            Err(WorkspaceError::OutsideAuthDir { .. })
        ));
        assert!(matches!(
            ws.auth_id_of(Path::new("../x")),
            Err(WorkspaceError::InvalidId { .. })
        ));
        assert!(matches!(
            ws.path_of(&Key::auth("../../etc/passwd")),
            Err(WorkspaceError::InvalidId { .. })
        ));
    }

    #[test]
    fn a_batch_reopens_a_directory_removed_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::new(dir.path().join("w"));
        workspace.create().unwrap();
        let batch = workspace.batch();
        let first = Key::auth("team/a.json");
        batch
            .replace_if(&first, b"{}", None, Durability::Now)
            .unwrap();
        std::fs::remove_dir_all(workspace.auth_dir().join("team")).unwrap();

        let second = Key::auth("team/b.json");
        let swap = batch
            .replace_if(&second, b"{\"b\":1}", None, Durability::Now)
            .unwrap();
        assert!(matches!(swap, Swap::Done { previous: None }));
        let written = workspace.auth_dir().join("team/b.json");
        assert_eq!(std::fs::read(written).unwrap(), b"{\"b\":1}");
    }

    mod properties {
        use super::*;
        use crate::mirror::paths::{key_of_path, path_key};
        use proptest::prelude::*;

        fn id_like() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                "[a-zA-Z0-9@._-]{1,10}",
                Just("..".to_string()),
                Just(".".to_string()),
                Just(String::new()),
                "\\PC{1,3}",
            ];
            prop::collection::vec(segment, 1..5).prop_map(|segments| segments.join("/"))
        }

        proptest! {
            #[test]
            fn an_auth_path_maps_back_to_its_id_and_stays_inside(id in id_like()) {
                let workspace = Workspace::new("/ws");
                let key = Key::auth(id.clone());
                match workspace.path_of(&key) {
                    Ok(path) => {
                        prop_assert!(check_auth_id(&id).is_ok());
                        prop_assert!(path.starts_with(workspace.auth_dir()));
                        prop_assert_eq!(workspace.auth_id_of(&path).unwrap(), id.clone());
                        let relative = path.strip_prefix(workspace.auth_dir()).unwrap();
                        prop_assert_eq!(workspace.auth_id_of(relative).unwrap(), id);
                        prop_assert_eq!(key_of_path(&path_key(&key)), Some(key));
                    }
                    Err(error) => {
                        prop_assert!(check_auth_id(&id).is_err());
                        prop_assert!(matches!(error, WorkspaceError::InvalidId { .. }), "{}", error);
                    }
                }
            }

            #[test]
            fn a_path_outside_the_auth_dir_is_never_an_id(path in "/[a-z./]{0,20}") {
                let workspace = Workspace::new("/ws");
                let path = Path::new(&path);
                if let Ok(id) = workspace.auth_id_of(path) {
                    prop_assert!(path.starts_with("/ws/auths"));
                    prop_assert_eq!(workspace.auth_dir().join(id), path.to_path_buf());
                }
            }
        }
    }
}
