//! The process-wide engine and its epoch ticker.

use super::audit::MemoryAudit;
use super::cache::ComponentCache;
use super::error::RuntimeError;
use crate::capabilities::HostState;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
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
    /// The same with `wasi:http`, for plugins granted it.
    http_linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    ticking: Arc<Ticking>,
}

/// How many guest calls are under way; the epoch ticker sleeps while
/// there are none, so an idle host does not wake 100 times a second.
#[derive(Default)]
struct Ticking {
    calls: Mutex<Calls>,
    started: Condvar,
}

#[derive(Default)]
struct Calls {
    running: usize,
    /// The ticker waits on `started`: only then does a call wake it (a
    /// busy host's calls cost no wake-up of another thread).
    ticker_waiting: bool,
}

/// Keeps the epoch advancing while a guest call runs; dropped when it ends
/// (or is abandoned).
#[must_use]
pub struct EpochGuard {
    ticking: Arc<Ticking>,
}

impl Drop for EpochGuard {
    fn drop(&mut self) {
        let mut calls = self.ticking.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.running = calls.running.saturating_sub(1);
    }
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
        Runtime::with_engine(build_engine(None)?, cache)
    }

    /// A runtime whose plugins' memories stay readable through the returned
    /// [`MemoryAudit`] (uncached, slower: for tests and audits).
    pub fn audited() -> Result<(Runtime, MemoryAudit), RuntimeError> {
        let audit = MemoryAudit::default();
        let runtime = Runtime::with_engine(build_engine(Some(&audit))?, None)?;
        Ok((runtime, audit))
    }

    fn with_engine(engine: Engine, cache: Option<ComponentCache>) -> Result<Runtime, RuntimeError> {
        let ticking = Arc::new(Ticking::default());
        start_epoch_ticker(&engine, ticking.clone());
        let linker = build_linker(&engine)?;
        let http_linker = build_http_linker(&linker)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                http_linker,
                cache,
                ticking,
            }),
        })
    }

    /// Marks a guest call as under way until the guard is dropped.
    pub fn guest_call(&self) -> EpochGuard {
        let ticking = self.inner.ticking.clone();
        let mut calls = ticking.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.running += 1;
        let wake = calls.ticker_waiting;
        drop(calls);
        if wake {
            ticking.started.notify_one();
        }
        EpochGuard { ticking }
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }

    /// The linker for a plugin with `grants`: `wasi:http` only with an
    /// http grant.
    pub fn linker_for(&self, grants: &crate::capabilities::Grants) -> &Linker<HostState> {
        match grants.http() {
            Some(_) => &self.inner.http_linker,
            None => &self.inner.linker,
        }
    }

    /// The linker with everything a grant can add.
    pub fn full_linker(&self) -> &Linker<HostState> {
        &self.inner.http_linker
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

fn build_engine(audit: Option<&MemoryAudit>) -> Result<Engine, RuntimeError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if let Some(audit) = audit {
        super::audit::configure(&mut config, audit);
    }
    Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// A thread that advances the epoch while guest calls run, so deadlines
/// fire even in a guest that never yields. It keeps ticking for a while
/// after the last call, so calls in quick succession never wait for it to
/// wake, and ends once the engine is dropped (checked at least every
/// second while idle). A tick comes a full period after a call starts:
/// a call is never made to yield the moment it begins.
fn start_epoch_ticker(engine: &Engine, ticking: Arc<Ticking>) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("storehost-epoch".into())
        .spawn(move || {
            let mut last_call = std::time::Instant::now();
            loop {
                if !wait_for_calls(&ticking, &mut last_call) {
                    match weak.upgrade() {
                        Some(_) => continue,
                        None => return,
                    }
                }
                std::thread::sleep(EPOCH_TICK);
                let Some(engine) = weak.upgrade() else { return };
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}

/// Whether the ticker should tick now: a call runs, or one ran within
/// [`TICK_LINGER`]; otherwise waits up to [`IDLE_CHECK`] for one.
fn wait_for_calls(ticking: &Ticking, last_call: &mut std::time::Instant) -> bool {
    let mut calls = ticking.calls.lock().unwrap_or_else(|e| e.into_inner());
    if calls.running > 0 {
        *last_call = std::time::Instant::now();
        return true;
    }
    if last_call.elapsed() < TICK_LINGER {
        return true;
    }
    calls.ticker_waiting = true;
    let (mut calls, _) = ticking
        .started
        .wait_timeout_while(calls, IDLE_CHECK, |calls| calls.running == 0)
        .unwrap_or_else(|e| e.into_inner());
    calls.ticker_waiting = false;
    calls.running > 0
}

/// How long the ticker keeps ticking after the last call it saw.
const TICK_LINGER: Duration = Duration::from_secs(1);

/// How often an idle ticker looks whether its engine is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);

fn build_linker(engine: &Engine) -> Result<Linker<HostState>, RuntimeError> {
    let mut linker = Linker::new(engine);
    let link_error =
        |e: wasmtime::Error| RuntimeError::Engine(format!("linking host capabilities: {e:#}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_error)?;
    super::bindings::BackendPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .map_err(link_error)?;
    Ok(linker)
}

fn build_http_linker(base: &Linker<HostState>) -> Result<Linker<HostState>, RuntimeError> {
    let mut linker = base.clone();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| RuntimeError::Engine(format!("linking wasi:http: {e:#}")))?;
    Ok(linker)
}
