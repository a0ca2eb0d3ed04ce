//! What the host tells this plugin: the schema as a setting, the DSN as a
//! secret it can use but never read.

use storehost_sdk::capabilities::{secrets, sql};
use storehost_sdk::{Error, Settings, host_error};

/// The schema the tables live in (setting `schema`, by default `public`).
pub fn schema(settings: &Settings) -> &str {
    settings.get_or("schema", "public")
}

/// A connection through the granted DSN.
pub fn connect() -> Result<sql::Connection, Error> {
    let dsn = secrets::get("dsn").map_err(host_error)?;
    sql::connect(&dsn).map_err(host_error)
}
