//! Logging into the host's log. Lines are tagged with the plugin's name.

use crate::bindings::storehost::plugin0_1_0::log::{Level, log};

pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}

pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}

pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}

pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}

/// A line with structured fields.
pub fn with_fields(level: Level, message: &str, fields: &[(String, String)]) {
    log(level, message, fields);
}

pub use crate::bindings::storehost::plugin0_1_0::log::Level as LogLevel;
