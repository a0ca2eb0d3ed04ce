use crate::Error;

/// Non-secret settings the host passes to [`crate::Backend::open`].
#[derive(Debug, Clone, Default)]
pub struct Settings(Vec<(String, String)>);

impl From<Vec<(String, String)>> for Settings {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Settings(pairs)
    }
}

impl Settings {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value for `name`, or an `invalid` error naming it.
    pub fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::Invalid(format!("missing setting `{name}`")))
    }

    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }
}
