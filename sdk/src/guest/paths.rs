//! Where documents live in a remote that stores them as paths (object keys,
//! repository files), compatible with existing deployments:
//! `config/config.yaml` and `auths/<id>` (auths, and cooldown state: the
//! `*.cds` files beside them); storehost's own metadata under
//! `.storehost/meta/`. Paths that would escape the layout are refused both
//! ways.

use crate::ids::{check_auth_id, check_cooldown_id, is_cooldown_id};
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
        Kind::Auth if is_cooldown_id(&key.id) => Err(Error::Invalid(format!(
            "auth id {:?} ends in `.cds`, which is cooldown state",
            key.id
        ))),
        Kind::Auth => checked(&key.id).map(|()| format!("{AUTH_PREFIX}{}", key.id)),
        Kind::Cooldown => check_cooldown_id(&key.id)
            .map(|()| format!("{AUTH_PREFIX}{}", key.id))
            .map_err(|problem| Error::Invalid(format!("id {:?}: {problem}", key.id))),
        Kind::Meta => checked(&key.id).map(|()| format!("{META_PREFIX}{}", key.id)),
    }
}

/// The content type a document is stored with where the remote keeps one.
pub fn content_type(key: &Key) -> &'static str {
    match key.kind {
        Kind::Config => "application/x-yaml",
        Kind::Auth | Kind::Cooldown => "application/json",
        Kind::Meta => "text/plain",
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
        match is_cooldown_id(id) {
            true => (Kind::Cooldown, id),
            false => (Kind::Auth, id),
        }
    } else {
        (Kind::Meta, path.strip_prefix(META_PREFIX)?)
    };
    check_auth_id(id).ok()?;
    Some(Key {
        kind,
        id: id.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path_like() -> impl Strategy<Value = String> {
        let prefix = prop_oneof![
            Just(AUTH_PREFIX),
            Just(META_PREFIX),
            Just("config/"),
            Just(""),
            Just("auths"),
        ];
        let rest = prop_oneof![
            "[a-z0-9./]{0,16}",
            Just("config.yaml".to_string()),
            Just("../x.json".to_string()),
            Just("team/a_b.com.cds".to_string()),
            Just("A.CDS".to_string()),
            "\\PC{0,8}",
        ];
        (prefix, rest).prop_map(|(prefix, rest)| format!("{prefix}{rest}"))
    }

    proptest! {
        #[test]
        fn a_path_read_as_a_key_maps_back_to_itself(path in path_like()) {
            if let Some(key) = key_of(&path) {
                prop_assert_eq!(path_of(&key).unwrap(), path);
                prop_assert!(!key.id.split('/').any(|s| s == ".." || s.is_empty()));
            }
        }

        #[test]
        fn a_key_written_as_a_path_reads_back_as_itself(id in "[a-zA-Z0-9@._/-]{1,24}(\\.cds|\\.json)?", kind in 0u8..4) {
            let kind = [Kind::Config, Kind::Auth, Kind::Meta, Kind::Cooldown][kind as usize];
            let key = Key { kind, id };
            match path_of(&key) {
                Ok(path) => {
                    let back = key_of(&path).expect("a path we wrote is ours");
                    prop_assert_eq!((back.kind as u8, back.id), (key.kind as u8, key.id));
                }
                Err(_) => {
                    let refused_for_a_reason = match key.kind {
                        Kind::Config => true,
                        Kind::Auth => check_auth_id(&key.id).is_err() || is_cooldown_id(&key.id),
                        Kind::Cooldown => check_cooldown_id(&key.id).is_err(),
                        Kind::Meta => check_auth_id(&key.id).is_err(),
                    };
                    prop_assert!(refused_for_a_reason);
                }
            }
        }
    }
}
