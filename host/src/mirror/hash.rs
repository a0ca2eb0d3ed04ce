//! Content identity. Auths are compared as JSON (a backend such as
//! PostgreSQL's JSONB returns its own canonical form of the same object),
//! so their hash is taken over a canonical serialisation with sorted keys;
//! the config is compared byte for byte.

use crate::model::{Key, Kind};
use sha2::{Digest, Sha256};

/// SHA-256 of the bytes, hex.
pub fn raw_hash(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// The hash two equal documents share.
pub fn doc_hash(key: &Key, content: &[u8]) -> String {
    if key.kind == Kind::Auth
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(content)
    {
        return json_hash(&value);
    }
    if key.kind == Kind::Cooldown
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(content)
    {
        return cooldown_hash(&value);
    }
    if key.kind == Kind::Config && content.contains(&b'\r') {
        // The config is pushed with `\n` line endings; a CRLF copy is the same.
        let text = String::from_utf8_lossy(content)
            .replace("\r\n", "\n")
            .replace('\r', "\n");
        return raw_hash(text.as_bytes());
    }
    raw_hash(content)
}

/// The hash of an auth document already parsed.
pub fn json_hash(value: &serde_json::Value) -> String {
    let mut canonical = Vec::new();
    write_canonical(value, &mut canonical);
    format!("j:{}", raw_hash(&canonical))
}

/// Cooldown state is compared by its records, in any order: the top-level
/// fields are derived from them, and a backend that keeps records as rows
/// (PostgreSQL's `cooldown_store`) gives back its own file around them.
fn cooldown_hash(value: &serde_json::Value) -> String {
    let records = value.as_object().and_then(|document| {
        document
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("records"))
            .and_then(|(_, records)| records.as_array())
    });
    let mut each: Vec<Vec<u8>> = records
        .into_iter()
        .flatten()
        .map(|record| {
            let mut out = Vec::new();
            write_canonical(record, &mut out);
            out
        })
        .collect();
    each.sort();
    format!("c:{}", raw_hash(&each.join(&b'\n')))
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &serde_json::Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("a JSON scalar serialises");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_hash_as_json_and_configs_as_bytes() {
        let auth = Key::auth("a.json");
        assert_eq!(
            doc_hash(&auth, br#"{"b":1,"a":{"y":[1,2],"x":null}}"#),
            doc_hash(&auth, br#"{ "a": {"x": null, "y": [1, 2]}, "b": 1 }"#)
        );
        assert_ne!(
            doc_hash(&auth, br#"{"a":1}"#),
            doc_hash(&auth, br#"{"a":2}"#)
        );
        let config = Key::config();
        assert_ne!(doc_hash(&config, b"a: 1\n"), doc_hash(&config, b"a:  1\n"));
        assert_eq!(doc_hash(&config, b"a: 1\n"), raw_hash(b"a: 1\n"));
        assert_eq!(doc_hash(&config, b"a: 1\r\n"), raw_hash(b"a: 1\n"));
    }
}
