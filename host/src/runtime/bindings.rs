//! Host-side bindings generated from `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
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

/// The contract version this host speaks.
pub const CONTRACT_PACKAGE: &str = "storehost:plugin";
pub const CONTRACT_VERSION: &str = "0.1.0";
