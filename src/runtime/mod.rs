//! The wasmtime runtime: components loaded once and served on the dispatcher's paths,
//! their imports polyfilled through it (feature `wasmtime`).
//!
//! - `engine`: the engine (pooling allocator, epoch interruption) and its epoch ticker;
//! - `instance`: [`Instance`]: a loaded component with pre-resolved exports, and
//!   [`Instance::call`], the callee side of a call on any transport;
//! - `serve`: serving exports, one task per call, faults aborting the caller's stream;
//! - `state`: the per-call store data (WASI p2, the polyfill context, limits);
//! - [`Host`]: all of it built from a [`HostConfig`](crate::host::HostConfig).

mod engine;
mod host;
mod instance;
mod serve;
mod state;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::task::JoinSet;
use wasmtime::Engine;
use wrpc_runtime_wasmtime::ServeExt as _;

pub use self::host::Host;
pub use self::instance::{Export, Instance};

use self::serve::{TrapAware, run_call};
use crate::host::{Dispatcher, LimitsConfig};

/// Loads components and serves their exports through a [`Dispatcher`].
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// use wrpc_ring::host::{Dispatcher, HostConfig};
/// use wrpc_ring::runtime::Runtime;
///
/// let config = HostConfig::default();
/// let dispatcher = Dispatcher::new(&config).await?;
/// let runtime = Runtime::new(dispatcher, &config.limits)?;
/// let greeter = runtime.load_file("greeter", "examples/components/wasm/greeter.wasm")?;
/// let _serving = runtime.serve(greeter.clone()).await?; // other components can call it now
/// let results = greeter
///     .call_values("wrpc-ring:examples/greeter", "greet", &[wasmtime::component::Val::String("you".into())])
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    dispatcher: Dispatcher,
    limits: LimitsConfig,
}

impl Runtime {
    /// A runtime whose components call each other through `dispatcher`, held to
    /// `limits` (time and memory per call, concurrent calls per component).
    ///
    /// # Errors
    ///
    /// If the engine cannot be configured (e.g. the pooling allocator cannot reserve
    /// its memory).
    pub fn new(dispatcher: Dispatcher, limits: &LimitsConfig) -> anyhow::Result<Self> {
        let max_memory = usize::try_from(limits.max_memory.0).unwrap_or(usize::MAX);
        let engine = engine::engine(max_memory)?;
        engine::start_epoch_ticker(&engine);
        Ok(Self {
            engine,
            dispatcher,
            limits: limits.clone(),
        })
    }

    /// The dispatcher the components' calls go through.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Compiles and links the component `wasm` as `id`.
    ///
    /// # Errors
    ///
    /// If `wasm` is not a valid component, or one of its imports cannot be linked.
    pub fn load(&self, id: &str, wasm: &[u8]) -> anyhow::Result<Arc<Instance>> {
        Instance::load(&self.engine, &self.dispatcher, &self.limits, id, wasm).map(Arc::new)
    }

    /// Reads and loads the component file at `path` as `id`.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), and if the file cannot be read (naming it).
    pub fn load_file(&self, id: &str, path: impl AsRef<Path>) -> anyhow::Result<Arc<Instance>> {
        let path = path.as_ref();
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read component `{id}` from `{}`", path.display()))?;
        self.load(id, &wasm)
            .with_context(|| format!("cannot load `{}`", path.display()))
    }

    /// Serves every export of `instance` on every path the dispatcher gives it (the
    /// local transport, and NATS when configured), until the returned handle is
    /// dropped. Each call runs on its own task, never inside its caller's future.
    ///
    /// # Errors
    ///
    /// If an export cannot be served.
    pub async fn serve(&self, instance: Arc<Instance>) -> anyhow::Result<Serving> {
        self.dispatcher.add_component(instance.id());
        let mut tasks = JoinSet::new();
        for server in self.dispatcher.servers(instance.id()).await? {
            for export in instance.exports() {
                let store_instance = instance.clone();
                let invocations = TrapAware(&server)
                    .serve_function(
                        move || store_instance.store(),
                        instance.pre().clone(),
                        instance.host_resources.clone(),
                        export.ty().clone(),
                        export.instance(),
                        export.name(),
                    )
                    .await
                    .with_context(|| {
                        format!(
                            "failed to serve `{export:?}` of `{}` over {}",
                            instance.id(),
                            server.transport()
                        )
                    })?;
                let what: Arc<str> = format!("`{export:?}` of component `{}`", instance.id()).into();
                tasks.spawn(async move {
                    let mut invocations = std::pin::pin!(invocations);
                    while let Some(item) = invocations.next().await {
                        match item {
                            Ok(((_headers, slot), call)) => {
                                tokio::spawn(run_call(call, slot, what.clone()));
                            }
                            Err(err) => tracing::warn!(%err, %what, "failed to accept an invocation"),
                        }
                    }
                });
            }
        }
        Ok(Serving {
            component: instance.id.clone(),
            _tasks: tasks,
        })
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

/// A component being served; dropping it stops serving (the component also leaves the
/// dispatcher's local routes).
#[derive(Debug)]
pub struct Serving {
    component: Arc<str>,
    _tasks: JoinSet<()>,
}

impl Serving {
    /// The component served.
    pub fn component(&self) -> &str {
        &self.component
    }
}
