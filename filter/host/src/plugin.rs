//! Module compilation, plugin (VM + root context) lifecycle, and the
//! plumbing every callback goes through.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use wasmtime::{
    Config, Engine, ExternType, Func, Instance, InstancePre, Linker, Module, OptLevel, Store, TypedFunc, Val, ValType,
    WasmParams, WasmResults,
};

use crate::abi::{property_key, HeaderMap, LogLevel};
use crate::error::HostError;
use crate::hostcalls::{self, ProcExit};
use crate::http::Exchange;
use crate::state::{
    next_plugin_id, CallResponse, Clock, HostState, HttpCall, HttpCallState, LogEntry, MetricValue, SharedState,
};

/// The process-wide wasmtime engine every module and plugin uses.
///
/// Compiling the release filter takes a while; compile it once with
/// [`CompiledModule`] and build many plugins from it.
pub fn shared_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.cranelift_opt_level(OptLevel::Speed);
        // `MESHWARD_HOST_PERFMAP=1` writes /tmp/perf-<pid>.map, so `perf
        // report` names the guest's functions when profiling a bench.
        if std::env::var_os("MESHWARD_HOST_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // `MESHWARD_HOST_FUEL=1` counts the wasm operators the guest runs
        // ([`Plugin::fuel_consumed`]): a cost measure that, unlike time,
        // does not move with the machine's load.
        if fuel_counting() {
            config.consume_fuel(true);
        }
        // The default configuration is always valid; fall back to it anyway
        // rather than panicking.
        Engine::new(&config).unwrap_or_default()
    })
}

fn fuel_counting() -> bool {
    std::env::var_os("MESHWARD_HOST_FUEL").is_some_and(|v| v == "1")
}

/// Where the release filter is: `$MESHWARD_WASM`, else
/// `$CARGO_TARGET_DIR/wasm32-wasip1/release/meshward_filter.wasm`, else the
/// workspace's `target/` directory.
pub fn meshward_filter_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MESHWARD_WASM") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => PathBuf::from(t),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    };
    target.join("wasm32-wasip1/release/meshward_filter.wasm")
}

/// A compiled module with its host functions linked, ready to instantiate
/// many times. Cheap to clone.
#[derive(Clone)]
pub struct CompiledModule {
    inner: Arc<CompiledInner>,
}

struct CompiledInner {
    module: Module,
    pre: InstancePre<HostState>,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule").field("name", &self.inner.module.name()).finish_non_exhaustive()
    }
}

type CacheKey = (PathBuf, Option<SystemTime>, u64);

fn file_cache() -> &'static Mutex<HashMap<CacheKey, CompiledModule>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, CompiledModule>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl CompiledModule {
    /// Compiles a `.wasm` file (or WAT text). Compiled modules are cached
    /// per process by path, size and modification time, so many tests can
    /// call this (or [`Plugin::builder`]) for the same file cheaply.
    pub fn from_file(path: impl AsRef<Path>) -> Result<CompiledModule, HostError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path)
            .map_err(|e| HostError::ReadModule { path: path.to_path_buf(), message: e.to_string() })?;
        let key = (path.to_path_buf(), meta.modified().ok(), meta.len());
        if let Some(m) = lock(file_cache()).get(&key) {
            return Ok(m.clone());
        }
        let bytes = std::fs::read(path)
            .map_err(|e| HostError::ReadModule { path: path.to_path_buf(), message: e.to_string() })?;
        let compiled = CompiledModule::from_bytes(&bytes)?;
        lock(file_cache()).insert(key, compiled.clone());
        Ok(compiled)
    }

    /// The release filter ([`meshward_filter_path`]); a missing file is
    /// [`HostError::FilterNotBuilt`], which says to run `make wasm`.
    pub fn meshward_filter() -> Result<CompiledModule, HostError> {
        let path = meshward_filter_path();
        if !path.is_file() {
            return Err(HostError::FilterNotBuilt { path });
        }
        CompiledModule::from_file(path)
    }

    /// Compiles wasm binary or WAT text.
    pub fn from_bytes(bytes: &[u8]) -> Result<CompiledModule, HostError> {
        let module = Module::new(shared_engine(), bytes).map_err(|e| HostError::Compile(format!("{e:?}")))?;
        CompiledModule::from_module(module)
    }

    /// Links an already compiled module. It must have been compiled with
    /// [`shared_engine`].
    pub fn from_module(module: Module) -> Result<CompiledModule, HostError> {
        if !Engine::same(module.engine(), shared_engine()) {
            return Err(HostError::Compile("the module was compiled with another engine than shared_engine()".into()));
        }
        let mut linker: Linker<HostState> = Linker::new(shared_engine());
        let mut defined = hostcalls::define_all(&mut linker)
            .map_err(|e| HostError::Internal(format!("defining host functions: {e:?}")))?;
        link_stubs(&mut linker, &module, &mut defined)?;
        let pre = linker.instantiate_pre(&module).map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
        Ok(CompiledModule { inner: Arc::new(CompiledInner { module, pre }) })
    }

    /// The wasmtime module.
    pub fn module(&self) -> &Module {
        &self.inner.module
    }
}

