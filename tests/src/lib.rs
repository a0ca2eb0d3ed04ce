//! Shared test support: the generated list of test guests, the conformance
//! kit, plugin loading helpers and log capture.

pub mod conformance;
pub mod logs;

/// Test guest components built by build.rs from `tests/guests/*`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/test_guests.rs"));
}

use std::path::Path;
use std::time::Duration;
use storehost::capabilities::Grants;
use storehost::runtime::plugin::GUEST_STORE_DIR;
use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime};

/// Limits that make hostile tests quick.
pub fn tight_limits() -> Limits {
    Limits {
        memory_bytes: 32 * 1024 * 1024,
        call_deadline: Duration::from_millis(300),
    }
}

/// Loads a component with the given grants on the shared runtime.
pub fn load(name: &str, wasm: &[u8], grants: Grants, limits: Limits) -> Plugin {
    let spec = PluginSpec {
        name: name.into(),
        grants,
        limits,
        settings: Vec::new(),
    };
    Plugin::load(&Runtime::shared().expect("runtime"), spec, wasm).expect("loading plugin")
}

/// The built-in local plugin over `dir`.
pub fn local_plugin(dir: &Path) -> Plugin {
    let spec = PluginSpec {
        name: "local".into(),
        grants: Grants::minimal().with_directory(dir),
        limits: Limits::default(),
        settings: vec![("root".into(), GUEST_STORE_DIR.into())],
    };
    Plugin::load(
        &Runtime::shared().expect("runtime"),
        spec,
        storehost::builtin::local(),
    )
    .expect("loading local plugin")
}

/// The in-memory test backend.
pub fn memory_plugin() -> Plugin {
    load(
        "memory",
        guests::MEMORY,
        Grants::minimal(),
        Limits::default(),
    )
}
