//! A component loaded once, with its exports resolved and their fast-path shapes
//! probed, and the instances its calls run in (fresh per call, or warm and reused).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use futures::FutureExt as _;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{
    Component as WasmComponent, ComponentExportIndex, Func, InstancePre, Linker, LinkerInstance,
    ResourceType, Val,
};
use wasmtime::{Engine, Store};
use wrpc_transport::Index;

use super::engine::EPOCH_TICK;
use super::fast::{self, Failure, Shape};
use super::scan;
use super::serve::{GuardedOutgoing, ResultsSlot, describe, panic_message, within_limit};
use super::state::{HostState, ValImports};
use crate::host::{AnyIncoming, Dispatcher, InstanceMode, LimitsConfig, ServeOutgoing};

/// Host-defined resources shared with guests: none in this runtime.
pub(crate) type HostResources = Arc<HashMap<Box<str>, HashMap<Box<str>, (ResourceType, ResourceType)>>>;

/// Spare store data kept per component for the next fresh instance (see
/// [`HostState::reset`]): enough for the calls that run at once on 2–8 cores.
const SPARE_STATES: usize = 64;

/// One function a component exports, resolved when the component is loaded.
#[derive(Clone)]
pub struct Export {
    interface: Arc<str>,
    name: Arc<str>,
    /// The name wRPC serves it under (`[method]`/`[static]` prefixes stripped).
    rpc_name: Arc<str>,
    index: ComponentExportIndex,
    params: Arc<[Type]>,
    results: Arc<[Type]>,
    shape: Option<Shape>,
    /// Where in the parameters async values (`wasi:io` streams) arrive.
    paths: Arc<[Box<[Option<usize>]>]>,
}

impl Export {
    /// The exporting interface, e.g. `wrpc-ring:examples/greeter`; empty for a function
    /// exported at the component's root.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter types, in order.
    pub fn params(&self) -> &[Type] {
        &self.params
    }

    /// The result types, in order.
    pub fn results(&self) -> &[Type] {
        &self.results
    }

    /// The function's signature in WIT when it takes the typed fast path (e.g.
    /// `(string) -> list<u8>`), `None` when it takes the `Val` path; see
    /// `docs/runtime.md` for the shapes.
    pub fn fast_path(&self) -> Option<String> {
        self.shape.map(|shape| shape.to_string())
    }

    pub(crate) fn rpc_name(&self) -> &str {
        &self.rpc_name
    }

    pub(crate) fn paths(&self) -> &Arc<[Box<[Option<usize>]>]> {
        &self.paths
    }
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.interface, self.name)
    }
}

/// An instance with its store, lent to one call at a time.
struct Lease {
    store: Store<HostState>,
    instance: wasmtime::component::Instance,
    /// Calls it has served.
    uses: u32,
}

