//! What the host tells this plugin: where its one granted directory is
//! seen inside the sandbox.

use storehost_sdk::Settings;

/// The granted directory (setting `root`, by default `/store`).
pub fn root(settings: &Settings) -> &str {
    settings.get_or("root", "/store")
}
