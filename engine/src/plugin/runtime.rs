//! The wasmtime embedding: one engine, components loaded and checked before instantiation, and
//! instances that run under a CPU deadline, a memory cap and only the capabilities granted.
//!
//! # Sandbox
//! * **CPU.** Epoch interruption: a background thread advances the engine's epoch every
//!   [`TICK`]; each call gets a deadline of `cpu_ms_per_batch` ticks and traps past it. It costs
//!   nearly nothing for compiled guests (unlike fuel).
//! * **Memory.** A resource limiter refuses linear-memory and table growth past `memory_mb`
//!   and traps with a message that names the limit.
//! * **Capabilities.** WASI is linked, but its context grants nothing by default: no preopened
//!   directories, no sockets (TCP, UDP and name lookup off), no environment, no arguments, no
//!   stdin. Without the `clock` grant the wall clock reads 1970-01-01T00:00:00Z and the monotonic
//!   clock stands still; without `random` both random sources are a fixed-seed stream. A plugin
//!   that is not granted them is deterministic, so replaying recorded events through it
//!   reproduces its output exactly. Guest stderr is kept (64 KiB) so a panic message reaches the
//!   error report.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "plugin",
    });
}

pub use bindings::walrelay::plugin::types as wit;

/// The WIT package versions this host runs. A component exporting another version is refused
/// before instantiation.
pub const SUPPORTED_INTERFACES: &[&str] = &["walrelay:plugin/transform@0.1.0"];

/// How often the epoch advances: the granularity of CPU deadlines.
pub const TICK: Duration = Duration::from_millis(1);

const STDERR_CAPACITY: usize = 64 * 1024;

/// Per-plugin limits (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call (init or one transform), in milliseconds.
    pub cpu_ms_per_batch: u64,
    /// Cap on the instance's linear memory, in MiB.
    pub memory_mb: u64,
    /// Cap on the size of one call's output (strings, bytes and values, approximately).
    pub max_output_bytes: u64,
    /// At most this many output events per input event.
    pub max_fan_out: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_ms_per_batch: 100,
            memory_mb: 64,
            max_output_bytes: 16 * 1024 * 1024,
            max_fan_out: 16,
        }
    }
}

/// A directory the operator grants a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    pub readonly: bool,
}

/// Capabilities beyond the host interface; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub dirs: Vec<DirGrant>,
    pub network: bool,
    pub clock: bool,
    pub random: bool,
}

/// Errors of loading and running plugins. Messages name the plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{plugin}`: cannot set up the WebAssembly engine: {message}")]
    Engine { plugin: String, message: String },
    #[error("plugin `{plugin}`: {path} is not a loadable WebAssembly component: {message}")]
    Compile {
        plugin: String,
        path: PathBuf,
        message: String,
    },
    #[error("plugin `{plugin}`: {path} exports {found}, and this relay runs {supported}; rebuild the plugin against a supported walrelay-plugin-sdk")]
    Interface {
        plugin: String,
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("plugin `{plugin}`: {path} imports `{import}`, which walrelay does not provide (it provides walrelay:plugin/host and WASI 0.2)")]
    Import {
        plugin: String,
        path: PathBuf,
        import: String,
    },
    #[error("plugin `{plugin}`: cannot instantiate: {message}")]
    Instantiate { plugin: String, message: String },
    #[error("plugin `{plugin}` refused its configuration: {message}")]
    Config { plugin: String, message: String },
}

/// How one call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("exceeded its CPU budget of {0} ms")]
    Deadline(u64),
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an error: {0}")]
    Returned(String),
    #[error("returned malformed output: {0}")]
    Malformed(String),
}

impl CallError {
    /// Whether the instance is unusable afterwards (a trap poisons it).
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            CallError::Deadline(_) | CallError::Memory(_) | CallError::Trap(_)
        )
    }
}

