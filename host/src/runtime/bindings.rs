//! Host-side bindings of every contract version the host loads. Frozen
//! versions are never edited (see `tests/tests/contract.rs`); a new version
//! gets a new folder and a module here, and `runtime::contract` adapts the
//! older ones. The capabilities are 0.1.0's in every version so far.

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

/// Contract 0.2.0: the same capabilities (imported at 0.1.0, so they are
/// implemented once, by the bindings above) and a backend export whose
/// documents may be cooldown state.
pub mod v0_2_0 {
    wasmtime::component::bindgen!({
        path: ["../wit/0.1.0", "../wit/0.2.0"],
        world: "storehost:plugin/backend-plugin@0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "storehost:plugin/types@0.1.0": super::storehost::plugin::types,
            "storehost:plugin/secrets@0.1.0": super::storehost::plugin::secrets,
            "storehost:plugin/log@0.1.0": super::storehost::plugin::log,
            "storehost:plugin/sql@0.1.0": super::storehost::plugin::sql,
            "storehost:plugin/objects@0.1.0": super::storehost::plugin::objects,
            "storehost:plugin/git@0.1.0": super::storehost::plugin::git,
        },
    });
}

pub use self::exports::storehost::plugin::backend as backend_export;
pub use self::storehost::plugin::types as wit_types;

/// The contract version this host speaks: the newest folder under `wit/`,
/// whose package line host/build.rs checks.
pub const CONTRACT_PACKAGE: &str = "storehost:plugin";
pub const CONTRACT_VERSION: &str = env!("STOREHOST_CONTRACT_VERSION");
/// The newest folder the bindings above are generated from (a macro path
/// must be a literal); a test keeps it equal to [`CONTRACT_VERSION`].
pub const BINDINGS_VERSION: &str = "0.2.0";
