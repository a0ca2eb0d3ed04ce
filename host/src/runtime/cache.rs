//! Compiled components cached on disk between runs.
//!
//! The key hashes the component bytes together with the engine's
//! compatibility hash, so a changed plugin, a changed engine configuration
//! or another wasmtime version never loads a stale artifact.

use super::engine::compile;
use super::error::RuntimeError;
use crate::fsutil;
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// `STOREHOST_CACHE_DIR`, else the user's cache directory; `None` (no
    /// caching) when neither exists or the variable is `off`.
    pub fn from_env() -> Option<Self> {
        match std::env::var("STOREHOST_CACHE_DIR") {
            Ok(value) if value.trim() == "off" => None,
            Ok(value) if !value.trim().is_empty() => Some(ComponentCache::new(value.trim())),
            _ => dirs::cache_dir()
                .map(|dir| ComponentCache::new(dir.join("storehost").join("components"))),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn artifact_path(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut engine_hasher = DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hasher);
        let mut key = Sha256::new();
        key.update(wasm);
        key.update(engine_hasher.finish().to_le_bytes());
        key.update(env!("CARGO_PKG_VERSION").as_bytes());
        self.dir
            .join(format!("{}.cwasm", hex::encode(key.finalize())))
    }

    pub fn load_or_compile(
        &self,
        engine: &Engine,
        name: &str,
        wasm: &[u8],
    ) -> Result<Component, RuntimeError> {
        let path = self.artifact_path(engine, wasm);
        if path.is_file() {
            // SAFETY: the artifact was written by this host into a 0700
            // directory, under a key that covers the component bytes and the
            // engine; wasmtime also checks the engine compatibility header.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "recompiling: cached artifact unusable: {e:#}")
                }
            }
        }
        let component = compile(engine, name, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!("not caching plugin `{name}`: {e}");
        }
        Ok(component)
    }

    fn store(&self, path: &Path, component: &Component) -> Result<(), RuntimeError> {
        let cache_error = |message: String| RuntimeError::Cache {
            path: self.dir.display().to_string(),
            message,
        };
        let bytes = component
            .serialize()
            .map_err(|e| cache_error(format!("{e:#}")))?;
        fsutil::create_private_dir(&self.dir).map_err(|e| cache_error(e.to_string()))?;
        fsutil::write_atomic(path, &bytes).map_err(|e| cache_error(e.to_string()))
    }
}
