//! `storehost plugin inspect`: what a component targets and asks for.

use super::bindings::{CONTRACT_PACKAGE, CONTRACT_VERSION};
use super::engine::{Runtime, compile};
use crate::capabilities::Capability;
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}: not a WebAssembly file (no `\\0asm` header)")]
    NotWasm(String),
    #[error("{0}: a core WebAssembly module, not a component; build the plugin for wasm32-wasip2")]
    CoreModule(String),
    #[error("{path}: not a valid component: {message}")]
    Invalid { path: String, message: String },
    #[error("{0}: a component of another world: it does not export `{CONTRACT_PACKAGE}/backend`")]
    OtherWorld(String),
}

/// What `inspect` found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The contract version the component was built against.
    pub contract_version: String,
    pub capabilities: Vec<Capability>,
    /// Imports outside the contract (WASI and anything else).
    pub other_imports: Vec<String>,
    /// Every import and export, by its full name.
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// `Ok` when this host can instantiate it, else why not.
    pub loadable: Result<(), String>,
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "contract: {CONTRACT_PACKAGE}@{} (host speaks {CONTRACT_VERSION})",
            self.contract_version
        )?;
        let capabilities: Vec<&str> = self.capabilities.iter().map(|c| c.interface()).collect();
        writeln!(
            f,
            "capabilities: {}",
            if capabilities.is_empty() {
                "none".into()
            } else {
                capabilities.join(", ")
            }
        )?;
        writeln!(
            f,
            "other imports: {}",
            if self.other_imports.is_empty() {
                "none".into()
            } else {
                self.other_imports.join(", ")
            }
        )?;
        writeln!(f, "imports:")?;
        for import in &self.imports {
            writeln!(f, "  {import}")?;
        }
        writeln!(f, "exports:")?;
        for export in &self.exports {
            writeln!(f, "  {export}")?;
        }
        match &self.loadable {
            Ok(()) => writeln!(f, "loadable: yes"),
            Err(why) => writeln!(f, "loadable: no ({why})"),
        }
    }
}

pub fn inspect(runtime: &Runtime, path: &str, wasm: &[u8]) -> Result<Inspection, InspectError> {
    check_header(path, wasm)?;
    let component = compile(runtime.engine(), path, wasm).map_err(|e| InspectError::Invalid {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    let engine = runtime.engine();
    let ty = component.component_type();
    let backend_prefix = format!("{CONTRACT_PACKAGE}/backend@");
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let contract_version = exports
        .iter()
        .find_map(|name| name.strip_prefix(&backend_prefix).map(str::to_owned))
        .ok_or_else(|| InspectError::OtherWorld(path.to_string()))?;

    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let mut capabilities = Vec::new();
    let mut other_imports = Vec::new();
    for name in imports.iter().map(String::as_str) {
        match contract_interface(name).and_then(Capability::from_interface) {
            Some(capability) => capabilities.push(capability),
            None if contract_interface(name) == Some("types") => {}
            None => other_imports.push(name.to_string()),
        }
    }
    let loadable = loadability(runtime, &component, &contract_version);
    Ok(Inspection {
        contract_version,
        capabilities,
        other_imports,
        imports,
        exports,
        loadable,
    })
}

fn check_header(path: &str, wasm: &[u8]) -> Result<(), InspectError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(InspectError::NotWasm(path.to_string()));
    }
    // Bytes 4..8 are the version and layer: 1,0,0,0 is a core module.
    if wasm[4..8] == [1, 0, 0, 0] {
        return Err(InspectError::CoreModule(path.to_string()));
    }
    Ok(())
}

/// `storehost:plugin/sql@0.1.0` → `sql`.
fn contract_interface(import: &str) -> Option<&str> {
    let rest = import.strip_prefix(CONTRACT_PACKAGE)?.strip_prefix('/')?;
    Some(rest.split('@').next().unwrap_or(rest))
}

fn loadability(
    runtime: &Runtime,
    component: &wasmtime::component::Component,
    version: &str,
) -> Result<(), String> {
    if !LOADED_VERSIONS
        .iter()
        .any(|loaded| same_minor(version, loaded))
    {
        return Err(format!(
            "built against contract {version}, this host loads {}",
            LOADED_VERSIONS.join(" and ")
        ));
    }
    // With every capability the host can grant, wasi:http included.
    let pre = runtime
        .full_linker()
        .instantiate_pre(component)
        .map_err(|e| format!("{e:#}"))?;
    super::contract::BackendPre::new(pre)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// The contract versions this host loads (older ones through
/// `runtime::contract`'s adapter).
const LOADED_VERSIONS: &[&str] = &["0.1.0", CONTRACT_VERSION];

/// Semver compatibility for 0.x: the same major and minor.
fn same_minor(a: &str, b: &str) -> bool {
    let prefix = |v: &str| v.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    prefix(a) == prefix(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_capabilities_from_import_names() {
        assert_eq!(
            contract_interface("storehost:plugin/sql@0.1.0"),
            Some("sql")
        );
        assert_eq!(contract_interface("wasi:cli/environment@0.2.6"), None);
    }

    #[test]
    fn refuses_non_components_by_header() {
        assert!(matches!(
            check_header("x", b"hello world"),
            Err(InspectError::NotWasm(_))
        ));
        assert!(matches!(
            check_header("x", b"\0asm\x01\0\0\0"),
            Err(InspectError::CoreModule(_))
        ));
        assert!(check_header("x", b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn contract_versions_match_on_minor() {
        assert!(same_minor("0.1.0", "0.1.7"));
        assert!(!same_minor("0.2.0", "0.1.0"));
    }
}