/// Every function import the host does not implement gets a stub that
/// returns `UNIMPLEMENTED` (12; WASI: `ENOSYS`) and records the call.
fn link_stubs(
    linker: &mut Linker<HostState>,
    module: &Module,
    defined: &mut HashSet<(String, String)>,
) -> Result<(), HostError> {
    for import in module.imports() {
        let key = (import.module().to_string(), import.name().to_string());
        if defined.contains(&key) {
            continue;
        }
        match import.ty() {
            ExternType::Func(ty) => {
                let code = hostcalls::unimplemented_code(import.module());
                let full = format!("{}.{}", import.module(), import.name());
                let results: Vec<ValType> = ty.results().collect();
                linker
                    .func_new(import.module(), import.name(), ty.clone(), move |mut c, _params, out| {
                        c.data_mut().unimplemented_calls.push(full.clone());
                        for (i, (slot, ty)) in out.iter_mut().zip(&results).enumerate() {
                            *slot = match ty {
                                ValType::I32 if i == 0 => Val::I32(code),
                                ValType::I32 => Val::I32(0),
                                ValType::I64 => Val::I64(0),
                                ValType::F32 => Val::F32(0),
                                ValType::F64 => Val::F64(0),
                                other => {
                                    return Err(wasmtime::Error::msg(format!("stub for {full} cannot return {other}")))
                                }
                            };
                        }
                        Ok(())
                    })
                    .map_err(|e| HostError::Internal(format!("{e:?}")))?;
                defined.insert(key);
            }
            other => {
                let kind = match other {
                    ExternType::Memory(_) => "memory",
                    ExternType::Table(_) => "table",
                    ExternType::Global(_) => "global",
                    _ => "other",
                };
                return Err(HostError::UnsupportedImport { module: key.0, name: key.1, kind: kind.into() });
            }
        }
    }
    Ok(())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// When `proxy_on_queue_ready` is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueReady {
    /// After every host-driven operation (like Envoy's event loop running
    /// the posted notification right after the current event). Default.
    Auto,
    /// Only in [`Plugin::deliver_queue_ready`].
    Manual,
}

/// Configures and starts a [`Plugin`].
#[derive(Debug, Clone)]
pub struct PluginBuilder {
    source: Source,
    plugin_config: Vec<u8>,
    vm_config: Vec<u8>,
    env: Vec<(String, String)>,
    properties: Vec<(Vec<u8>, Vec<u8>)>,
    vm_id: String,
    root_id: String,
    plugin_name: String,
    log_level: LogLevel,
    clusters: Option<HashSet<String>>,
    shared: Option<SharedState>,
    manual_clock: Option<u64>,
    seed: u64,
    buffer_limit: Option<usize>,
    generate_request_id: bool,
    allow_on_headers_stop_iteration: bool,
    queue_ready: QueueReady,
}

#[derive(Debug, Clone)]
enum Source {
    Path(PathBuf),
    Compiled(CompiledModule),
}

/// Envoy's default `per_connection_buffer_limit_bytes`.
pub const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;

impl PluginBuilder {
    fn new(source: Source) -> PluginBuilder {
        PluginBuilder {
            source,
            plugin_config: Vec::new(),
            vm_config: Vec::new(),
            env: Vec::new(),
            properties: Vec::new(),
            vm_id: String::new(),
            root_id: String::new(),
            plugin_name: "meshward".into(),
            log_level: LogLevel::Info,
            clusters: None,
            shared: None,
            manual_clock: None,
            seed: 0x6d65_7368_7761_7264,
            buffer_limit: Some(DEFAULT_BUFFER_LIMIT),
            generate_request_id: true,
            allow_on_headers_stop_iteration: false,
            queue_ready: QueueReady::Auto,
        }
    }

    /// The plugin `configuration` (a policy document for meshward).
    pub fn plugin_config(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.plugin_config = bytes.into();
        self
    }

