//! Reading variables the way existing deployments expect: the upper-case
//! name first, then its lower-case alias; a value counts only when it is
//! non-empty after trimming, and is returned trimmed.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// A snapshot of the process environment (non-UTF-8 values are skipped).
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// `NAME`, else `name`; trimmed; blank counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        [name.to_string(), name.to_lowercase()]
            .iter()
            .find_map(|key| {
                let value = self.vars.get(key)?.trim();
                (!value.is_empty()).then(|| value.to_string())
            })
    }
}
