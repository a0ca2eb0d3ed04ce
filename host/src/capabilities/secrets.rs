//! The `secrets` capability: credentials as opaque handles. The value stays
//! in the host; there is no call that returns it to a plugin.

use super::{Capability, HostState};
use crate::runtime::bindings::storehost::plugin::secrets::{Host, HostSecret};
use crate::runtime::bindings::wit_types::HostError;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use wasmtime::component::Resource;

/// A secret value. `Debug` and `Display` print a placeholder, and the memory
/// is wiped on drop.
#[derive(Clone)]
pub struct SecretValue(Arc<SecretString>);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(Arc::new(SecretString::from(value.into())))
    }

    /// For host-side capability code only (building a connection, signing a
    /// request). Never log or format the result.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a plugin holds: the name of a granted secret, resolved by the host
/// when a capability uses it.
#[derive(Debug)]
pub struct SecretHandle {
    pub name: String,
}

impl HostState {
    /// Resolves a secret handle a plugin passed to a capability.
    pub fn resolve_secret(
        &self,
        handle: &Resource<SecretHandle>,
    ) -> Result<SecretValue, HostError> {
        let name = &self
            .table
            .get(handle)
            .map_err(|e| HostError::Invalid(format!("bad secret handle: {e}")))?
            .name;
        self.grants
            .secret(name)
            .cloned()
            .ok_or_else(|| HostError::Denied(format!("secret `{name}` is not granted")))
    }
}

impl Host for HostState {
    async fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<SecretHandle>, HostError>> {
        if !self.grants.allows(Capability::Secrets) || self.grants.secret(&name).is_none() {
            tracing::warn!(plugin = %self.plugin, secret = %name, "plugin asked for a secret it was not granted");
            return Ok(Err(HostError::Denied(format!(
                "plugin `{}` was not granted the secret `{name}`",
                self.plugin
            ))));
        }
        let handle = self.table.push(SecretHandle { name })?;
        Ok(Ok(handle))
    }
}

impl HostSecret for HostState {
    async fn name(&mut self, secret: Resource<SecretHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&secret)?.name.clone())
    }

    async fn drop(&mut self, secret: Resource<SecretHandle>) -> wasmtime::Result<()> {
        self.table.delete(secret)?;
        Ok(())
    }
}