    /// The VM `configuration`.
    pub fn vm_config(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.vm_config = bytes.into();
        self
    }

    /// A VM environment variable (`vm_config.environment_variables`); the
    /// guest reads them through WASI `environ_get`. The host's own
    /// environment is never exposed.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A plugin-wide property, e.g. `&["xds", "cluster_name"]`. Stream
    /// properties Envoy derives from headers (`request.id`, `request.path`,
    /// ...) take precedence inside HTTP contexts; see
    /// [`Exchange::set_property`] for per-stream overrides.
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties.push((property_key(path), value.into()));
        self
    }

    /// The `vm_id` (scopes shared data and queues). Default "".
    pub fn vm_id(mut self, id: impl Into<String>) -> Self {
        self.vm_id = id.into();
        self
    }

    /// The plugin `root_id` (property `plugin_root_id`). Default "".
    pub fn root_id(mut self, id: impl Into<String>) -> Self {
        self.root_id = id.into();
        self
    }

    /// The plugin name (property `plugin_name`). Default "meshward".
    pub fn plugin_name(mut self, name: impl Into<String>) -> Self {
        self.plugin_name = name.into();
        self
    }

    /// Envoy's `wasm` logger level: messages below it are dropped, and
    /// `proxy_get_log_level` returns it. Default `Info`, like Envoy.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// Declares the upstream clusters that exist: `proxy_http_call` to any
    /// other name then fails with `BadArgument`, as in Envoy. Without this,
    /// every cluster name is accepted.
    pub fn clusters<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.clusters = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Shares data, queues and metrics with other plugins built with the
    /// same value (several Envoy workers of one `vm_id`).
    pub fn shared_state(mut self, shared: &SharedState) -> Self {
        self.shared = Some(shared.clone());
        self
    }

    /// Freezes the guest's clocks at `unix_nanos`; move them with
    /// [`Plugin::advance_time`].
    pub fn manual_clock(mut self, unix_nanos: u64) -> Self {
        self.manual_clock = Some(unix_nanos);
        self
    }

    /// Seeds WASI `random_get` and generated request ids.
    pub fn random_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The body buffer limit (Envoy `per_connection_buffer_limit_bytes`,
    /// default 1 MiB): a paused body over it gets Envoy's 413 (request) or
    /// 500 / reset (response); data Envoy holds for a filter stopped at
    /// its headers only raises the high watermark (Envoy stops reading,
    /// no error). `None` disables the limit.
    pub fn buffer_limit(mut self, limit: Option<usize>) -> Self {
        self.buffer_limit = limit;
        self
    }

    /// Whether to add an `x-request-id` to requests that lack one, as
    /// Envoy's connection manager does before any filter runs (default
    /// true).
    pub fn generate_request_id(mut self, on: bool) -> Self {
        self.generate_request_id = on;
        self
    }

    /// Envoy's Wasm `PluginConfig.allow_on_headers_stop_iteration` (Envoy
    /// 1.35+, default false). Off, a headers callback returning `Pause` (1)
    /// is turned into `StopAllIterationAndWatermark` by proxy-wasm-cpp-host:
    /// no body or trailers callback of that direction until the filter
    /// resumes the stream. On, `Pause` is a plain `StopIteration`: headers
    /// are held while body callbacks keep coming, and a body or trailers
    /// `Continue` forwards everything.
    pub fn allow_on_headers_stop_iteration(mut self, on: bool) -> Self {
        self.allow_on_headers_stop_iteration = on;
        self
    }

    /// When `proxy_on_queue_ready` is delivered (default [`QueueReady::Auto`]).
    pub fn queue_ready(mut self, mode: QueueReady) -> Self {
        self.queue_ready = mode;
        self
    }

    /// Instantiates the module and starts it as Envoy does: `_initialize`
    /// (or `_start`), root context creation, `proxy_on_vm_start`,
    /// `proxy_on_configure`. A `false` from either is
    /// [`HostError::VmStartRejected`] / [`HostError::ConfigureRejected`].
    pub fn build(self) -> Result<Plugin, HostError> {
        let compiled = match &self.source {
            Source::Compiled(c) => c.clone(),
            Source::Path(p) => CompiledModule::from_file(p)?,
        };
        let mut properties: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        properties.insert(property_key(&["plugin_name"]), self.plugin_name.clone().into());
        properties.insert(property_key(&["plugin_root_id"]), self.root_id.clone().into());
        properties.insert(property_key(&["plugin_vm_id"]), self.vm_id.clone().into());
        properties.insert(property_key(&["source", "address"]), b"127.0.0.1:40000".to_vec());
        properties.insert(property_key(&["destination", "address"]), b"127.0.0.1:10000".to_vec());
        for (k, v) in self.properties {
            properties.insert(k, v);
        }
        let clock = match self.manual_clock {
            Some(now_ns) => Clock::Manual { now_ns },
            None => Clock::System { start: Instant::now() },
        };
        let root_id = 1;
        let state = HostState {
            memory: None,
            alloc: None,
            root_id,
            effective: root_id,
            vm_config: self.vm_config,
            plugin_config: self.plugin_config,
            configuring: false,
            env: self.env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()).collect(),
            properties,
            log_level: self.log_level,
            logs: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            clock,
            rng: self.seed,
            tick_period_ms: 0,
            streams: HashMap::new(),
            http_calls: Vec::new(),
            next_token: 0,
            call_response: None,
            clusters: self.clusters,
            metric_ids: HashMap::new(),
            metric_by_key: HashMap::new(),
            shared: self.shared.unwrap_or_default(),
            vm_id: self.vm_id,
            plugin_id: next_plugin_id(),
            unimplemented_calls: Vec::new(),
            host_calls: 0,
            root_done_pending: false,
            proxy_done_called: false,
            scratch: Vec::new(),
        };
        let mut store = Store::new(shared_engine(), state);
        if fuel_counting() {
            store.set_fuel(u64::MAX).map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
            store.call_hook(|mut cx, hook| {
                if matches!(hook, wasmtime::CallHook::CallingHost) {
                    cx.data_mut().host_calls += 1;
                }
                Ok(())
            });
        }
        let instance =
            compiled.inner.pre.instantiate(&mut store).map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
        let memory = instance.get_memory(&mut store, "memory").ok_or(HostError::NoMemory)?;
        let alloc = match typed::<u32, u32>(&instance, &mut store, "proxy_on_memory_allocate")? {
            Some(f) => Some(f),
            None => typed::<u32, u32>(&instance, &mut store, "malloc")?,
        };
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = alloc;
        let exports = Exports::load(&instance, &mut store)?;
        let mut inner = Inner {
            store,
            instance,
            exports,
            failed: false,
            next_context_id: root_id + 1,
            buffer_limit: self.buffer_limit,
            generate_request_id: self.generate_request_id,
            allow_on_headers_stop_iteration: self.allow_on_headers_stop_iteration,
            queue_ready: self.queue_ready,
            tick_accum_ns: 0,
        };
        inner.start()?;
        Ok(Plugin { inner: Arc::new(Mutex::new(inner)) })
    }
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>, HostError> {
    let Some(f): Option<Func> = instance.get_func(&mut *store, name) else {
        return Ok(None);
    };
    f.typed::<P, R>(&*store).map(Some).map_err(|e| HostError::BadExport { name: name.into(), message: format!("{e}") })
}

