//! A loaded plugin: its compiled component, grants, limits and one live
//! instance that is re-created after a trap or a missed deadline.

use super::contract::{Backend, BackendPre, CallResult};
use super::engine::Runtime;
use super::error::{PluginError, RuntimeError};
use super::limits::{Limits, MemoryLimiter};
use crate::capabilities::http::HttpHooks;
use crate::capabilities::stderr::GuestStderr;
use crate::capabilities::{Grants, HostState};
use crate::model::{Change, Document, Entry, Info, Key, Snapshot};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Where a plugin's single granted directory appears inside the sandbox.
pub const GUEST_STORE_DIR: &str = "/store";

/// Everything needed to load a plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub grants: Grants,
    pub limits: Limits,
    /// Non-secret settings passed to `open`.
    pub settings: Vec<(String, String)>,
}

pub struct Plugin {
    name: Arc<str>,
    runtime: Runtime,
    pre: BackendPre,
    grants: Arc<Grants>,
    limits: Limits,
    settings: Vec<(String, String)>,
    live: Mutex<Option<Live>>,
}

struct Live {
    store: Store<HostState>,
    bindings: Backend,
    handle: ResourceAny,
}

type CallFuture<'a, T> = Pin<Box<dyn Future<Output = CallResult<T>> + Send + 'a>>;

impl Plugin {
    /// Compiles (or loads from cache) and links a component. Nothing runs yet.
    pub fn load(runtime: &Runtime, spec: PluginSpec, wasm: &[u8]) -> Result<Plugin, RuntimeError> {
        let component = runtime.component(&spec.name, wasm)?;
        let link_error = |e: wasmtime::Error| RuntimeError::Link {
            plugin: spec.name.clone(),
            message: format!("{e:#}"),
        };
        let instance_pre = runtime
            .linker_for(&spec.grants)
            .instantiate_pre(&component)
            .map_err(|e| {
                match imports_http(runtime, &component) && spec.grants.http().is_none() {
                    true => RuntimeError::Link {
                        plugin: spec.name.clone(),
                        message: "it imports wasi:http, and its grant has no http rules \
                              (grants.http in the manifest)"
                            .into(),
                    },
                    false => link_error(e),
                }
            })?;
        let pre = BackendPre::new(instance_pre).map_err(link_error)?;
        Ok(Plugin {
            name: Arc::from(spec.name.as_str()),
            runtime: runtime.clone(),
            pre,
            grants: Arc::new(spec.grants),
            limits: spec.limits,
            settings: spec.settings,
            live: Mutex::new(None),
        })
    }