/// The store's data: WASI state, the memory limiter and the plugin's name for its log lines.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    plugin: Arc<str>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::walrelay::plugin::host::Host for HostState {
    fn log(&mut self, level: wit::Level, message: String) {
        const MAX: usize = 4096;
        let mut message = message;
        if message.len() > MAX {
            let mut cut = MAX;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            wit::Level::Trace => tracing::trace!(plugin, "{message}"),
            wit::Level::Debug => tracing::debug!(plugin, "{message}"),
            wit::Level::Info => tracing::info!(plugin, "{message}"),
            wit::Level::Warn => tracing::warn!(plugin, "{message}"),
            wit::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl bindings::walrelay::plugin::types::Host for HostState {}

/// Refuses growth past the cap and remembers that it did, so the trap can be reported as such.
struct MemoryLimiter {
    max_bytes: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} MiB exceeded",
                self.max_bytes >> 20
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Where compiled components are cached: `$WALRELAY_CACHE_DIR/wasm`, else
/// `$XDG_CACHE_HOME/walrelay/wasm`, else `~/.cache/walrelay/wasm`.
fn compile_cache_dir() -> PathBuf {
    let base = std::env::var_os("WALRELAY_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("walrelay")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/walrelay")))
        .unwrap_or_else(|| std::env::temp_dir().join("walrelay-cache"));
    base.join("wasm")
}

/// The shared engine and linker; advances the epoch in the background while alive.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    ticker_stop: Arc<AtomicBool>,
}

impl PluginRuntime {
    pub fn new() -> Result<Self, PluginError> {
        let engine_err = |e: wasmtime::Error| PluginError::Engine {
            plugin: "(all)".into(),
            message: format!("{e:#}"),
        };
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Compile on the calling thread: with a pool of compiler threads, what they freed stays
        // with their idle allocator heaps (a cold start kept ~70 MB more resident for good).
        // Compiling is once per plugin version (see the cache below).
        config.parallel_compilation(false);
        // Compiled components are cached on disk, keyed by engine configuration, compiler and
        // the component's bytes: a restart (or a second chain) loads in milliseconds instead of
        // compiling again.
        let cache_dir = compile_cache_dir();
        let mut cache_config = wasmtime::CacheConfig::new();
        cache_config.with_directory(&cache_dir);
        match wasmtime::Cache::new(cache_config) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(e) => {
                tracing::warn!(dir = %cache_dir.display(), error = %e, "compiled-plugin cache disabled")
            }
        }
        // `WALRELAY_WASM_PERFMAP=1` writes /tmp/perf-<pid>.map so that `perf report` names the
        // plugins' functions (build them unstripped to see names rather than indices).
        if std::env::var_os("WALRELAY_WASM_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
        bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("walrelay-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Engine {
                plugin: "(all)".into(),
                message: e.to_string(),
            })?;
        Ok(PluginRuntime {
            engine,
            linker,
            ticker_stop,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component and checks what it exports and imports, before any instantiation.
    pub fn load(&self, name: &str, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let component =
            Component::from_file(&self.engine, path).map_err(|e| PluginError::Compile {
                plugin: name.into(),
                path: path.into(),
                message: format!("{e:#}"),
            })?;
        let shape = Shape::of(&self.engine, &component);
        if !shape
            .exports
            .iter()
            .any(|e| SUPPORTED_INTERFACES.contains(&e.as_str()))
        {
            let found = shape
                .exports
                .iter()
                .find(|e| e.starts_with("walrelay:plugin/"))
                .cloned()
                .unwrap_or_else(|| {
                    format!(
                        "no walrelay:plugin interface (exports: {})",
                        shape.exports.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                });
            return Err(PluginError::Interface {
                plugin: name.into(),
                path: path.into(),
                found,
                supported: SUPPORTED_INTERFACES.join(", "),
            });
        }
        if let Some(import) = shape.imports.iter().find(|i| {
            !(i.starts_with("wasi:") && i.contains("@0.2.")
                || i.as_str() == "walrelay:plugin/host@0.1.0"
                || i.as_str() == "walrelay:plugin/types@0.1.0")
        }) {
            return Err(PluginError::Import {
                plugin: name.into(),
                path: path.into(),
                import: import.clone(),
            });
        }
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| PluginError::Instantiate {
                    plugin: name.into(),
                    message: format!("{e:#}"),
                })?;
        let pre = bindings::PluginPre::new(pre).map_err(|e| PluginError::Instantiate {
            plugin: name.into(),
            message: format!("{e:#}"),
        })?;
        Ok(LoadedPlugin {
            name: name.into(),
            engine: self.engine.clone(),
            pre,
            shape,
        })
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// What a component exports and imports, by interface name (`walrelay:plugin/transform@0.1.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub exports: BTreeSet<String>,
    pub imports: BTreeSet<String>,
}

impl Shape {
    pub fn of(engine: &Engine, component: &Component) -> Shape {
        let ty = component.component_type();
        Shape {
            exports: ty.exports(engine).map(|(n, _)| n.to_string()).collect(),
            imports: ty.imports(engine).map(|(n, _)| n.to_string()).collect(),
        }
    }
}

/// A compiled, checked component, ready to be instantiated many times.
pub struct LoadedPlugin {
    name: Arc<str>,
    engine: Engine,
    pre: bindings::PluginPre<HostState>,
    shape: Shape,
}

impl LoadedPlugin {
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Instantiates with `limits` and `grants`, and calls `init(config_json)` under the CPU
    /// deadline. Returns the instance and what the plugin says about itself.
    pub fn instantiate(
        &self,
        config_json: &str,
        limits: Limits,
        grants: &Grants,
    ) -> Result<(PluginInstance, wit::PluginInfo), PluginError> {
        let inst_err = |message: String| PluginError::Instantiate {
            plugin: self.name.to_string(),
            message,
        };
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone());
        for d in &grants.dirs {
            let perms = if d.readonly {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&d.host, &d.guest, perms).map_err(|e| {
                inst_err(format!(
                    "cannot grant directory {} as {}: {e:#}",
                    d.host.display(),
                    d.guest
                ))
            })?;
        }
        if grants.network {
            wasi.inherit_network()
                .allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(true);
        } else {
            wasi.allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false);
        }
        if !grants.clock {
            wasi.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
        }
        if !grants.random {
            wasi.secure_random(FixedRandom::new(0x5eed_0001))
                .insecure_random(FixedRandom::new(0x5eed_0002))
                .insecure_random_seed(0x5eed);
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                max_bytes: (limits.memory_mb as usize) << 20,
                exceeded: false,
            },
            plugin: self.name.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(limits.cpu_ms_per_batch));
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => {
                let call = classify(&store, &stderr, limits, e);
                return Err(inst_err(call.to_string()));
            }
        };
        let mut instance = PluginInstance {
            store,
            bindings,
            stderr,
            limits,
        };
        let info = instance
            .call(|b, s| b.walrelay_plugin_transform().call_init(s, config_json))
            .map_err(|e| match e {
                CallError::Returned(message) => PluginError::Config {
                    plugin: self.name.to_string(),
                    message,
                },
                other => inst_err(format!("init {other}")),
            })?;
        Ok((instance, info))
    }
}