/// `proxy_on_http_call_response(context, token, headers, body, trailers)`.
type HttpCallResponseFn = TypedFunc<(u32, u32, u32, u32, u32), ()>;

/// Cached handles of the callbacks the guest exports (all optional).
pub(crate) struct Exports {
    pub initialize: Option<TypedFunc<(), ()>>,
    pub main: Option<TypedFunc<(u32, u32), u32>>,
    pub start: Option<TypedFunc<(), ()>>,
    pub on_context_create: Option<TypedFunc<(u32, u32), ()>>,
    pub on_vm_start: Option<TypedFunc<(u32, u32), u32>>,
    pub on_configure: Option<TypedFunc<(u32, u32), u32>>,
    pub on_done: Option<TypedFunc<u32, u32>>,
    pub on_log: Option<TypedFunc<u32, ()>>,
    pub on_delete: Option<TypedFunc<u32, ()>>,
    pub on_tick: Option<TypedFunc<u32, ()>>,
    pub on_queue_ready: Option<TypedFunc<(u32, u32), ()>>,
    pub on_request_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_request_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_request_trailers: Option<TypedFunc<(u32, u32), u32>>,
    pub on_response_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_response_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_response_trailers: Option<TypedFunc<(u32, u32), u32>>,
    pub on_http_call_response: Option<HttpCallResponseFn>,
}

