//! Document paths as the ledger stores them: `config/config.yaml` and
//! `auths/<id>` (auths and cooldown state, told apart by their suffix).

use crate::model::Key;

pub fn path_key(key: &Key) -> String {
    key.to_string()
}

pub fn key_of_path(path: &str) -> Option<Key> {
    match path.split_once('/')? {
        ("config", _) => Some(Key::config()),
        ("auths", id) if storehost_sdk::ids::is_cooldown_id(id) => Some(Key::cooldown(id)),
        ("auths", id) if !id.is_empty() => Some(Key::auth(id)),
        _ => None,
    }
}