    /// A second, independent instance of the same plugin (e.g. to block in
    /// `wait-for-change` while the first serves other calls).
    pub fn fork(&self) -> Plugin {
        Plugin {
            name: self.name.clone(),
            runtime: self.runtime.clone(),
            pre: self.pre.clone(),
            grants: self.grants.clone(),
            limits: self.limits,
            settings: self.settings.clone(),
            live: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The contract version the component was built against.
    pub fn contract_version(&self) -> &'static str {
        self.pre.contract_version()
    }

    /// Whether this plugin can store the proxy's cooldown state (contract
    /// 0.2.0 and later).
    pub fn has_cooldown(&self) -> bool {
        self.pre.has_cooldown()
    }

    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The largest linear memory the live instance has had, if one is live.
    pub async fn peak_memory_bytes(&self) -> Option<usize> {
        let live = self.live.lock().await;
        live.as_ref()
            .map(|live| live.store.data().limiter.peak_bytes())
    }

    /// Instantiates and opens the store now, so configuration errors show at
    /// start-up rather than on the first call.
    pub async fn start(&self) -> Result<(), PluginError> {
        let mut live = self.live.lock().await;
        self.ensure_live(&mut live).await.map(|_| ())
    }

    pub async fn info(&self) -> Result<Info, PluginError> {
        self.call("info", |b, s, h| Box::pin(b.info(s, h))).await
    }

    pub async fn prepare(&self) -> Result<(), PluginError> {
        self.call("prepare", |b, s, h| Box::pin(b.prepare(s, h)))
            .await
    }

    pub async fn check(&self) -> Result<(), PluginError> {
        self.call("check", |b, s, h| Box::pin(b.check(s, h))).await
    }

    pub async fn list(&self) -> Result<Vec<Entry>, PluginError> {
        self.call("list", |b, s, h| Box::pin(b.list(s, h))).await
    }

    pub async fn read(&self, keys: &[Key]) -> Result<Vec<Option<Document>>, PluginError> {
        let documents = self
            .call("read", {
                let keys = keys.to_vec();
                move |b, s, h| Box::pin(async move { b.read(s, h, &keys).await })
            })
            .await?;
        if documents.len() != keys.len() {
            return Err(self.contract_error(
                "read",
                format!("answered {} keys for {} asked", documents.len(), keys.len()),
            ));
        }
        Ok(documents)
    }

    /// Reads one document.
    pub async fn read_one(&self, key: &Key) -> Result<Option<Document>, PluginError> {
        Ok(self.read(std::slice::from_ref(key)).await?.pop().flatten())
    }

    pub async fn pull(&self, cursor: Option<&str>) -> Result<Snapshot, PluginError> {
        let cursor = cursor.map(str::to_owned);
        self.call("pull", move |b, s, h| {
            Box::pin(async move { b.pull(s, h, cursor.as_deref()).await })
        })
        .await
    }

    pub async fn apply(
        &self,
        changes: Vec<Change>,
        message: &str,
    ) -> Result<Vec<Option<Entry>>, PluginError> {
        let count = changes.len();
        let entries = self
            .call("apply", {
                let message = message.to_owned();
                move |b, s, h| Box::pin(async move { b.apply(s, h, changes, &message).await })
            })
            .await?;
        if entries.len() != count {
            return Err(self.contract_error(
                "apply",
                format!("answered {} changes for {count} applied", entries.len()),
            ));
        }
        Ok(entries)
    }

    pub async fn wait_for_change(&self, timeout: Duration) -> Result<bool, PluginError> {
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        // Bounded by its own timeout, not the general call deadline: a
        // plugin that ignores the timeout is stopped soon after it.
        let deadline = timeout + WAIT_GRACE;
        self.call_within("wait-for-change", deadline, move |b, s, h| {
            Box::pin(b.wait_for_change(s, h, timeout_ms))
        })
        .await
    }

    fn contract_error(&self, call: &'static str, message: String) -> PluginError {
        PluginError::Contract {
            plugin: self.name.to_string(),
            call,
            message,
        }
    }

    /// Runs one call on the live instance under the deadline; a trap, a
    /// missed deadline or a hit memory limit drops the instance so the next
    /// call starts from a fresh one.
    async fn call<T, F>(&self, call: &'static str, run: F) -> Result<T, PluginError>
    where
        F: for<'a> FnOnce(&'a Backend, &'a mut Store<HostState>, ResourceAny) -> CallFuture<'a, T>,
    {
        self.call_within(call, self.limits.call_deadline, run).await
    }

    /// [`Plugin::call`] with its own deadline.
    async fn call_within<T, F>(
        &self,
        call: &'static str,
        deadline: Duration,
        run: F,
    ) -> Result<T, PluginError>
    where
        F: for<'a> FnOnce(&'a Backend, &'a mut Store<HostState>, ResourceAny) -> CallFuture<'a, T>,
    {
        let mut guard = self.live.lock().await;
        if guard.as_ref().is_some_and(|live| live.store.data().in_call) {
            // The last call was abandoned midway (its caller gave up).
            *guard = None;
        }
        let live = self.ensure_live(&mut guard).await?;
        let _ticking = self.runtime.guest_call();
        start_call(&mut live.store, deadline);
        let Live {
            store,
            bindings,
            handle,
        } = live;
        let outcome = tokio::time::timeout(
            deadline + HOST_TIMEOUT_GRACE,
            run(bindings, &mut *store, *handle),
        )
        .await;
        store.data_mut().in_call = false;
        match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(PluginError::Backend {
                plugin: self.name.to_string(),
                call,
                error,
            }),
            Ok(Err(trap)) => {
                let error = self.classify_trap(call, &trap, live_limiter_hit(&mut guard));
                *guard = None;
                Err(error)
            }
            Err(_elapsed) => {
                *guard = None;
                Err(self.deadline_error(call))
            }
        }
    }

    async fn ensure_live<'a>(
        &self,
        slot: &'a mut Option<Live>,
    ) -> Result<&'a mut Live, PluginError> {
        if slot.is_none() {
            *slot = Some(self.instantiate().await?);
        }
        Ok(slot.as_mut().expect("just filled"))
    }

    async fn instantiate(&self) -> Result<Live, PluginError> {
        let instantiate_error = |message: String| PluginError::Instantiate {
            plugin: self.name.to_string(),
            message,
        };
        let state = self
            .host_state()
            .map_err(|e| instantiate_error(format!("{e:#}")))?;
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        let _ticking = self.runtime.guest_call();
        store.epoch_deadline_callback(|context| {
            Ok(match std::time::Instant::now() >= context.data().deadline {
                true => UpdateDeadline::Interrupt,
                false => UpdateDeadline::Yield(1),
            })
        });
        start_call(&mut store, self.limits.call_deadline);
        let instantiated =
            tokio::time::timeout(self.host_timeout(), self.pre.instantiate(&mut store)).await;
        let bindings = match instantiated {
            Ok(Ok(bindings)) => bindings,
            Ok(Err(e)) => return Err(instantiate_error(format!("{e:#}"))),
            Err(_) => return Err(self.deadline_error("instantiate")),
        };
        start_call(&mut store, self.limits.call_deadline);
        let opened = tokio::time::timeout(
            self.host_timeout(),
            bindings.open(&mut store, &self.settings),
        )
        .await;
        store.data_mut().in_call = false;
        match opened {
            Ok(Ok(Ok(handle))) => Ok(Live {
                store,
                bindings,
                handle,
            }),
            Ok(Ok(Err(error))) => Err(PluginError::Backend {
                plugin: self.name.to_string(),
                call: "open",
                error,
            }),
            Ok(Err(trap)) => {
                Err(self.classify_trap("open", &trap, store.data_mut().limiter.take_hit()))
            }
            Err(_) => Err(self.deadline_error("open")),
        }
    }

    fn host_state(&self) -> wasmtime::Result<HostState> {
        let stderr = GuestStderr {
            plugin: self.name.clone(),
        };
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stderr.clone())
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = self.grants.directory() {
            // A local file operation takes microseconds; a hop to the
            // blocking pool for each took several times that. Set before
            // the preopen, which takes the setting with it.
            wasi.allow_blocking_current_thread(true);
            wasi.preopened_dir(dir, GUEST_STORE_DIR, FsPerms::ReadWrite)?;
        }
        Ok(HostState {
            plugin: self.name.clone(),
            grants: self.grants.clone(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(self.limits.memory_bytes),
            deadline: std::time::Instant::now() + self.limits.call_deadline,
            in_call: false,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: HttpHooks {
                plugin: self.name.clone(),
                grant: self.grants.http().cloned(),
            },
        })
    }

    /// Backstop for a call stuck in a host capability, where epochs cannot
    /// interrupt it.
    fn host_timeout(&self) -> Duration {
        self.limits.call_deadline + HOST_TIMEOUT_GRACE
    }

    fn deadline_error(&self, call: &'static str) -> PluginError {
        PluginError::Deadline {
            plugin: self.name.to_string(),
            call,
            deadline: self.limits.call_deadline,
        }
    }

    fn classify_trap(
        &self,
        call: &'static str,
        error: &wasmtime::Error,
        memory_hit: bool,
    ) -> PluginError {
        let plugin = self.name.to_string();
        if memory_hit {
            return PluginError::MemoryLimit {
                plugin,
                call,
                limit_bytes: self.limits.memory_bytes,
            };
        }
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return self.deadline_error(call);
        }
        let message = trap_summary(error);
        tracing::warn!(plugin = %self.name, call, "plugin trapped; it will be re-instantiated: {message}");
        PluginError::Trap {
            plugin,
            call,
            message,
        }
    }
}

/// Whether a component imports any `wasi:http` interface.
fn imports_http(runtime: &Runtime, component: &wasmtime::component::Component) -> bool {
    component
        .component_type()
        .imports(runtime.engine())
        .any(|(name, _)| name.starts_with("wasi:http/"))
}

fn live_limiter_hit(slot: &mut Option<Live>) -> bool {
    slot.as_mut()
        .is_some_and(|live| live.store.data_mut().limiter.take_hit())
}

/// The first line of a trap: the cause without the wasm backtrace.
fn trap_summary(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// How long past its timeout a `wait-for-change` may run before it is
/// stopped.
const WAIT_GRACE: Duration = Duration::from_secs(2);
/// How long past a call's deadline the host waits for a call stuck in a
/// host capability, where epochs cannot interrupt it.
const HOST_TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// Arms a call's deadline: the guest is checked (and yields) at every
/// epoch tick, and interrupted once the deadline has passed.
fn start_call(store: &mut Store<HostState>, deadline: Duration) {
    let state = store.data_mut();
    state.deadline = std::time::Instant::now() + deadline;
    state.in_call = true;
    store.set_epoch_deadline(1);
}