impl Exports {
    fn load(i: &Instance, s: &mut Store<HostState>) -> Result<Exports, HostError> {
        Ok(Exports {
            initialize: typed(i, s, "_initialize")?,
            main: typed(i, s, "main")?,
            start: typed(i, s, "_start")?,
            on_context_create: typed(i, s, "proxy_on_context_create")?,
            on_vm_start: typed(i, s, "proxy_on_vm_start")?,
            on_configure: typed(i, s, "proxy_on_configure")?,
            on_done: typed(i, s, "proxy_on_done")?,
            on_log: typed(i, s, "proxy_on_log")?,
            on_delete: typed(i, s, "proxy_on_delete")?,
            on_tick: typed(i, s, "proxy_on_tick")?,
            on_queue_ready: typed(i, s, "proxy_on_queue_ready")?,
            on_request_headers: typed(i, s, "proxy_on_request_headers")?,
            on_request_body: typed(i, s, "proxy_on_request_body")?,
            on_request_trailers: typed(i, s, "proxy_on_request_trailers")?,
            on_response_headers: typed(i, s, "proxy_on_response_headers")?,
            on_response_body: typed(i, s, "proxy_on_response_body")?,
            on_response_trailers: typed(i, s, "proxy_on_response_trailers")?,
            on_http_call_response: typed(i, s, "proxy_on_http_call_response")?,
        })
    }
}

/// The VM: store, instance, export handles.
pub(crate) struct Inner {
    pub store: Store<HostState>,
    pub instance: Instance,
    pub exports: Exports,
    pub failed: bool,
    pub next_context_id: u32,
    pub buffer_limit: Option<usize>,
    pub generate_request_id: bool,
    pub allow_on_headers_stop_iteration: bool,
    pub queue_ready: QueueReady,
    pub tick_accum_ns: u64,
}

/// Calls `f` with `effective` set to `ctx`, turning any wasmtime error into
/// a typed [`HostError`] and marking the VM dead.
pub(crate) fn invoke<P: WasmParams, R: WasmResults>(
    store: &mut Store<HostState>,
    failed: &mut bool,
    callback: &'static str,
    f: &TypedFunc<P, R>,
    ctx: u32,
    args: P,
) -> Result<R, HostError> {
    if *failed {
        return Err(HostError::VmFailed);
    }
    store.data_mut().effective = ctx;
    let result = f.call(&mut *store, args);
    let root = store.data().root_id;
    store.data_mut().effective = root;
    result.map_err(|e| {
        *failed = true;
        if let Some(ProcExit(code)) = e.downcast_ref::<ProcExit>() {
            return HostError::ProcExit { callback, code: *code };
        }
        let stderr = &store.data().stderr;
        let tail = &stderr[stderr.len().saturating_sub(4096)..];
        HostError::Trap {
            callback,
            message: format!("{e:?}"),
            guest_stderr: String::from_utf8_lossy(tail).into_owned(),
        }
    })
}

macro_rules! call_opt {
    ($inner:expr, $field:ident, $name:literal, $ctx:expr, $args:expr) => {{
        let $crate::plugin::Inner { store, exports, failed, .. } = &mut *$inner;
        match exports.$field.as_ref() {
            Some(f) => $crate::plugin::invoke(store, failed, $name, f, $ctx, $args).map(Some),
            None if *failed => Err($crate::error::HostError::VmFailed),
            None => Ok(None),
        }
    }};
}
pub(crate) use call_opt;

impl Inner {
    fn start(&mut self) -> Result<(), HostError> {
        let root = self.store.data().root_id;
        if self.exports.initialize.is_some() {
            call_opt!(self, initialize, "_initialize", root, ())?;
            call_opt!(self, main, "main", root, (0, 0))?;
        } else {
            match call_opt!(self, start, "_start", root, ()) {
                // A command's `_start` exits with proc_exit(0) when done.
                Err(HostError::ProcExit { code: 0, .. }) => self.failed = false,
                other => {
                    other?;
                }
            }
        }
        call_opt!(self, on_context_create, "proxy_on_context_create", root, (root, 0))?;
        let vm_config_len = self.store.data().vm_config.len() as u32;
        let ok = call_opt!(self, on_vm_start, "proxy_on_vm_start", root, (root, vm_config_len))?;
        if ok == Some(0) {
            return Err(HostError::VmStartRejected);
        }
        let config_len = self.store.data().plugin_config.len() as u32;
        self.store.data_mut().configuring = true;
        let ok = call_opt!(self, on_configure, "proxy_on_configure", root, (root, config_len));
        self.store.data_mut().configuring = false;
        if ok? == Some(0) {
            return Err(HostError::ConfigureRejected);
        }
        self.after_root_callback()?;
        self.pump()
    }

    pub(crate) fn root_id(&self) -> u32 {
        self.store.data().root_id
    }

