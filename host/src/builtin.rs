//! Built-in plugin components, compiled by build.rs and embedded.

mod components {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

use crate::selection::BackendKind;

/// The embedded component of a backend, if this build has one.
pub fn component(kind: BackendKind) -> Option<&'static [u8]> {
    match kind {
        BackendKind::Local => Some(components::LOCAL),
        BackendKind::Postgres => Some(components::POSTGRES),
        BackendKind::Object => Some(components::OBJECT),
        BackendKind::Git => Some(components::GIT),
    }
}

/// The local plugin's component.
pub fn local() -> &'static [u8] {
    components::LOCAL
}
