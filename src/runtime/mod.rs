//! The wasmtime runtime: components loaded once and served on the dispatcher's paths,
//! their imports polyfilled through it (feature `wasmtime`).
//!
//! - `engine`: the engine (pooling allocator, epoch interruption) and its epoch ticker;
//! - `component`: [`Component`]: a loaded component with pre-resolved exports, the
//!   instances its calls run in (fresh or reused), and [`Component::call`], the callee
//!   side of a call on any transport;
//! - `fast`, `import`: the typed fast path for byte-shaped and scalar signatures, on
//!   the export and on the import side;
//! - `scan`: the `Val` path's parameters walked, and their lists bounded, before the
//!   upstream decoder reads them;
//! - `serve`: the `Val` path's results writer, which faults can still abort;
//! - `state`: the per-call store data (WASI p2, the polyfill context, limits);
//! - [`Host`]: all of it built from a [`HostConfig`](crate::host::HostConfig).

mod component;
mod engine;
#[macro_use]
mod fast;
mod host;
mod import;
mod scan;
mod serve;
mod state;
mod workers;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::task::JoinSet;
use wasmtime::Engine;

pub use self::component::{Component, Export};
pub use self::engine::engine_config;
pub use self::host::{Host, LinkChanges, ReloadSummary};

use self::component::Instances;
use self::workers::{ExportTaker, Job, Workers};
use crate::host::{
    ComponentConfig, ComponentServer, Dispatcher, InstanceMode, LimitsConfig, RuntimeConfig, TransportKind,
};

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
/// let runtime = Runtime::new(dispatcher, &config.limits, &config.runtime)?;
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
    fast_path: bool,
}

impl Runtime {
    /// A runtime whose components call each other through `dispatcher`, held to
    /// `limits` (time and memory per call, concurrent calls per component), on an
    /// engine configured by `runtime` (the `[runtime]` table).
    ///
    /// # Errors
    ///
    /// If the engine cannot be configured (e.g. the pooling allocator cannot reserve
    /// its memory, or `pagemap_scan = "yes"` on a kernel without it).
    pub fn new(
        dispatcher: Dispatcher,
        limits: &LimitsConfig,
        runtime: &RuntimeConfig,
    ) -> anyhow::Result<Self> {
        let max_memory = usize::try_from(limits.max_memory.0).unwrap_or(usize::MAX);
        let engine = engine::engine(runtime, max_memory)?;
        engine::start_epoch_ticker(&engine);
        Ok(Self {
            engine,
            dispatcher,
            limits: limits.clone(),
            fast_path: runtime.fast_path,
        })
    }

    /// The dispatcher the components' calls go through.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Compiles and links the component `wasm` as `id`, with a fresh instance per
    /// call.
    ///
    /// # Errors
    ///
    /// If `wasm` is not a valid component, or one of its imports cannot be linked.
    pub fn load(&self, id: &str, wasm: &[u8]) -> anyhow::Result<Arc<Component>> {
        self.load_with(id, wasm, InstanceMode::Fresh, crate::host::DEFAULT_MAX_USES)
    }

    /// Compiles and links the component `wasm` as `id`, its calls getting their
    /// instances as `mode` says (see [`Component`]'s "Instances").
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_with(
        &self,
        id: &str,
        wasm: &[u8],
        mode: InstanceMode,
        max_uses: u32,
    ) -> anyhow::Result<Arc<Component>> {
        let instances = Instances {
            mode,
            max_uses,
            fast_path: self.fast_path,
        };
        Component::load(&self.engine, &self.dispatcher, &self.limits, instances, id, wasm).map(Arc::new)
    }

    /// Reads and loads the component file at `path` as `id`, with a fresh instance
    /// per call.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), and if the file cannot be read (naming it).
    pub fn load_file(&self, id: &str, path: impl AsRef<Path>) -> anyhow::Result<Arc<Component>> {
        self.load_config(&ComponentConfig::new(id, path.as_ref()))
    }

    /// Reads and loads the component a `[[component]]` table describes: its file, id
    /// and instance mode.
    ///
    /// # Errors
    ///
    /// As [`load_file`](Self::load_file).
    pub fn load_config(&self, config: &ComponentConfig) -> anyhow::Result<Arc<Component>> {
        let path: &Path = &config.path;
        let id = &config.id;
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read component `{id}` from `{}`", path.display()))?;
        self.load_with(id, &wasm, config.instances, config.max_uses)
            .with_context(|| format!("cannot load `{}`", path.display()))
    }

