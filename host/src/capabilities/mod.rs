//! What the host offers plugins: one file per capability, plus the per-plugin
//! state and grant policy they consult.

pub mod git;
pub mod grants;
pub mod http;
pub mod log;
pub mod objects;
pub mod pg_dsn;
pub mod secrets;
pub mod sql;
pub mod stderr;

use crate::runtime::bindings::wit_types::HostError;
use crate::runtime::limits::MemoryLimiter;
pub use grants::{Capability, Grants};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything one plugin instance's store carries.
pub struct HostState {
    pub plugin: Arc<str>,
    pub grants: Arc<Grants>,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    /// When the call under way must end: checked at every epoch tick, at
    /// which a running guest also yields, so a spinning guest can be
    /// abandoned.
    pub deadline: std::time::Instant,
    /// True while a call runs; still true afterwards if the call was
    /// abandoned midway, and then the instance is not used again.
    pub in_call: bool,
    pub http: wasmtime_wasi_http::WasiHttpCtx,
    pub http_hooks: http::HttpHooks,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::runtime::bindings::storehost::plugin::types::Host for HostState {}

impl HostState {
    /// Whether this plugin may use `capability` on `endpoint` (a URL it
    /// was granted); `what` names the endpoint in the refusal.
    fn check_remote(
        &self,
        capability: Capability,
        endpoint: &str,
        what: &str,
    ) -> Result<(), HostError> {
        if !self.grants.allows(capability) {
            return Err(self.denied(capability));
        }
        if !self.grants.allows_endpoint(endpoint) {
            return Err(HostError::Denied(format!(
                "plugin `{}` was not granted the {what} {endpoint}",
                self.plugin
            )));
        }
        Ok(())
    }

    /// The answer of a capability this plugin was not granted.
    fn denied(&self, capability: Capability) -> HostError {
        HostError::Denied(format!(
            "plugin `{}` was not granted the `{capability}` capability",
            self.plugin
        ))
    }
}
