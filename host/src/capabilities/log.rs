//! The `log` capability: plugin log lines into the host's tracing, tagged
//! with the plugin name.

use super::HostState;
use crate::runtime::bindings::storehost::plugin::log::{Host, Level};

/// Longest message kept from one plugin log call; a plugin cannot flood the
/// host's log with one huge line.
const MAX_MESSAGE: usize = 4096;

impl Host for HostState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let message = truncate(&message, MAX_MESSAGE);
        let fields = fields
            .iter()
            .map(|(name, value)| format!("{name}={}", truncate(value, 256)))
            .collect::<Vec<_>>()
            .join(" ");
        let plugin = &*self.plugin;
        match level {
            Level::Trace => {
                tracing::trace!(target: "storehost::plugin", plugin, fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "storehost::plugin", plugin, fields, "{message}")
            }
            Level::Info => tracing::info!(target: "storehost::plugin", plugin, fields, "{message}"),
            Level::Warn => tracing::warn!(target: "storehost::plugin", plugin, fields, "{message}"),
            Level::Error => {
                tracing::error!(target: "storehost::plugin", plugin, fields, "{message}")
            }
        }
        Ok(())
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