    /// Serves every export of `component` on every path the dispatcher gives it (the
    /// local transport, and NATS when configured), until the returned handle is
    /// dropped. Each call runs on a task of its own, never inside its caller's future:
    /// a worker task, parked between calls and reused, so that accepting a call does
    /// not spawn (or allocate) a task.
    ///
    /// # Errors
    ///
    /// If an export cannot be served.
    pub async fn serve(&self, component: Arc<Component>) -> anyhow::Result<Serving> {
        self.dispatcher.add_component(component.id());
        let mut serving = Serving {
            component: component.id.clone(),
            dispatcher: self.dispatcher.clone(),
            local: JoinSet::new(),
            remote: JoinSet::new(),
        };
        // The accept loops share the component's workers; the last loop to end (when
        // `Serving` is dropped) dismisses them.
        let workers = Arc::new(Workers::new(component.clone(), self.limits.max_instances));
        let (servers, nats_later) = self.dispatcher.servers_now(component.id()).await?;
        for server in servers {
            let tasks = if server.transport() == TransportKind::Nats {
                &mut serving.remote
            } else {
                &mut serving.local
            };
            accept_on(&server, &component, &workers, tasks).await?;
        }
        if nats_later {
            // Served over NATS too once NATS is reached: other hosts' calls then find
            // this component without a restart. Aborted with the other NATS loops.
            let dispatcher = self.dispatcher.clone();
            serving.remote.spawn(async move {
                loop {
                    let mut loops = JoinSet::new();
                    let served = match dispatcher.nats_server_once_connected(component.id()).await {
                        Ok(server) => accept_on(&server, &component, &workers, &mut loops).await,
                        Err(err) => Err(err),
                    };
                    match served {
                        Ok(()) => {
                            tracing::info!(component = component.id(), "NATS reached: serving over NATS too");
                            while loops.join_next().await.is_some() {}
                            return;
                        }
                        // The exports served so far stop with `loops`; all of them are
                        // served again on the next try.
                        Err(err) => tracing::warn!(
                            component = component.id(),
                            error = %format!("{err:#}"),
                            "NATS reached, but serving over it failed: trying again in {NATS_RETRY:?}"
                        ),
                    }
                    drop(loops);
                    tokio::time::sleep(NATS_RETRY).await;
                }
            });
        }
        Ok(serving)
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

/// A component being served; dropping it stops serving: the component leaves the
/// dispatcher's local routes (later calls to it go over NATS, or fail as not served
/// here), and its serve streams end. Calls already accepted run to their end on their
/// own tasks.
#[derive(Debug)]
#[must_use = "dropping `Serving` stops serving the component at once"]
pub struct Serving {
    component: Arc<str>,
    dispatcher: Dispatcher,
    /// The accept loops on the local transport.
    local: JoinSet<()>,
    /// The accept loops on NATS (calls from other hosts; every call with
    /// `transport = "nats"`).
    remote: JoinSet<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.dispatcher.remove_component(&self.component);
    }
}

impl Serving {
    /// The component served.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Stops accepting calls over NATS (from other hosts), while the local transport
    /// keeps serving this host's own components: the first step of a graceful
    /// shutdown, which lets nested local calls of the calls in flight go through.
    /// With `transport = "nats"` every call comes over NATS, so this stops them all.
    pub fn stop_accepting_remote(&mut self) {
        self.remote.abort_all();
    }
}

/// How long a component waits before it tries again to serve over NATS, after NATS was
/// reached but serving over it failed.
const NATS_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves every export of `component` on `server`: an accept loop per export, spawned
/// on `tasks`, handing each call to `workers`.
async fn accept_on(
    server: &ComponentServer,
    component: &Arc<Component>,
    workers: &Arc<Workers>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    let transport = server.transport();
    for (index, export) in component.exports().iter().enumerate() {
        // Over the ring, a call that finds a worker parked wakes it from the caller's
        // task; the loop below gets the others.
        let taker = ExportTaker {
            workers: workers.clone(),
            index,
        };
        let invocations = server
            .serve_handing_off(
                export.interface(),
                export.rpc_name(),
                export.paths().clone(),
                taker,
            )
            .await
            .with_context(|| {
                format!(
                    "failed to serve `{export:?}` of `{}` over {transport}",
                    component.id(),
                )
            })?;
        let component = component.clone();
        let workers = workers.clone();
        tasks.spawn(async move {
            let mut invocations = std::pin::pin!(invocations);
            while let Some(item) = invocations.next().await {
                match item {
                    Ok((_headers, outgoing, incoming)) => workers.run(Job {
                        index,
                        transport,
                        outgoing,
                        incoming,
                    }),
                    Err(err) => tracing::warn!(
                        %err,
                        component = component.id(),
                        export = ?component.exports()[index],
                        "failed to accept an invocation"
                    ),
                }
            }
        });
    }
    Ok(())
}
