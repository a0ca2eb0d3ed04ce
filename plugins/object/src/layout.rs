//! Where documents live in the bucket (compatible with existing
//! deployments): `config/config.yaml` and `auths/<id>`; storehost's own
//! metadata under `.storehost/meta/`. Keys that would escape the layout
//! are refused both ways.

use storehost_sdk::ids::check_auth_id;
use storehost_sdk::{CONFIG_ID, Error, Key, Kind};

pub const CONFIG_OBJECT: &str = "config/config.yaml";
pub const AUTH_PREFIX: &str = "auths/";
pub const META_PREFIX: &str = ".storehost/meta/";
/// Objects storehost writes to learn what the server honours.
pub const PROBE_PREFIX: &str = ".storehost/probe/";

/// The object key of a document.
pub fn object_key(key: &Key) -> Result<String, Error> {
    let checked = |id: &str| {
        check_auth_id(id).map_err(|problem| Error::Invalid(format!("id {id:?}: {problem}")))
    };
    match key.kind {
        Kind::Config if key.id == CONFIG_ID => Ok(CONFIG_OBJECT.into()),
        Kind::Config => Err(Error::Invalid(format!("config id must be `{CONFIG_ID}`"))),
        Kind::Auth => checked(&key.id).map(|()| format!("{AUTH_PREFIX}{}", key.id)),
        Kind::Meta => checked(&key.id).map(|()| format!("{META_PREFIX}{}", key.id)),
    }
}

/// The document an object stands for; `None` for objects outside the
/// layout or with ids that could never be files (`..`, absolute, ...).
pub fn document_key(object: &str) -> Option<Key> {
    if object == CONFIG_OBJECT {
        return Some(Key {
            kind: Kind::Config,
            id: CONFIG_ID.into(),
        });
    }
    let (kind, id) = if let Some(id) = object.strip_prefix(AUTH_PREFIX) {
        (Kind::Auth, id)
    } else {
        (Kind::Meta, object.strip_prefix(META_PREFIX)?)
    };
    check_auth_id(id).ok()?;
    Some(Key {
        kind,
        id: id.into(),
    })
}

pub fn content_type(key: &Key) -> &'static str {
    match key.kind {
        Kind::Config => "application/x-yaml",
        Kind::Auth => "application/json",
        Kind::Meta => "text/plain",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_objects_map_both_ways() {
        let auth = Key {
            kind: Kind::Auth,
            id: "team/a@b.json".into(),
        };
        assert_eq!(object_key(&auth).unwrap(), "auths/team/a@b.json");
        let back = document_key("auths/team/a@b.json").unwrap();
        assert_eq!((back.kind, back.id), (auth.kind, auth.id));
        assert_eq!(
            document_key("config/config.yaml").map(|k| k.kind),
            Some(Kind::Config)
        );
        assert_eq!(
            document_key(".storehost/meta/lineage").map(|k| k.kind),
            Some(Kind::Meta)
        );
    }

    #[test]
    fn keys_that_escape_the_layout_are_refused() {
        for object in [
            "auths/../x.json",
            "auths//etc/passwd",
            "auths/",
            "other/x.json",
            "config/other.yaml",
            ".storehost/probe/x",
        ] {
            assert!(document_key(object).is_none(), "{object}");
        }
        let escaping = Key {
            kind: Kind::Auth,
            id: "../../x.json".into(),
        };
        assert!(object_key(&escaping).is_err());
    }
}
