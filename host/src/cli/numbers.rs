//! Numeric settings of `serve`, from a flag or else the environment,
//! range-checked before anything is created. An error names where the
//! value came from (the variable, not the flag, when it came from the
//! environment).

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// One numeric setting: its flag, its variable, its default and its range.
pub struct Number<T> {
    pub flag: &'static str,
    pub env: &'static str,
    pub default: T,
    pub range: RangeInclusive<T>,
}

impl<T> Number<T>
where
    T: FromStr + PartialOrd + Display + Copy,
    T::Err: Display,
{
    /// The flag's value if given, else the variable's, else the default.
    pub fn resolve(&self, flag_value: Option<&str>) -> anyhow::Result<T> {
        let (source, text) = match (flag_value, std::env::var(self.env)) {
            (Some(text), _) => (format!("--{}", self.flag), text.to_string()),
            (None, Ok(text)) => (self.env.to_string(), text),
            (None, Err(std::env::VarError::NotPresent)) => return Ok(self.default),
            (None, Err(std::env::VarError::NotUnicode(_))) => {
                anyhow::bail!("{} is not valid UTF-8", self.env)
            }
        };
        let value: T = text
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{source}={text:?} is not a number: {e}"))?;
        // `contains` is false for NaN, so it is refused too.
        anyhow::ensure!(
            self.range.contains(&value),
            "{source}={text:?} is out of range: expected {} to {}",
            self.range.start(),
            self.range.end()
        );
        Ok(value)
    }
}

pub const PLUGIN_MEMORY_MIB: Number<usize> = Number {
    flag: "plugin-memory-mib",
    env: "STOREHOST_PLUGIN_MEMORY_MIB",
    default: 256,
    range: 1..=65_536,
};
pub const PLUGIN_DEADLINE_MS: Number<u64> = Number {
    flag: "plugin-deadline-ms",
    env: "STOREHOST_PLUGIN_DEADLINE_MS",
    default: 60_000,
    range: 1..=3_600_000,
};
pub const POLL_INTERVAL_MS: Number<u64> = Number {
    flag: "poll-interval-ms",
    env: "STOREHOST_POLL_INTERVAL_MS",
    default: 5_000,
    range: 10..=86_400_000,
};
pub const MAX_DELETE_SHARE: Number<f64> = Number {
    flag: "max-delete-share",
    env: "STOREHOST_MAX_DELETE_SHARE",
    default: 0.25,
    range: 0.0..=1.0,
};
pub const SHUTDOWN_FLUSH_MS: Number<u64> = Number {
    flag: "shutdown-flush-ms",
    env: "STOREHOST_SHUTDOWN_FLUSH_MS",
    default: 10_000,
    range: 0..=3_600_000,
};
pub const COMPLETE_PULL_MS: Number<u64> = Number {
    flag: "complete-pull-ms",
    env: "STOREHOST_COMPLETE_PULL_MS",
    default: 600_000,
    range: 1_000..=604_800_000,
};
pub const TRASH_DAYS: Number<u64> = Number {
    flag: "trash-days",
    env: "STOREHOST_TRASH_DAYS",
    default: storehost::mirror::engine::DEFAULT_TRASH_DAYS,
    range: 0..=3_650,
};
pub const MAX_DOCUMENT_BYTES: Number<usize> = Number {
    flag: "max-document-bytes",
    env: "STOREHOST_MAX_DOCUMENT_BYTES",
    default: storehost::mirror::intake::DEFAULT_MAX_DOCUMENT_BYTES,
    range: 1024..=(256 << 20),
};
