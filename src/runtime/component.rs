//! A component loaded once, with its exports resolved, instantiated fresh per call.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, ResourceType, Val};
use wasmtime::{Engine, Store};
use wrpc_transport::Index;

use super::engine::EPOCH_TICK;
use super::state::HostState;
use crate::host::{Dispatcher, LimitsConfig};

/// Host-defined resources shared with guests: none in this runtime.
pub(crate) type HostResources = Arc<HashMap<Box<str>, HashMap<Box<str>, (ResourceType, ResourceType)>>>;

/// One function a component exports, resolved when the component is loaded.
#[derive(Clone)]
pub struct Export {
    instance: Arc<str>,
    name: Arc<str>,
    index: ComponentExportIndex,
    ty: ComponentFunc,
    params: Arc<[Type]>,
    results: Arc<[Type]>,
}

impl Export {
    /// The exporting instance (interface), e.g. `wrpc-ring:examples/greeter`; empty for
    /// a function exported at the component's root.
    pub fn instance(&self) -> &str {
        &self.instance
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

    pub(crate) fn ty(&self) -> &ComponentFunc {
        &self.ty
    }
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.instance, self.name)
    }
}

/// A WebAssembly component loaded into a [`Runtime`](super::Runtime): compiled and
/// linked once, every export's index and types resolved at load time, and a fresh
/// instance (from the pooling allocator) for every call.
///
/// The component's imports that are not WASI are polyfilled through the host's
/// [`Dispatcher`]: an import call goes to the component the host links it to, over the
/// local transport or NATS. WASI p2 is linked for guests that need it.
///
/// Each call runs with the host's limits: its time (the invocation timeout, enforced by
/// epoch interruption: a guest that runs too long traps) and its memory
/// (`limits.max_memory`: a guest that grows beyond it traps).
pub struct Instance {
    pub(crate) id: Arc<str>,
    pre: InstancePre<HostState>,
    exports: Vec<Export>,
    by_name: HashMap<(Arc<str>, Arc<str>), usize>,
    pub(crate) io_streams: Arc<[ResourceType]>,
    pub(crate) host_resources: HostResources,
    dispatcher: Dispatcher,
    limits: LimitsConfig,
}

impl Instance {
    pub(crate) fn load(
        engine: &Engine,
        dispatcher: &Dispatcher,
        limits: &LimitsConfig,
        id: &str,
        wasm: &[u8],
    ) -> anyhow::Result<Self> {
        let component = Component::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("`{id}` is not a valid WebAssembly component"))?;
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to link WASI p2")?;
        let host_resources: HostResources = Arc::default();
        let ty = component.component_type();
        for (name, item) in ty.imports(engine) {
            if name.starts_with("wasi:") {
                continue; // provided by WASI p2 above
            }
            wrpc_runtime_wasmtime::link_item(
                engine,
                &mut linker.root(),
                Arc::<[ResourceType]>::from([]),
                host_resources.clone(),
                item,
                "",
                name,
            )
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to link import `{name}` of `{id}` to the dispatcher"))?;
        }
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to link `{id}`"))?;