/// A WebAssembly component loaded into a [`Runtime`](super::Runtime): compiled and
/// linked once, every export's index and types resolved at load time, its calls run
/// in an instance from the pooling allocator.
///
/// # Instances
///
/// With [`InstanceMode::Fresh`] (the default) every call gets a fresh instance: no
/// call can see what another left in the guest's memory. With
/// [`InstanceMode::Reuse`] the component keeps up to `limits.max_instances` warm
/// instances and lends one to each call, up to `max_uses` calls each: much faster, but
/// guest state (globals, heap, anything a guest caches) survives from one call to the
/// next, so it suits components written to serve many requests, as with `wasmtime
/// serve`. An instance whose call trapped — including running past its time limit or
/// memory limit — is thrown away and never serves again.
///
/// # Imports
///
/// The component's imports that are not WASI are polyfilled through the host's
/// [`Dispatcher`]: an import call goes to the component the host links it to, over the
/// local transport or NATS. WASI p2 is linked for guests that need it.
///
/// # Fast path
///
/// Exports and imports whose parameters and results are byte strings (`list<u8>`,
/// `string`) or scalars in one of the shapes listed in `docs/runtime.md` are called
/// through wasmtime's typed API and the wire format is encoded and decoded in place,
/// with no `Val` per value; every other signature takes the `Val` path of
/// `wrpc-runtime-wasmtime`. Both write the same bytes on the wire.
///
/// # Limits
///
/// Each call runs with the host's limits: its time (the invocation timeout, enforced by
/// epoch interruption: a guest that runs too long traps) and its memory
/// (`limits.max_memory`: a guest that grows beyond it traps).
pub struct Component {
    pub(crate) id: Arc<str>,
    pre: InstancePre<HostState>,
    exports: Vec<Export>,
    /// interface → function → index in `exports`.
    by_name: HashMap<Box<str>, HashMap<Box<str>, usize>>,
    pub(crate) io_streams: Arc<[ResourceType]>,
    pub(crate) host_resources: HostResources,
    /// The result types of the imports on the `Val` path, walked before they decode.
    val_imports: Arc<ValImports>,
    dispatcher: Dispatcher,
    limits: LimitsConfig,
    mode: InstanceMode,
    max_uses: u32,
    /// The epoch deadline of one call, in ticks.
    ticks: u64,
    warm: Mutex<Vec<Lease>>,
    spare: Mutex<Vec<HostState>>,
}

/// How a component's calls get their instances: [`InstanceMode`] and `max_uses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instances {
    pub(crate) mode: InstanceMode,
    pub(crate) max_uses: u32,
    /// Whether fast-path shapes are used at all (`[runtime] fast_path`).
    pub(crate) fast_path: bool,
}

impl Component {
    pub(crate) fn load(
        engine: &Engine,
        dispatcher: &Dispatcher,
        limits: &LimitsConfig,
        instances: Instances,
        id: &str,
        wasm: &[u8],
    ) -> anyhow::Result<Self> {
        let component = WasmComponent::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("`{id}` is not a valid WebAssembly component"))?;
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to link WASI p2")?;
        let host_resources: HostResources = Arc::default();
        let mut val_imports = ValImports::new(usize::try_from(limits.max_memory.0).unwrap_or(usize::MAX));
        let ty = component.component_type();
        for (name, item) in ty.imports(engine) {
            if name.starts_with("wasi:") {
                continue; // provided by WASI p2 above
            }
            link_import(
                engine,
                &mut linker,
                &host_resources,
                &mut val_imports,
                instances.fast_path,
                name,
                item,
            )
            .with_context(|| format!("failed to link import `{name}` of `{id}` to the dispatcher"))?;
        }
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to link `{id}`"))?;
        let io_streams: Arc<[ResourceType]> =
            wrpc_runtime_wasmtime::paths::wasi_io_stream_resources(engine, &ty).into();

