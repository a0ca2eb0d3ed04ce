//! Where documents live in a remote that stores them as paths (object keys,
//! repository files), compatible with existing deployments:
//! `config/config.yaml` and `auths/<id>`; storehost's own metadata under
//! `.storehost/meta/`. Paths that would escape the layout are refused both
//! ways.

use crate::ids::check_auth_id;
use crate::{CONFIG_ID, Error, Key, Kind};

pub const CONFIG_PATH: &str = "config/config.yaml";
pub const AUTH_PREFIX: &str = "auths/";
pub const META_PREFIX: &str = ".storehost/meta/";

/// The remote path of a document.
pub fn path_of(key: &Key) -> Result<String, Error> {
    let checked = |id: &str| {
        check_auth_id(id).map_err(|problem| Error::Invalid(format!("id {id:?}: {problem}")))
    };
    match key.kind {
        Kind::Config if key.id == CONFIG_ID => Ok(CONFIG_PATH.into()),
        Kind::Config => Err(Error::Invalid(format!("config id must be `{CONFIG_ID}`"))),
        Kind::Auth => checked(&key.id).map(|()| format!("{AUTH_PREFIX}{}", key.id)),
        Kind::Meta => checked(&key.id).map(|()| format!("{META_PREFIX}{}", key.id)),
    }
}

/// The document a remote path stands for; `None` for paths outside the
/// layout or with ids that could never be files (`..`, absolute, ...).
pub fn key_of(path: &str) -> Option<Key> {
    if path == CONFIG_PATH {
        return Some(Key {
            kind: Kind::Config,
            id: CONFIG_ID.into(),
        });
    }
    let (kind, id) = if let Some(id) = path.strip_prefix(AUTH_PREFIX) {
        (Kind::Auth, id)
    } else {
        (Kind::Meta, path.strip_prefix(META_PREFIX)?)
    };
    check_auth_id(id).ok()?;
    Some(Key {
        kind,
        id: id.into(),
    })
}