        let mut exports = Vec::new();
        for (name, item) in ty.exports(engine) {
            match item {
                ComponentItem::ComponentFunc(func) => {
                    let index = component
                        .get_export_index(None, name)
                        .context("export vanished")?;
                    exports.push(export("", name, index, func));
                }
                ComponentItem::ComponentInstance(instance) => {
                    let instance_index = component
                        .get_export_index(None, name)
                        .context("export vanished")?;
                    for (func_name, item) in instance.exports(engine) {
                        if let ComponentItem::ComponentFunc(func) = item {
                            let index = component
                                .get_export_index(Some(&instance_index), func_name)
                                .context("export vanished")?;
                            exports.push(export(name, func_name, index, func));
                        }
                    }
                }
                _ => {}
            }
        }
        let by_name = exports
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.instance.clone(), e.name.clone()), i))
            .collect();
        let io_streams = wrpc_runtime_wasmtime::paths::wasi_io_stream_resources(engine, &ty).into();
        Ok(Self {
            id: id.into(),
            pre,
            exports,
            by_name,
            io_streams,
            host_resources,
            dispatcher: dispatcher.clone(),
            limits: limits.clone(),
        })
    }

    /// The component's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every function the component exports.
    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    /// The export `func` of `instance` (a version suffix on `instance` is ignored if
    /// the component exports it without one, and the other way round).
    ///
    /// # Errors
    ///
    /// Names the component and lists its exports when there is no such function.
    pub fn export(&self, instance: &str, func: &str) -> anyhow::Result<&Export> {
        let found = self
            .by_name
            .get(&(Arc::from(instance), Arc::from(func)))
            .or_else(|| {
                let base = |s: &str| s.split_once('@').map_or(s, |(b, _)| b).to_string();
                self.exports
                    .iter()
                    .position(|e| &*e.name == func && base(&e.instance) == base(instance))
                    .map(|i| &self.by_name[&(self.exports[i].instance.clone(), self.exports[i].name.clone())])
            });
        match found {
            Some(&i) => Ok(&self.exports[i]),
            None => {
                let known: Vec<_> = self.exports.iter().map(|e| format!("{e:?}")).collect();
                anyhow::bail!(
                    "component `{}` does not export `{instance}#{func}` (it exports: {})",
                    self.id,
                    known.join(", ")
                )
            }
        }
    }

    /// A fresh store for one call, with the call's time and memory limits.
    pub(crate) fn store(&self) -> Store<HostState> {
        let max_memory = usize::try_from(self.limits.max_memory.0).unwrap_or(usize::MAX);
        let state = HostState::new(
            self.dispatcher.clone(),
            &self.id,
            self.limits.invocation_timeout,
            max_memory,
        );
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        let ticks = self
            .limits
            .invocation_timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
    }

    /// A fresh store and instance, and `export`'s function in it.
    async fn instantiate(
        &self,
        export: &Export,
    ) -> anyhow::Result<(Store<HostState>, wasmtime::component::Func)> {
        let mut store = self.store();
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to instantiate `{}`", self.id))?;
        let func = instance
            .get_func(&mut store, export.index)
            .context("export index does not resolve")?;
        Ok((store, func))
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// Calls export `func` of `instance` in a fresh instance, reading its parameters
    /// from a transport's `incoming` stream and writing its results to `outgoing` —
    /// the callee side of an invocation, as a wRPC server runs it (built on
    /// `wrpc_runtime_wasmtime::call`).
    ///
    /// # Errors
    ///
    /// If there is no such export, the parameters do not decode, the guest traps
    /// (including running past its time limit or memory limit), or the results cannot
    /// be written. The error carries the trap message.
    pub async fn call<I, O>(&self, instance: &str, func: &str, incoming: I, outgoing: O) -> anyhow::Result<()>
    where
        I: AsyncRead + Index<I> + Send + Sync + Unpin + 'static,
        O: AsyncWrite + Index<O> + Send + Sync + Unpin + 'static,
    {
        let export = self.export(instance, func)?;
        let (mut store, func) = self.instantiate(export).await?;
        wrpc_runtime_wasmtime::call(
            &mut store,
            incoming,
            outgoing,
            &[],
            &self.host_resources,
            &self.io_streams,
            export.params.iter(),
            &export.results,
            func,
        )
        .await
        .map_err(|err| {
            let err = anyhow::Error::from(err);
            anyhow::anyhow!(
                "`{}#{}` of `{}` failed: {}",
                export.instance,
                export.name,
                self.id,
                super::serve::describe(&err)
            )
        })
    }

    /// Calls export `func` of `instance` in a fresh instance with `params` directly,
    /// without any transport (the host's own entry calls, and the benchmarks' floor).
    /// The component's imports still go through the dispatcher.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), and if `params` do not match the export's types.
    pub async fn call_values(&self, instance: &str, func: &str, params: &[Val]) -> anyhow::Result<Vec<Val>> {
        let export = self.export(instance, func)?;
        let (mut store, func) = self.instantiate(export).await?;
        let mut results = vec![Val::Bool(false); export.results.len()];
        func.call_async(&mut store, params, &mut results)
            .await
            .map_err(|err| {
                let root = err.root_cause().to_string();
                anyhow::anyhow!(
                    "`{}#{}` of `{}` failed: {err}: {root}",
                    export.instance,
                    export.name,
                    self.id
                )
            })?;
        Ok(results)
    }
}

fn export(instance: &str, name: &str, index: ComponentExportIndex, ty: ComponentFunc) -> Export {
    Export {
        instance: instance.into(),
        name: name.into(),
        index,
        params: ty.params().map(|(_, ty)| ty).collect(),
        results: ty.results().collect(),
        ty,
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("exports", &self.exports)
            .finish_non_exhaustive()
    }
}
