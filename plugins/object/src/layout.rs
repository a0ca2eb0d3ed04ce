//! Where documents live in the bucket (compatible with existing
//! deployments): `config/config.yaml` and `auths/<id>`; storehost's own
//! metadata under `.storehost/meta/`. Keys that would escape the layout
//! are refused both ways.

pub use storehost_sdk::paths::content_type;
pub use storehost_sdk::paths::{AUTH_PREFIX, CONFIG_PATH as CONFIG_OBJECT};
use storehost_sdk::paths::{key_of, path_of};
use storehost_sdk::{Error, Key};

/// Objects storehost writes to learn what the server honours.
pub const PROBE_PREFIX: &str = ".storehost/probe/";

/// The object key of a document.
pub fn object_key(key: &Key) -> Result<String, Error> {
    path_of(key)
}

/// The document an object stands for; `None` for objects outside the
/// layout or with ids that could never be files (`..`, absolute, ...).
pub fn document_key(object: &str) -> Option<Key> {
    key_of(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storehost_sdk::Kind;

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
        let cooldown = document_key("auths/team/a_b.com.cds").unwrap();
        assert_eq!(
            (cooldown.kind, cooldown.id.as_str()),
            (Kind::Cooldown, "team/a_b.com.cds")
        );
        assert_eq!(object_key(&cooldown).unwrap(), "auths/team/a_b.com.cds");
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