        let mut exports = Vec::new();
        for (name, item) in ty.exports(engine) {
            match item {
                ComponentItem::ComponentFunc(func) => {
                    let index = component
                        .get_export_index(None, name)
                        .context("export vanished")?;
                    exports.push(export("", name, index, &func, &io_streams, instances.fast_path));
                }
                ComponentItem::ComponentInstance(instance) => {
                    let instance_index = instance_index_of(&component, name)?;
                    for (func_name, item) in instance.exports(engine) {
                        if let ComponentItem::ComponentFunc(func) = item {
                            let index = component
                                .get_export_index(Some(&instance_index), func_name)
                                .context("export vanished")?;
                            exports.push(export(
                                name,
                                func_name,
                                index,
                                &func,
                                &io_streams,
                                instances.fast_path,
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut by_name: HashMap<Box<str>, HashMap<Box<str>, usize>> = HashMap::new();
        for (i, e) in exports.iter().enumerate() {
            by_name
                .entry(e.interface.as_ref().into())
                .or_default()
                .insert(e.name.as_ref().into(), i);
        }
        let ticks = limits
            .invocation_timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1);
        let mut this = Self {
            id: id.into(),
            pre,
            exports,
            by_name,
            io_streams,
            host_resources,
            val_imports: Arc::new(val_imports),
            dispatcher: dispatcher.clone(),
            limits: limits.clone(),
            mode: instances.mode,
            max_uses: instances.max_uses.max(1),
            ticks: u64::try_from(ticks).unwrap_or(u64::MAX),
            warm: Mutex::default(),
            spare: Mutex::default(),
        };
        this.probe()?;
        Ok(this)
    }

    /// Confirms each export's fast-path shape with wasmtime's own type check
    /// (`Func::typed`) on one instance; a shape that does not check takes the `Val`
    /// path. The instance then serves the first call in reuse mode.
    fn probe(&mut self) -> anyhow::Result<()> {
        if self.exports.iter().all(|e| e.shape.is_none()) {
            return Ok(());
        }
        let mut store = self.new_store();
        // Instantiation may run wasm (a core module's `start` function): without a
        // deadline the epoch check would trap it at once.
        store.set_epoch_deadline(self.ticks);
        // Imports are async host functions, so only `instantiate_async` works; it needs
        // no async runtime (no import runs while instantiating), and load time is
        // blocking work anyway (compilation).
        let instance = futures::executor::block_on(self.pre.instantiate_async(&mut store))
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to instantiate `{}` to probe its exports", self.id))?;
        for export in &mut self.exports {
            let Some(shape) = export.shape else { continue };
            let func = instance
                .get_func(&mut store, export.index)
                .context("export index does not resolve")?;
            if !shape.probe(&func, &store) {
                tracing::warn!(component = %self.id, export = ?export, %shape, "fast-path shape did not type-check; using the Val path");
                export.shape = None;
            }
        }
        if self.mode == InstanceMode::Reuse {
            lock(&self.warm).push(Lease {
                store,
                instance,
                uses: 0,
            });
        }
        Ok(())
    }

    /// The component's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How its calls get their instances.
    pub fn instance_mode(&self) -> InstanceMode {
        self.mode
    }

    /// Warm instances waiting for a call (reuse mode; always 0 with fresh instances).
    /// At most `limits.max_instances`.
    pub fn warm_instances(&self) -> usize {
        lock(&self.warm).len()
    }

    /// Every function the component exports.
    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    /// The export `func` of `interface` (a version suffix on `interface` is ignored if
    /// the component exports it without one, and the other way round).
    ///
    /// # Errors
    ///
    /// Names the component and lists its exports when there is no such function.
    pub fn export(&self, interface: &str, func: &str) -> anyhow::Result<&Export> {
        self.export_index(interface, func).map(|i| &self.exports[i])
    }

    fn export_index(&self, interface: &str, func: &str) -> anyhow::Result<usize> {
        let base = |s: &str| s.split_once('@').map_or(s, |(b, _)| b).to_string();
        let exact = self
            .by_name
            .get(interface)
            .and_then(|funcs| funcs.get(func))
            .copied();
        let found = exact.or_else(|| {
            self.exports
                .iter()
                .position(|e| &*e.name == func && base(&e.interface) == base(interface))
        });
        match found {
            Some(i) => Ok(i),
            None => {
                let known: Vec<_> = self.exports.iter().map(|e| format!("{e:?}")).collect();
                anyhow::bail!(
                    "component `{}` does not export `{interface}#{func}` (it exports: {})",
                    self.id,
                    known.join(", ")
                )
            }
        }
    }

    /// The most linear memory one instance may grow to, in bytes.
    fn max_memory(&self) -> usize {
        usize::try_from(self.limits.max_memory.0).unwrap_or(usize::MAX)
    }

    /// A store for one fresh instance, with the call's time and memory limits.
    fn new_store(&self) -> Store<HostState> {
        let state = lock(&self.spare).pop().unwrap_or_else(|| {
            HostState::new(
                self.dispatcher.clone(),
                self.val_imports.clone(),
                &self.id,
                self.max_memory(),
            )
        });
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        store
    }

    /// An instance for one call: a warm one (reuse mode) or a fresh one.
    async fn lease(&self) -> anyhow::Result<Lease> {
        if self.mode == InstanceMode::Reuse {
            if let Some(mut lease) = lock(&self.warm).pop() {
                lease.store.set_epoch_deadline(self.ticks);
                return Ok(lease);
            }
        }
        let mut store = self.new_store();
        store.set_epoch_deadline(self.ticks);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to instantiate `{}`", self.id))?;
        Ok(Lease {
            store,
            instance,
            uses: 0,
        })
    }

    /// Ends a call's use of `lease`: back to the warm pool if it may serve again
    /// (`healthy`: the guest did not trap), otherwise dropped, its store data kept for
    /// the next fresh instance.
    fn finish(&self, mut lease: Lease, healthy: bool) {
        lease.uses += 1;
        if self.mode == InstanceMode::Reuse && healthy && lease.uses < self.max_uses {
            let mut warm = lock(&self.warm);
            if warm.len() < self.limits.max_instances {
                warm.push(lease);
                return;
            }
        }
        let mut state = lease.store.into_data();
        state.reset();
        let mut spare = lock(&self.spare);
        if spare.len() < SPARE_STATES {
            spare.push(state);
        }
    }

    fn func(&self, lease: &mut Lease, export: &Export) -> anyhow::Result<Func> {
        lease
            .instance
            .get_func(&mut lease.store, export.index)
            .with_context(|| format!("export `{export:?}` of `{}` does not resolve", self.id))
    }

    fn failed(&self, export: &Export, err: &anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "`{}#{}` of `{}` failed: {}",
            export.interface,
            export.name,
            self.id,
            describe(err)
        )
    }

    /// Calls `export` on the fast path: parameters from `rd`, results into `wr`.
    async fn call_fast(
        &self,
        export: &Export,
        shape: Shape,
        rd: &mut fast::Rd,
        wr: &mut fast::Wr,
    ) -> anyhow::Result<()> {
        let mut lease = self.lease().await?;
        let func = self.func(&mut lease, export)?;
        let result = fast::call_export(shape, &mut lease.store, func, rd, wr, self.max_memory()).await;
        self.finish(lease, !matches!(result, Err(Failure::Guest(_))));
        result.map_err(|failure| self.failed(export, &failure.into_error()))
    }

    /// Calls `export` on the `Val` path (`wrpc_runtime_wasmtime::call`).
    async fn call_val<I, O>(&self, export: &Export, incoming: I, outgoing: O) -> anyhow::Result<()>
    where
        I: AsyncRead + Index<I> + Send + Sync + Unpin + 'static,
        O: AsyncWrite + Index<O> + Send + Sync + Unpin + 'static,
    {
        use wrpc_runtime_wasmtime::CallError;

        // The parameters are walked (and their lists bounded) before the upstream
        // decoder sees them, and before an instance is taken for them.
        let mut incoming = scan::Checked::new(
            incoming,
            &export.params,
            self.io_streams.clone(),
            self.max_memory(),
            "parameter",
        );
        incoming.walked().await.map_err(|err| {
            self.failed(
                export,
                &anyhow::Error::from(err).context("failed to decode the parameters"),
            )
        })?;
        let mut lease = self.lease().await?;
        let func = self.func(&mut lease, export)?;
        let result = wrpc_runtime_wasmtime::call(
            &mut lease.store,
            incoming,
            outgoing,
            &[],
            &self.host_resources,
            &self.io_streams,
            export.params.iter(),
            &export.results,
            func,
        )
        .await;
        let trapped = matches!(result, Err(CallError::Call(_) | CallError::PostReturn(_)));
        self.finish(lease, !trapped);
        result.map_err(|err| self.failed(export, &anyhow::Error::from(err)))
    }

    /// Calls export `func` of `interface`, reading its parameters from a transport's
    /// `incoming` stream and writing its results to `outgoing` — the callee side of an
    /// invocation, as a wRPC server runs it.
    ///
    /// This is the call alone: the component's time limit applies to the guest, but
    /// the host's serving policy does not. `limits.max_instances` (the permit), the
    /// wait for the parameters within `invocation_timeout` and the catching of host
    /// panics are what [`Runtime::serve`](super::Runtime::serve) adds around it; a
    /// caller of this method that serves untrusted peers must bound its own
    /// concurrency and wait.
    ///
    /// # Errors
    ///
    /// If there is no such export, the parameters do not decode, the guest traps
    /// (including running past its time limit or memory limit), or the results cannot
    /// be written. The error carries the trap message.
    pub async fn call<I, O>(
        &self,
        interface: &str,
        func: &str,
        incoming: I,
        mut outgoing: O,
    ) -> anyhow::Result<()>
    where
        I: AsyncRead + Index<I> + Send + Sync + Unpin + 'static,
        O: AsyncWrite + Index<O> + Send + Sync + Unpin + 'static,
    {
        let export = self.export(interface, func)?;
        match export.shape {
            Some(shape) => {
                let mut incoming = BufReader::new(incoming);
                self.call_fast(export, shape, &mut incoming, &mut outgoing).await
            }
            None => self.call_val(export, incoming, outgoing).await,
        }
    }

    /// Calls export `func` of `interface` with `params` directly, without any
    /// transport (the host's own entry calls, and the benchmarks' floor). The
    /// component's imports still go through the dispatcher.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), and if `params` do not match the export's types.
    pub async fn call_values(&self, interface: &str, func: &str, params: &[Val]) -> anyhow::Result<Vec<Val>> {
        let export = self.export(interface, func)?;
        let mut lease = self.lease().await?;
        let func = self.func(&mut lease, export)?;
        let mut results = vec![Val::Bool(false); export.results.len()];
        let result = func.call_async(&mut lease.store, params, &mut results).await;
        self.finish(lease, result.is_ok());
        result.map_err(|err| {
            let root = err.root_cause().to_string();
            anyhow::anyhow!(
                "`{}#{}` of `{}` failed: {err}: {root}",
                export.interface,
                export.name,
                self.id
            )
        })?;
        Ok(results)
    }

    /// Serves one call of export `index` that arrived over a [`ComponentServer`]
    /// (crate::host::ComponentServer), to its end: on a trap, an error or a panic the
    /// caller's results stream is aborted with the reason. Runs on the call's own task.
    pub(crate) async fn serve_call(
        &self,
        index: usize,
        mut outgoing: ServeOutgoing,
        mut incoming: AnyIncoming,
    ) {
        let export = &self.exports[index];
        // The call's own limit, from when it was taken up: over NATS nothing tells a
        // callee that its caller is gone, so without it a caller that died while
        // sending its parameters would hold this call's permit for good.
        let limit = self.limits.invocation_timeout;
        let at = tokio::time::Instant::now().checked_add(limit);
        let reason = match export.shape {
            Some(shape) => {
                let call = self.call_fast(export, shape, &mut incoming, &mut outgoing);
                let call = pin!(AssertUnwindSafe(call).catch_unwind());
                let Some(reason) = self.failure(export, limit, within_limit(call, at).await) else {
                    return;
                };
                reason
            }
            None => {
                // `wrpc_runtime_wasmtime::call` drops the results writer before this
                // call gives its instance back: the permit must outlive that, or the
                // next call could start before a warm instance is back in the pool.
                let _permit = outgoing.take_permit();
                let slot = Arc::new(ResultsSlot::default());
                let guarded = GuardedOutgoing::new(outgoing, slot.clone());
                let reason = {
                    // Dropped at the end of this block: a results writer the call did not
                    // finish parks in `slot` only then.
                    let call =
                        pin!(AssertUnwindSafe(self.call_val(export, incoming, guarded)).catch_unwind());
                    let Some(reason) = self.failure(export, limit, within_limit(call, at).await) else {
                        return;
                    };
                    reason
                };
                match slot.take() {
                    Some(parked) => outgoing = parked,
                    None => {
                        tracing::debug!(%reason, "call failed after its results were closed");
                        return;
                    }
                }
                reason
            }
        };
        tracing::debug!(%reason, "call failed");
        outgoing.abort(reason);
    }

    /// Why a served call failed, from how it ended ([`within_limit`]'s output, with its
    /// panics caught); `None` if it succeeded.
    fn failure(
        &self,
        export: &Export,
        limit: std::time::Duration,
        ended: Option<std::thread::Result<anyhow::Result<()>>>,
    ) -> Option<String> {
        match ended {
            Some(Ok(Ok(()))) => None,
            Some(Ok(Err(err))) => Some(format!("{err}")),
            Some(Err(panic)) => Some(self.panicked(export, &*panic)),
            None => Some(format!(
                "call of `{export:?}` on component `{}` timed out after {limit:?} (limits.invocation_timeout) \
                 while it waited: for its caller's parameters, for its caller to read the results, or in an import",
                self.id
            )),
        }
    }

    fn panicked(&self, export: &Export, panic: &(dyn std::any::Any + Send)) -> String {
        format!(
            "`{export:?}` of component `{}`: the host panicked while serving the call: {}",
            self.id,
            panic_message(panic)
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn instance_index_of(component: &WasmComponent, name: &str) -> anyhow::Result<ComponentExportIndex> {
    component
        .get_export_index(None, name)
        .with_context(|| format!("export `{name}` vanished"))
}

/// wRPC's name for a function: resource prefixes (`[method]` …) stripped.
fn rpc_name(name: &str) -> &str {
    ["[constructor]", "[static]", "[method]"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name)
}

fn export(
    interface: &str,
    name: &str,
    index: ComponentExportIndex,
    ty: &ComponentFunc,
    io_streams: &[ResourceType],
    fast_path: bool,
) -> Export {
    let params: Arc<[Type]> = ty.params().map(|(_, ty)| ty).collect();
    let results: Arc<[Type]> = ty.results().collect();
    Export {
        interface: interface.into(),
        name: name.into(),
        rpc_name: rpc_name(name).into(),
        index,
        shape: if fast_path {
            Shape::of(&params, &results)
        } else {
            None
        },
        paths: param_paths(&params, io_streams).into(),
        params,
        results,
    }
}

/// Links import `name` (an interface, or a function at the root) to the dispatcher:
/// fast-path functions with `func_wrap_async`, the rest with `wrpc_runtime_wasmtime`'s
/// `Val` polyfill.
fn link_import(
    engine: &Engine,
    linker: &mut Linker<HostState>,
    host_resources: &HostResources,
    val_imports: &mut ValImports,
    fast_path: bool,
    name: &str,
    item: ComponentItem,
) -> anyhow::Result<()> {
    let no_resources = || Arc::<[ResourceType]>::from([]);
    match item {
        ComponentItem::ComponentInstance(instance) => {
            let mut linker = linker.instance(name).map_err(anyhow::Error::from)?;
            for (func_name, item) in instance.exports(engine) {
                match item {
                    ComponentItem::ComponentFunc(func) => {
                        link_function(
                            &mut linker,
                            host_resources,
                            val_imports,
                            fast_path,
                            func,
                            name,
                            func_name,
                        )?;
                    }
                    item => wrpc_runtime_wasmtime::link_item(
                        engine,
                        &mut linker,
                        no_resources(),
                        host_resources.clone(),
                        item,
                        name,
                        func_name,
                    )
                    .map_err(anyhow::Error::from)?,
                }
            }
            Ok(())
        }
        ComponentItem::ComponentFunc(func) => link_function(
            &mut linker.root(),
            host_resources,
            val_imports,
            fast_path,
            func,
            "",
            name,
        ),
        item => wrpc_runtime_wasmtime::link_item(
            engine,
            &mut linker.root(),
            no_resources(),
            host_resources.clone(),
            item,
            "",
            name,
        )
        .map_err(anyhow::Error::from),
    }
}

fn link_function(
    linker: &mut LinkerInstance<'_, HostState>,
    host_resources: &HostResources,
    val_imports: &mut ValImports,
    fast_path: bool,
    func: ComponentFunc,
    interface: &str,
    name: &str,
) -> anyhow::Result<()> {
    let params: Vec<Type> = func.params().map(|(_, ty)| ty).collect();
    let results: Vec<Type> = func.results().collect();
    let shape = if fast_path {
        Shape::of(&params, &results)
    } else {
        None
    };
    match shape {
        Some(shape) => super::import::link(linker, shape, interface.into(), name, rpc_name(name).into()),
        None => {
            // The polyfill reads an import's results as the function's results, except
            // for a `result<T, wrpc:rpc/error>`, which it reads as `T` alone (when such
            // a host resource is linked): such functions are not walked.
            let rpc_error = matches!(
                results.as_slice(),
                [Type::Result(result)] if matches!(result.err(), Some(Type::Own(_) | Type::Borrow(_)))
            );
            if !rpc_error {
                val_imports.insert(interface, rpc_name(name), results.into());
            }
            wrpc_runtime_wasmtime::link_function(
                linker,
                Arc::<[ResourceType]>::from([]),
                host_resources.clone(),
                func,
                interface,
                name,
            )
            .map_err(anyhow::Error::from)
        }
    }
}

/// The paths below the parameters where async values arrive. Every parameter is an
/// element of the top-level tuple (`Some(i)`); a list adds a wildcard (`None`) per
/// level, a record or tuple its field's position, and `option`, `result` and
/// variants add nothing. Without component-model-async the only async values are
/// `wasi:io` streams (`io_streams`), which wRPC carries as `stream<u8>`.
fn param_paths(params: &[Type], io_streams: &[ResourceType]) -> Vec<Box<[Option<usize>]>> {
    fn walk(
        ty: &Type,
        io_streams: &[ResourceType],
        prefix: &mut VecDeque<Option<usize>>,
        out: &mut BTreeSet<Vec<Option<usize>>>,
    ) {
        let mut nested = |ty: &Type, step: Option<Option<usize>>, prefix: &mut VecDeque<Option<usize>>| {
            if let Some(step) = step {
                prefix.push_back(step);
            }
            walk(ty, io_streams, prefix, out);
            if step.is_some() {
                prefix.pop_back();
            }
        };
        match ty {
            Type::List(list) => nested(&list.ty(), Some(None), prefix),
            Type::Option(option) => nested(&option.ty(), None, prefix),
            Type::Result(result) => {
                for ty in [result.ok(), result.err()].into_iter().flatten() {
                    nested(&ty, None, prefix);
                }
            }
            Type::Variant(variant) => {
                for case in variant.cases() {
                    if let Some(ty) = case.ty {
                        nested(&ty, None, prefix);
                    }
                }
            }
            Type::Tuple(tuple) => {
                for (i, ty) in tuple.types().enumerate() {
                    nested(&ty, Some(Some(i)), prefix);
                }
            }
            Type::Record(record) => {
                for (i, field) in record.fields().enumerate() {
                    nested(&field.ty, Some(Some(i)), prefix);
                }
            }
            Type::Own(resource) | Type::Borrow(resource) if io_streams.contains(resource) => {
                out.insert(prefix.iter().copied().collect());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for (i, ty) in params.iter().enumerate() {
        let mut prefix = VecDeque::from([Some(i)]);
        walk(ty, io_streams, &mut prefix, &mut out);
    }
    out.into_iter().map(Vec::into_boxed_slice).collect()
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("id", &self.id)
            .field("instances", &self.mode)
            .field("exports", &self.exports)
            .finish_non_exhaustive()
    }
}