/// A live instance. After a call that poisons it (see [`CallError::poisons_instance`]) it must be
/// dropped and a new one made.
pub struct PluginInstance {
    store: Store<HostState>,
    bindings: bindings::Plugin,
    stderr: MemoryOutputPipe,
    limits: Limits,
}

impl PluginInstance {
    /// One `transform` call under the limits. Output-size and fan-out limits are checked here;
    /// the chain validates the events themselves.
    pub fn transform(
        &mut self,
        tables: &[wit::Table],
        events: &[wit::ChangeEvent],
    ) -> Result<wit::BatchOutput, CallError> {
        let out = self.call(|b, s| {
            b.walrelay_plugin_transform()
                .call_transform(s, tables, events)
        })?;
        let max_events = (events.len() as u64)
            .saturating_mul(self.limits.max_fan_out)
            .max(1);
        if out.events.len() as u64 > max_events {
            return Err(CallError::Malformed(format!(
                "{} events out of {} in, above max_fan_out {}",
                out.events.len(),
                events.len(),
                self.limits.max_fan_out
            )));
        }
        let size = output_size(&out);
        if size > self.limits.max_output_bytes {
            return Err(CallError::Malformed(format!(
                "{size} bytes of output, above max_output_bytes {}",
                self.limits.max_output_bytes
            )));
        }
        Ok(out)
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&bindings::Plugin, &mut Store<HostState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallError> {
        self.store
            .set_epoch_deadline(deadline_ticks(self.limits.cpu_ms_per_batch));
        match f(&self.bindings, &mut self.store) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(message)) => Err(CallError::Returned(message)),
            Err(e) => Err(classify(&self.store, &self.stderr, self.limits, e)),
        }
    }
}

