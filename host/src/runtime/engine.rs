//! The process-wide engine and its epoch ticker.

use super::cache::ComponentCache;
use super::error::RuntimeError;
use crate::capabilities::HostState;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, the linker with every host capability, and the cache.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
}

impl Runtime {
    /// The process's runtime, created on first use with the default cache.
    pub fn shared() -> Result<Runtime, RuntimeError> {
        static SHARED: OnceLock<Runtime> = OnceLock::new();
        if let Some(runtime) = SHARED.get() {
            return Ok(runtime.clone());
        }
        let runtime = Runtime::new(ComponentCache::from_env())?;
        Ok(SHARED.get_or_init(|| runtime).clone())
    }

    /// A runtime with its own engine; `cache: None` compiles every time.
    pub fn new(cache: Option<ComponentCache>) -> Result<Runtime, RuntimeError> {
        let engine = build_engine()?;
        start_epoch_ticker(&engine);
        let linker = build_linker(&engine)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }

    /// Compiles a component, or loads it from the cache.
    pub fn component(&self, name: &str, wasm: &[u8]) -> Result<Component, RuntimeError> {
        match &self.inner.cache {
            Some(cache) => cache.load_or_compile(&self.inner.engine, name, wasm),
            None => compile(&self.inner.engine, name, wasm),
        }
    }
}

pub(crate) fn compile(engine: &Engine, name: &str, wasm: &[u8]) -> Result<Component, RuntimeError> {
    Component::new(engine, wasm).map_err(|e| RuntimeError::Compile {
        plugin: name.to_string(),
        message: format!("{e:#}"),
    })
}

fn build_engine() -> Result<Engine, RuntimeError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// A thread that advances the epoch so deadlines fire even in a guest that
/// never yields. It ends when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("storehost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

fn build_linker(engine: &Engine) -> Result<Linker<HostState>, RuntimeError> {
    let mut linker = Linker::new(engine);
    let link_error =
        |e: wasmtime::Error| RuntimeError::Engine(format!("linking host capabilities: {e:#}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_error)?;
    super::bindings::BackendPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .map_err(link_error)?;
    Ok(linker)
}