    /// Runs what a root callback left behind: a `proxy_done` that
    /// completes a pending shutdown.
    pub(crate) fn after_root_callback(&mut self) -> Result<(), HostError> {
        let state = self.store.data_mut();
        if state.root_done_pending && state.proxy_done_called {
            state.root_done_pending = false;
            state.proxy_done_called = false;
            let root = state.root_id;
            call_opt!(self, on_delete, "proxy_on_delete", root, root)?;
        }
        Ok(())
    }

    /// Delivers pending `proxy_on_queue_ready` in [`QueueReady::Auto`] mode.
    pub(crate) fn pump(&mut self) -> Result<(), HostError> {
        if self.queue_ready == QueueReady::Auto && !self.failed {
            self.deliver_queue_ready()?;
        }
        Ok(())
    }

    /// Delivers the notifications pending now (not ones raised while
    /// delivering: those wait for the next pump, so this always ends).
    pub(crate) fn deliver_queue_ready(&mut self) -> Result<usize, HostError> {
        let pending: Vec<(u32, u32)> = {
            let state = self.store.data();
            let mut shared = state.shared.lock();
            match shared.notifications.get_mut(&state.plugin_id) {
                Some(q) => q.drain(..).collect(),
                None => Vec::new(),
            }
        };
        for &(ctx, token) in &pending {
            call_opt!(self, on_queue_ready, "proxy_on_queue_ready", ctx, (ctx, token))?;
            self.after_root_callback()?;
        }
        Ok(pending.len())
    }

    fn tick(&mut self) -> Result<(), HostError> {
        if self.failed {
            return Err(HostError::VmFailed);
        }
        if self.store.data().tick_period_ms == 0 {
            return Err(HostError::TickNotEnabled);
        }
        let root = self.root_id();
        call_opt!(self, on_tick, "proxy_on_tick", root, root)?;
        self.after_root_callback()?;
        self.pump()
    }

    fn respond_http_call(&mut self, token: u32, response: Option<CallResponse>) -> Result<(), HostError> {
        if self.failed {
            return Err(HostError::VmFailed);
        }
        let state = self.store.data_mut();
        let Some(call) = state.http_calls.iter_mut().find(|c| c.token == token) else {
            return Err(HostError::UnknownHttpCall { token });
        };
        match call.state {
            HttpCallState::Pending => {}
            HttpCallState::Cancelled => return Err(HostError::HttpCallCancelled { token }),
            _ => return Err(HostError::UnknownHttpCall { token }),
        }
        let ctx = call.context_id;
        let alive = ctx == state.root_id || state.streams.get(&ctx).is_some_and(|s| !s.finished);
        if !alive {
            call.state = HttpCallState::Cancelled;
            return Err(HostError::HttpCallCancelled { token });
        }
        call.state = if response.is_some() { HttpCallState::Responded } else { HttpCallState::Failed };
        let response = response.unwrap_or_default();
        let nh = response.headers.len() as u32;
        let nb = response.body.len() as u32;
        let nt = response.trailers.len() as u32;
        state.call_response = Some(response);
        let r = call_opt!(self, on_http_call_response, "proxy_on_http_call_response", ctx, (ctx, token, nh, nb, nt));
        self.store.data_mut().call_response = None;
        r?;
        if ctx != self.root_id() {
            self.settle(ctx, None)?;
        }
        self.after_root_callback()?;
        self.pump()
    }

    fn shutdown(&mut self) -> Result<bool, HostError> {
        let root = self.root_id();
        let done = call_opt!(self, on_done, "proxy_on_done", root, root)?;
        if done == Some(0) {
            self.store.data_mut().root_done_pending = true;
            return Ok(false);
        }
        call_opt!(self, on_delete, "proxy_on_delete", root, root)?;
        Ok(true)
    }

    fn advance_time(&mut self, by: Duration) -> Result<u32, HostError> {
        let by_ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        if let Clock::Manual { now_ns } = &mut self.store.data_mut().clock {
            *now_ns = now_ns.saturating_add(by_ns);
        }
        let period_ns = u64::from(self.store.data().tick_period_ms) * 1_000_000;
        if period_ns == 0 {
            self.tick_accum_ns = 0;
            return Ok(0);
        }
        self.tick_accum_ns = self.tick_accum_ns.saturating_add(by_ns);
        let mut fired = 0;
        while self.tick_accum_ns >= period_ns {
            self.tick_accum_ns -= period_ns;
            self.tick()?;
            fired += 1;
        }
        Ok(fired)
    }
}