fn deadline_ticks(cpu_ms: u64) -> u64 {
    (cpu_ms.max(1) * 1000).div_ceil(TICK.as_micros() as u64)
}

/// Names a trap: deadline, memory limit, or the guest's own trap with its stderr (a panic
/// message) attached.
fn classify(
    store: &Store<HostState>,
    stderr: &MemoryOutputPipe,
    limits: Limits,
    e: wasmtime::Error,
) -> CallError {
    if store.data().limiter.exceeded {
        return CallError::Memory(limits.memory_mb);
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return CallError::Deadline(limits.cpu_ms_per_batch);
    }
    let mut message = format!("{e:#}");
    let captured = stderr.contents();
    let text = String::from_utf8_lossy(&captured);
    let text = text.trim();
    if !text.is_empty() {
        let start = text.len().saturating_sub(2000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        message = format!("{message}; the plugin wrote: {}", &text[start..]);
    }
    CallError::Trap(message)
}

/// The approximate memory a value takes on the host: its string or bytes plus a fixed cost.
pub(crate) fn value_size(v: &wit::Value) -> u64 {
    16 + match v {
        wit::Value::Numeric(s)
        | wit::Value::Text(s)
        | wit::Value::Uuid(s)
        | wit::Value::Json(s) => s.len() as u64,
        wit::Value::Bytes(b) => b.len() as u64,
        _ => 0,
    }
}

fn headers_size(h: &[wit::Header]) -> u64 {
    h.iter()
        .map(|h| (h.key.len() + h.value.len()) as u64 + 16)
        .sum()
}

/// The approximate memory an event takes on the host.
pub(crate) fn event_size(e: &wit::ChangeEvent) -> u64 {
    64 + e.topic.as_ref().map_or(0, |t| t.len() as u64)
        + e.headers.as_deref().map_or(0, headers_size)
        + e.before
            .iter()
            .chain(e.after.iter())
            .flat_map(|r| r.iter())
            .map(value_size)
            .sum::<u64>()
}

/// An approximation of the memory an output takes on the host: every string and byte buffer
/// plus a fixed cost per value.
fn output_size(out: &wit::BatchOutput) -> u64 {
    let tables: u64 = out
        .tables
        .iter()
        .map(|t| {
            t.schema.len() as u64
                + t.name.len() as u64
                + t.columns
                    .iter()
                    .map(|c| c.name.len() as u64 + c.type_name.len() as u64 + 64)
                    .sum::<u64>()
        })
        .sum();
    let events: u64 = out
        .events
        .iter()
        .map(|o| match o {
            wit::Output::Change(e) => event_size(e),
            wit::Output::Plain(r) => {
                64 + r.topic.len() as u64
                    + r.key.as_ref().map_or(0, |k| k.len() as u64)
                    + r.value.as_ref().map_or(0, |v| v.len() as u64)
                    + headers_size(&r.headers)
            }
            wit::Output::Keep(_) => 8,
            wit::Output::Patch(p) => {
                64 + p.topic.as_ref().map_or(0, |t| t.len() as u64)
                    + p.headers.as_deref().map_or(0, headers_size)
                    + p.before
                        .iter()
                        .chain(p.after.iter())
                        .map(|(_, v)| 8 + value_size(v))
                        .sum::<u64>()
            }
        })
        .sum();
    tables + events
}

/// The clock a plugin sees without the `clock` grant: the Unix epoch, standing still.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The randomness a plugin sees without the `random` grant: a fixed-seed SplitMix64 stream.
struct FixedRandom(u64);

impl FixedRandom {
    fn new(seed: u64) -> Self {
        FixedRandom(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl rand_core::TryRng for FixedRandom {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next() as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_random_is_deterministic_and_not_constant() {
        let mut a = FixedRandom::new(7);
        let mut b = FixedRandom::new(7);
        let xs: Vec<u64> = (0..4).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
    }

    #[test]
    fn deadline_ticks_round_up() {
        assert_eq!(deadline_ticks(100), 100);
        assert_eq!(deadline_ticks(0), 1);
    }
}
