//! Host-side bindings generated from the newest contract, `wit/<version>/`.
//! Frozen versions are never edited (see `tests/tests/contract.rs`); a new
//! version gets a new folder, and these bindings move to it.

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "backend-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "storehost:plugin/secrets.secret": crate::capabilities::secrets::SecretHandle,
        "storehost:plugin/sql.connection": crate::capabilities::sql::Connection,
        "storehost:plugin/sql.transaction": crate::capabilities::sql::Transaction,
        "storehost:plugin/objects.bucket": crate::capabilities::objects::Bucket,
        "storehost:plugin/git.repository": crate::capabilities::git::Repository,
    },
});

pub use self::exports::storehost::plugin::backend as backend_export;
pub use self::storehost::plugin::types as wit_types;

/// The contract version this host speaks: the newest folder under `wit/`,
/// whose package line host/build.rs checks.
pub const CONTRACT_PACKAGE: &str = "storehost:plugin";
pub const CONTRACT_VERSION: &str = env!("STOREHOST_CONTRACT_VERSION");
/// The folder the bindings above are generated from (a macro path must be
/// a literal); a test keeps it equal to [`CONTRACT_VERSION`].
pub const BINDINGS_VERSION: &str = "0.1.0";