/// A started proxy-wasm VM with its root context: one Envoy worker's copy
/// of the filter. `Send`; cheap handles ([`Exchange`]) share it.
pub struct Plugin {
    pub(crate) inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").finish_non_exhaustive()
    }
}

impl Plugin {
    /// A builder for the module at `path` (compiled once per process; see
    /// [`CompiledModule::from_file`]).
    pub fn builder(path: impl AsRef<Path>) -> PluginBuilder {
        PluginBuilder::new(Source::Path(path.as_ref().to_path_buf()))
    }

    /// A builder for an already compiled module.
    pub fn builder_from(module: &CompiledModule) -> PluginBuilder {
        PluginBuilder::new(Source::Compiled(module.clone()))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The root context id (1, as in Envoy: 0 is the VM context).
    pub fn root_context_id(&self) -> u32 {
        self.lock().root_id()
    }

    /// Creates an HTTP context (one stream): `proxy_on_context_create(id,
    /// root)`.
    pub fn http_context(&self) -> Result<Exchange, HostError> {
        let id = self.lock().create_http_context()?;
        Ok(Exchange::new(self.inner.clone(), id))
    }

    /// Calls `proxy_on_tick` once. Fails with [`HostError::TickNotEnabled`]
    /// when the plugin never set a tick period (Envoy would not tick).
    pub fn tick(&self) -> Result<(), HostError> {
        self.lock().tick()
    }

    /// The tick period the guest set, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        match self.lock().store.data().tick_period_ms {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        }
    }

    /// Moves the clock (a manual clock only; the system clock moves by
    /// itself) and fires the ticks that fall due in that time. Returns the
    /// number of ticks fired.
    pub fn advance_time(&self, by: Duration) -> Result<u32, HostError> {
        self.lock().advance_time(by)
    }

    /// Wasm operators the guest has run so far (wasmtime fuel), when the
    /// process runs with `MESHWARD_HOST_FUEL=1`; `None` otherwise.
    pub fn fuel_consumed(&self) -> Option<u64> {
        let inner = self.lock();
        inner.store.get_fuel().ok().map(|left| u64::MAX - left)
    }

    /// Host calls the guest has made so far (every import, WASI included),
    /// when the process runs with `MESHWARD_HOST_FUEL=1`; `None` otherwise.
    /// In Envoy each one crosses from V8 into C++.
    pub fn host_calls(&self) -> Option<u64> {
        fuel_counting().then(|| self.lock().store.data().host_calls)
    }

    /// Every `proxy_log` message at or above the configured level.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.lock().store.data().logs.clone()
    }

    /// Returns and clears the captured logs.
    pub fn take_logs(&self) -> Vec<LogEntry> {
        std::mem::take(&mut self.lock().store.data_mut().logs)
    }

    /// What the guest wrote to stdout (WASI `fd_write(1)`).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.lock().store.data().stdout).into_owned()
    }

    /// What the guest wrote to stderr (Rust panic messages land here).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.lock().store.data().stderr).into_owned()
    }

    /// A metric by name (as the guest defined it, without Envoy's
    /// `wasmcustom.` prefix).
    pub fn metric(&self, name: &str) -> Option<MetricValue> {
        self.shared_state().metric(name)
    }

    /// A counter's or gauge's value.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.metric(name).and_then(|m| m.value())
    }

    /// Every metric, sorted by name.
    pub fn metrics(&self) -> Vec<(String, MetricValue)> {
        self.shared_state().metrics()
    }

    /// Every HTTP call the guest dispatched, in order, with its state.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.lock().store.data().http_calls.clone()
    }

    /// The calls still waiting for a response.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        self.http_calls().into_iter().filter(|c| c.state == HttpCallState::Pending).collect()
    }

    /// Delivers a response to call `token` (`proxy_on_http_call_response`,
    /// with the effective context set to the dispatching context).
    pub fn respond_to_http_call(&self, token: u32, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        self.respond_to_http_call_with_trailers(token, headers, body, &[])
    }

    /// Like [`Plugin::respond_to_http_call`], with trailers.
    pub fn respond_to_http_call_with_trailers(
        &self,
        token: u32,
        headers: &[(&str, &str)],
        body: &[u8],
        trailers: &[(&str, &str)],
    ) -> Result<(), HostError> {
        let response = CallResponse {
            headers: HeaderMap::from_pairs(headers),
            body: body.to_vec(),
            trailers: HeaderMap::from_pairs(trailers),
        };
        self.lock().respond_http_call(token, Some(response))
    }

    /// Fails call `token` as Envoy does on a timeout or reset: the
    /// callback gets zero headers, no body.
    pub fn fail_http_call(&self, token: u32) -> Result<(), HostError> {
        self.lock().respond_http_call(token, None)
    }

    /// The shared data, queues and metrics this plugin uses.
    pub fn shared_state(&self) -> SharedState {
        self.lock().store.data().shared.clone()
    }

    /// The items in this plugin's `vm_id` queue `name`, oldest first.
    pub fn shared_queue(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        let (shared, vm) = self.shared_and_vm();
        shared.queue_items(&vm, name)
    }

    /// Removes and returns every item of queue `name`.
    pub fn drain_shared_queue(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        let (shared, vm) = self.shared_and_vm();
        shared.drain_queue(&vm, name)
    }

    /// Enqueues an item from outside (another VM); the queue's owner is
    /// notified at the next pump (immediately here in `Auto` mode).
    pub fn enqueue_shared_queue(&self, name: &str, item: &[u8]) -> Result<(), HostError> {
        let (shared, vm) = self.shared_and_vm();
        if !shared.enqueue(&vm, name, item) {
            return Err(HostError::UnknownQueue { vm_id: vm, name: name.into() });
        }
        self.lock().pump()
    }

    /// Delivers pending `proxy_on_queue_ready` notifications now.
    pub fn deliver_queue_ready(&self) -> Result<usize, HostError> {
        self.lock().deliver_queue_ready()
    }

    /// Shared data `key` of this plugin's `vm_id`: value and CAS.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let (shared, vm) = self.shared_and_vm();
        shared.shared_data(&vm, key.as_bytes())
    }

    fn shared_and_vm(&self) -> (SharedState, String) {
        let inner = self.lock();
        let s = inner.store.data();
        (s.shared.clone(), s.vm_id.clone())
    }

    /// Sets a plugin-wide property after start.
    pub fn set_property(&self, path: &[&str], value: &[u8]) {
        self.lock().store.data_mut().properties.insert(property_key(path), value.to_vec());
    }

    /// Reads a property as the root context would see it.
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        let state = inner.store.data_mut();
        state.effective = state.root_id;
        let mut out = Vec::new();
        hostcalls::lookup_property(state, &property_key(path), &mut out).then_some(out)
    }

    /// Names (`module.name`) of unimplemented imports the guest called.
    pub fn unimplemented_calls(&self) -> Vec<String> {
        self.lock().store.data().unimplemented_calls.clone()
    }

    /// Whether a trap killed the VM.
    pub fn is_failed(&self) -> bool {
        self.lock().failed
    }

    /// Stops the plugin as Envoy does on config removal: `proxy_on_done`
    /// on the root context, then `proxy_on_delete` — at once when it
    /// returned true (`Ok(true)`), or when the guest later calls
    /// `proxy_done` (`Ok(false)`).
    pub fn shutdown(&self) -> Result<bool, HostError> {
        self.lock().shutdown()
    }

    /// Reads an exported integer global (for hand-written test guests).
    pub fn exported_global(&self, name: &str) -> Option<i64> {
        let mut inner = self.lock();
        let Inner { store, instance, .. } = &mut *inner;
        let g = instance.get_global(&mut *store, name)?;
        match g.get(&mut *store) {
            Val::I32(v) => Some(i64::from(v)),
            Val::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Sends a whole request through a new HTTP context: headers (end of
    /// stream when `body` is empty), then the body in `chunk_size` pieces
    /// (0 = one piece). Stops feeding once the filter ends the stream (a
    /// local response). The exchange is returned unfinished, so the test
    /// can go on with the response; dropping it finishes the stream.
    pub fn send_request(
        &self,
        headers: &[(&str, &str)],
        body: &[u8],
        chunk_size: usize,
    ) -> Result<Exchange, HostError> {
        let chunks: Vec<&[u8]> = if body.is_empty() {
            Vec::new()
        } else if chunk_size == 0 {
            vec![body]
        } else {
            body.chunks(chunk_size).collect()
        };
        self.send_request_chunks(headers, &chunks)
    }

    /// Like [`Plugin::send_request`] with explicit chunks (any split).
    pub fn send_request_chunks(&self, headers: &[(&str, &str)], chunks: &[&[u8]]) -> Result<Exchange, HostError> {
        let mut ex = self.http_context()?;
        ex.request_headers(headers, chunks.is_empty())?;
        for (i, chunk) in chunks.iter().enumerate() {
            if ex.is_request_closed() {
                break;
            }
            ex.request_body(chunk, i + 1 == chunks.len())?;
        }
        Ok(ex)
    }
}
