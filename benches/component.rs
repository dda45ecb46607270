//! Component calls: wasmtime's instantiation levers one by one, and host → component and
//! component → component calls over `ring`, `duplex`, `mpsc` and `nats` next to direct
//! in-process wasmtime calls that pass values without any transport (issue 8).
//!
//! Run with `cargo bench --features wasmtime --bench component` (add criterion's
//! `-- --warm-up-time 0.5 --measurement-time 1.5` to keep a full run under ten minutes
//! on two shared cores); the figures, the ratios against the targets and what each
//! number includes are recorded in `docs/benchmarks.md` ("Components").
//!
//! # Runtimes
//!
//! Every group runs twice in one run: on `current_thread` tokio runtimes (groups ending
//! in `_current_thread`) and on `multi_thread` runtimes with two workers (the machine's
//! two vCPUs; groups ending in `_multi_thread`). `WRPC_RING_BENCH_RUNTIME=current_thread`
//! (or `multi_thread`) runs one flavor only. The hosts of one flavor are dropped before
//! the next flavor's start, and the flavors use different lattices, so that no NATS
//! subscription outlives its flavor.
//!
//! # The hosts
//!
//! One host per transport, each on its own tokio runtime (no host's background tasks,
//! NATS's connection above all, run next to another's calls): a [`Runtime`] with the
//! default limits, ring config (64 KiB rings) and `[runtime]` levers
//! (`RuntimeConfig::default()`), serving `greeter`, `blob`, `blob-proxy` (its `blob`
//! import linked to `blob`) and the pipeline `pipeline-a` → `pipeline-b` → `pipeline-c`
//! (each `stage` import linked to the next stage), every one with a fresh instance per
//! call. The ring host also serves `greeter-reuse` (the greeter with `instances =
//! "reuse"`) and two Rust servers of the greeter's interface, `probe` (a task per call,
//! as the runtime serves) and `probe-inline` (answers in its serve loop). Only the `nats`
//! host gets a NATS url (a real `nats-server` started for the run on a loopback port), so
//! with `transport = "nats"` every call goes through the server even though caller and
//! callee share the process — what a wasmCloud 1.x host does. The benchmark calls as
//! component `caller` (or `caller-reuse`, `caller-proxy`, `caller-probe`, ...) through
//! the host's [`Dispatcher`] with `InvokeExt::invoke_values_blocking`, `list<u8>` as
//! `Bytes` (what generated wRPC bindings use).
//!
//! # The floors
//!
//! `direct` floors run on an engine built from [`engine_config`] (the runtime's exact
//! engine configuration, default `[runtime]`), with WASI p2 linked through
//! `wasmtime_wasi::p2::add_to_linker_async` and the same store setup as the runtime's
//! (memory limiter, epoch deadline): no dispatcher, no encoding, no transport, no task.
//! Unless said otherwise a floor call is a fresh store and instance from the pooling
//! allocator, like the served calls.
//!
//! # The groups
//!
//! - `instantiation_levers`: greeter.wasm on engines from [`engine_config`] with one
//!   lever changed at a time from `baseline` — the old engine: every pooling lever at
//!   wasmtime's default (no keep-resident, `pagemap_scan` off, `decommit_batch_size` 1,
//!   `max_unused_warm_slots` 100) and `concurrency_support` on — then `chosen`
//!   (`RuntimeConfig::default()`). Rows: `instantiate/{lever}` is a fresh store (a
//!   `WasiCtx` built for it) and `instantiate_async`, `instantiate+call/{lever}` the same
//!   plus a typed `greet("world")` (`TypedFunc<(&str,), (String,)>`). `wasi_reused` and
//!   `chosen_wasi_reused` take the store data (`WasiCtx`, resource table, limits) of the
//!   previous call back instead of building one. Each lever is also paired against
//!   `baseline` (see "Paired ratios").
//! - `component_greeter`: `greet("world") -> "Hello, world!"`. `direct`:
//!   [`Component::call_values`] on the ring host's greeter (fresh instance, `Val`s);
//!   `direct_typed`: the floor, fresh instance and `TypedFunc`; `ring`, `duplex`, `mpsc`,
//!   `nats`: host → component through the dispatcher (route, encode, hand over, the
//!   callee's task instantiates, decodes, calls, encodes, the results come back and are
//!   decoded). `ring_reuse` / `direct_reuse`: the same on `greeter-reuse` (warm
//!   instances). `ring_rust` / `ring_rust_inline`: the same call to the Rust servers
//!   `probe` / `probe-inline` (the host path without wasmtime).
//! - `component_pipeline`: `run("x")` on `pipeline-a` with [`Component::call_values`];
//!   A's import goes to B and B's to C through the host's dispatcher: three fresh
//!   instances and two component → component calls over the transport (`a(b(c(x)))`).
//!   `direct`: the same three components on the floor, each `stage` import bound to a
//!   host function that calls the next stage in a fresh instance with `Val`s (the
//!   approach wasmCloud 2 took). `leaf`: [`Component::call_values`] on `pipeline-c`
//!   alone, `direct_leaf` the same on the floor. `(ring − direct) / 2` is the transport's
//!   share of one hop.
//! - `component_blob_1MiB_result`: host → `blob.fetch(1 MiB) -> list<u8>`;
//!   `component_blob_1MiB_param`: host → `blob.put(1 MiB list<u8>) -> u32`. `direct`:
//!   [`Component::call_values`] (one `Val::U8` per byte), `direct_typed`: the floor with
//!   `TypedFunc<(u32,), (Vec<u8>,)>` / `TypedFunc<(&[u8],), (u32,)>`.
//! - `component_blob_1MiB_result_c2c`, `component_blob_1MiB_param_c2c`: the same calls
//!   to `blob-proxy`, which calls `blob` (component → component). The transports: host →
//!   proxy and proxy → blob both through the dispatcher (two hops, two fresh instances).
//!   The floor: the proxy's `blob` import bound to host functions that call `blob`'s
//!   `TypedFunc` in a fresh instance (`func_wrap_async`), and the proxy called with
//!   `Val`s (`direct`) or a `TypedFunc` (`direct_typed`).
//!
//! Each call is timed by one task on its host's runtime that runs `iters` calls in a
//! loop (`iter_custom`), so neither spawning the loop nor handing it the request is
//! measured. Before timing, every path is checked once for the right answer (the whole
//! 1 MiB pattern for `blob`), and at the end of a flavor every host's metrics must show
//! its calls on its own transport and no errors.
//!
//! # Paired ratios
//!
//! After each group the ratios that matter for the targets are measured again, paired:
//! `PAIRED_ROUNDS` rounds, each a batch of calls of A then of B (order alternating),
//! batches sized to about 5 ms; printed as the medians of the per-call times and of the
//! per-round ratios (`paired ...` lines). Criterion measures one row after the other,
//! seconds apart, on cores other engineers share; the paired ratio is the steadier one.
//!
//! # Allocations and threads
//!
//! Not criterion times, printed (`alloc ...`, `threads ...` lines): the heap allocations
//! of every thread per call (a counting global allocator) for a warm greeter call over
//! the ring and for its parts — a warm `TypedFunc` / `Val` call (wasmtime's share), a
//! `Ring` with a trivial Rust server answering inline (the wRPC codec's share, with the
//! transport's, which is 0), and the Rust server `probe` through the dispatcher — and,
//! for the `probe` calls, which worker thread the caller, the serve loop and the
//! callee's task ran on.
//!
//! Allocation counts, paired ratios and the thread probe are skipped in test mode
//! (`cargo test --benches`) and with `--list`.

#[path = "../tests/common/nats.rs"]
mod nats;
#[path = "common/paired.rs"]
mod paired;

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use tokio::task::JoinSet;
use wasmtime::component::Val;
use wrpc_ring::host::{
    CallContext, ComponentConfig, DEFAULT_MAX_USES, Dispatcher, HostConfig, PagemapScan, RuntimeConfig,
    TransportKind,
};
use wrpc_ring::runtime::{Component, Runtime, Serving};
use wrpc_ring::{Ring, RingPool};
use wrpc_transport::{InvokeExt as _, ServeExt as _};

use paired::Paired;

// ----- allocation counting -----

#[path = "../tests/common/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Set while the thread probe records (`probe` records nothing otherwise).
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Starts counting the allocations of every thread.
fn count_start() {
    alloc::start_all();
}

/// Stops counting; the allocations of every thread since [`count_start`].
fn count_stop() -> u64 {
    alloc::stop_all().0
}

// ----- constants -----

const GREETER: &str = "wrpc-ring:examples/greeter";
const BLOB: &str = "wrpc-ring:examples/blob";
const STAGE: &str = "wrpc-ring:examples/stage";
const NO_PATHS: &[&[Option<usize>]] = &[];

/// The `blob` cases: 1 MiB, sixteen times the default ring capacity.
const BLOB_SIZE: u32 = 1 << 20;

/// The name the greeter greets, and what it answers.
const NAME: &str = "world";
const GREETING: &str = "Hello, world!";

/// The pipeline's input, and what `pipeline-a` answers.
const INPUT: &str = "x";
const CHAIN: &str = "a(b(c(x)))";

/// Worker threads of a `multi_thread` runtime (the machine has two vCPUs).
const WORKERS: usize = 2;

/// Rounds of a paired measurement.
const PAIRED_ROUNDS: usize = 11;

/// Warm calls whose allocations are counted (after a fifth as many uncounted).
const ALLOC_CALLS: u64 = 2000;

/// Calls the thread probe records.
const PROBE_CALLS: usize = 2000;

const FLAVOR_VAR: &str = "WRPC_RING_BENCH_RUNTIME";

fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/components/wasm")
        .join(format!("{name}.wasm"))
}

/// The 1 MiB pattern `blob` produces and `put` checks: byte `i` is `i % 251`.
fn pattern() -> Vec<u8> {
    (0..BLOB_SIZE).map(|i| (i % 251) as u8).collect()
}

fn check_blob(blob: &[u8]) -> anyhow::Result<()> {
    ensure!(blob.len() == BLOB_SIZE as usize, "blob of {} bytes", blob.len());
    let bad = blob.iter().enumerate().position(|(i, b)| *b != (i % 251) as u8);
    ensure!(bad.is_none(), "blob differs from its pattern at byte {bad:?}");
    Ok(())
}

fn max_memory() -> usize {
    usize::try_from(HostConfig::default().limits.max_memory.0).unwrap_or(usize::MAX)
}

// ----- flavors and timing -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Self::CurrentThread => "current_thread",
            Self::MultiThread => "multi_thread",
        }
    }

    /// The NATS lattice of this flavor's hosts (no subject shared between flavors).
    fn lattice(self) -> &'static str {
        match self {
            Self::CurrentThread => "benchct",
            Self::MultiThread => "benchmt",
        }
    }

    fn runtime(self) -> tokio::runtime::Runtime {
        let mut builder = match self {
            Self::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Self::MultiThread => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(WORKERS);
                builder
            }
        };
        builder
            .enable_all()
            .build()
            .expect("failed to build a tokio runtime")
    }
}

fn flavors() -> Vec<Flavor> {
    match std::env::var(FLAVOR_VAR).as_deref() {
        Err(_) | Ok("both") => vec![Flavor::CurrentThread, Flavor::MultiThread],
        Ok("current_thread") => vec![Flavor::CurrentThread],
        Ok("multi_thread") => vec![Flavor::MultiThread],
        Ok(other) => panic!("{FLAVOR_VAR}={other}: expected `current_thread`, `multi_thread` or `both`"),
    }
}

/// One call, ready to be made again and again; checks the answer only cheaply (the full
/// check is [`verify`]'s).
type Call = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

fn call<F, Fut>(f: F) -> Call
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// `iters` calls in a loop on a task of `rt` (so the loop runs on a worker, like any
/// component's call), timed by that task.
fn time(rt: &tokio::runtime::Runtime, call: &Call, iters: u64) -> Duration {
    let call = call.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                call().await.expect("call failed during measurement");
            }
            start.elapsed()
        })
        .await
        .expect("measurement task panicked")
    })
}

/// `PAIRED_ROUNDS` rounds of a batch of `a` and a batch of `b`, the order alternating.
fn paired(rt_a: &tokio::runtime::Runtime, a: &Call, rt_b: &tokio::runtime::Runtime, b: &Call) -> Paired {
    // Calibrate on a few calls of each: batches of about 5 ms.
    let ta = time(rt_a, a, 3).as_secs_f64() / 3.0;
    let tb = time(rt_b, b, 3).as_secs_f64() / 3.0;
    let batch = ((0.005 / ta.max(tb)) as u64).clamp(1, 5000);
    let ns = |rt, call| time(rt, call, batch).as_secs_f64() * 1e9 / batch as f64;
    paired::alternate(PAIRED_ROUNDS, || ns(rt_a, a), || ns(rt_b, b))
}

fn us(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.2} µs", ns / 1e3)
    }
}

fn print_paired(group: &str, a: &str, b: &str, p: Paired) {
    println!(
        "paired {group}: {a} / {b} = {:.3}  ({a} {}, {b} {})",
        p.ratio,
        us(p.a),
        us(p.b)
    );
}

// ----- the hosts, one per transport -----

/// A host serving the example components over one transport, on its own runtime.
struct Host {
    kind: TransportKind,
    runtime: Runtime,
    greeter: Arc<Component>,
    greeter_reuse: Arc<Component>,
    pipeline_a: Arc<Component>,
    pipeline_c: Arc<Component>,
    blob: Arc<Component>,
    _serving: Vec<Serving>,
    /// The Rust servers' loops (ring host only).
    _probes: JoinSet<()>,
    /// Thread ids recorded by `probe`: (serve loop, callee task), one per call.
    probe_log: Arc<Mutex<Vec<(ThreadId, ThreadId)>>>,
    // Last: dropped after everything that runs on it.
    rt: tokio::runtime::Runtime,
}

impl Host {
    fn start(kind: TransportKind, flavor: Flavor, nats_url: Option<String>) -> anyhow::Result<Self> {
        let rt = flavor.runtime();
        let probe_log = Arc::new(Mutex::new(Vec::with_capacity(PROBE_CALLS * 4)));
        let log = probe_log.clone();
        let (runtime, serving, probes, loaded) = rt.block_on(async move {
            let mut config = HostConfig {
                transport: kind,
                lattice: flavor.lattice().to_string(),
                ..HostConfig::default()
            };
            config.nats.url = nats_url;
            let dispatcher = Dispatcher::new(&config).await?;
            let runtime = Runtime::new(dispatcher, &config.limits, &config.runtime)?;
            let mut serving = Vec::new();
            let mut loaded = HashMap::new();
            let mut components = vec![
                ComponentConfig::new("greeter", wasm("greeter")),
                ComponentConfig::new("blob", wasm("blob")),
                ComponentConfig::new("blob-proxy", wasm("blob-proxy")),
                ComponentConfig::new("pipeline-a", wasm("pipeline-a")),
                ComponentConfig::new("pipeline-b", wasm("pipeline-b")),
                ComponentConfig::new("pipeline-c", wasm("pipeline-c")),
            ];
            components.push(ComponentConfig::new("greeter-reuse", wasm("greeter")).reuse(DEFAULT_MAX_USES));
            for config in &components {
                let component = runtime.load_config(config)?;
                serving.push(runtime.serve(component.clone()).await?);
                loaded.insert(config.id.clone(), component);
            }
            let dispatcher = runtime.dispatcher();
            dispatcher.link("caller", GREETER, "default", "greeter");
            dispatcher.link("caller-reuse", GREETER, "default", "greeter-reuse");
            dispatcher.link("caller", BLOB, "default", "blob");
            dispatcher.link("caller-proxy", BLOB, "default", "blob-proxy");
            dispatcher.link("blob-proxy", BLOB, "default", "blob");
            dispatcher.link("pipeline-a", STAGE, "default", "pipeline-b");
            dispatcher.link("pipeline-b", STAGE, "default", "pipeline-c");
            let mut probes = JoinSet::new();
            if kind == TransportKind::Ring {
                serve_probe(dispatcher, "probe", true, log.clone(), &mut probes).await?;
                serve_probe(dispatcher, "probe-inline", false, log, &mut probes).await?;
                dispatcher.link("caller-probe", GREETER, "default", "probe");
                dispatcher.link("caller-probe-inline", GREETER, "default", "probe-inline");
            }
            anyhow::Ok((runtime, serving, probes, loaded))
        })?;
        let get = |id: &str| loaded.get(id).cloned().expect("loaded");
        Ok(Self {
            kind,
            greeter: get("greeter"),
            greeter_reuse: get("greeter-reuse"),
            pipeline_a: get("pipeline-a"),
            pipeline_c: get("pipeline-c"),
            blob: get("blob"),
            runtime,
            _serving: serving,
            _probes: probes,
            probe_log,
            rt,
        })
    }

    fn dispatcher(&self) -> Dispatcher {
        self.runtime.dispatcher().clone()
    }

    /// `greet(NAME)` from `source` through the dispatcher.
    fn greet(&self, source: &'static str) -> Call {
        let dispatcher = self.dispatcher();
        let cx = CallContext::new(source);
        call(move || {
            let dispatcher = dispatcher.clone();
            let cx = cx.clone();
            async move {
                let (greeting,): (String,) = dispatcher
                    .invoke_values_blocking(cx, GREETER, "greet", (NAME.to_string(),), NO_PATHS)
                    .await?;
                ensure!(greeting == GREETING, "greeter answered {greeting:?}");
                Ok(())
            }
        })
    }

    /// `fetch(BLOB_SIZE)` from `source` through the dispatcher.
    fn fetch(&self, source: &'static str) -> Call {
        let dispatcher = self.dispatcher();
        let cx = CallContext::new(source);
        call(move || {
            let dispatcher = dispatcher.clone();
            let cx = cx.clone();
            async move {
                let (blob,): (Bytes,) = dispatcher
                    .invoke_values_blocking(cx, BLOB, "fetch", (BLOB_SIZE,), NO_PATHS)
                    .await?;
                ensure!(blob.len() == BLOB_SIZE as usize, "blob of {} bytes", blob.len());
                Ok(())
            }
        })
    }

    /// `put(data)` from `source` through the dispatcher.
    fn put(&self, source: &'static str, data: &Bytes) -> Call {
        let dispatcher = self.dispatcher();
        let cx = CallContext::new(source);
        let data = data.clone();
        call(move || {
            let dispatcher = dispatcher.clone();
            let cx = cx.clone();
            let data = data.clone();
            async move {
                let (offset,): (u32,) = dispatcher
                    .invoke_values_blocking(cx, BLOB, "put", (data,), NO_PATHS)
                    .await?;
                ensure!(offset == BLOB_SIZE, "put answered {offset}");
                Ok(())
            }
        })
    }
}

/// Serves the greeter's interface as component `id` with a Rust function on every
/// server the dispatcher gives it: with `spawn`, each call on a task of its own (as
/// [`Runtime::serve`] does) that records the serve loop's and its own thread in `log`;
/// otherwise answered inline in the serve loop.
async fn serve_probe(
    dispatcher: &Dispatcher,
    id: &str,
    spawn: bool,
    log: Arc<Mutex<Vec<(ThreadId, ThreadId)>>>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    dispatcher.add_component(id);
    for server in dispatcher.servers(id).await? {
        let invocations = server
            .serve_values::<(String,), (String,)>(GREETER, "greet", Vec::<Box<[Option<usize>]>>::new())
            .await?;
        let log = log.clone();
        tasks.spawn(async move {
            let mut invocations = pin!(invocations);
            while let Some(invocation) = invocations.next().await {
                match invocation {
                    Ok((_cx, (name,), _io, respond)) => {
                        if spawn {
                            let serve_loop = std::thread::current().id();
                            let log = log.clone();
                            tokio::spawn(async move {
                                if RECORDING.load(Ordering::Relaxed) {
                                    let task = std::thread::current().id();
                                    log.lock().unwrap().push((serve_loop, task));
                                }
                                if let Err(err) = respond((format!("Hello, {name}!"),)).await {
                                    eprintln!("probe: {err:#}");
                                }
                            });
                        } else if let Err(err) = respond((format!("Hello, {name}!"),)).await {
                            eprintln!("probe-inline: {err:#}");
                        }
                    }
                    Err(err) => eprintln!("probe: {err:#}"),
                }
            }
        });
    }
    Ok(())
}

/// `func` of `interface` on `component` with [`Component::call_values`]: no transport
/// for the call itself (the component's imports still go through its host's
/// dispatcher).
fn call_values(
    component: &Arc<Component>,
    interface: &'static str,
    func: &'static str,
    params: Vec<Val>,
) -> Call {
    let component = component.clone();
    let params = Arc::new(params);
    call(move || {
        let component = component.clone();
        let params = params.clone();
        async move {
            let results = component.call_values(interface, func, &params).await?;
            ensure!(results.len() == 1, "{} results", results.len());
            Ok(())
        }
    })
}

// ----- the floor: components on the runtime's engine config, linked in-process -----

/// The same components on an engine built from [`engine_config`], linked to each
/// other directly: an import is a host function that runs the callee in a fresh
/// instance. No dispatcher, no encoding, no task.
mod direct {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use anyhow::Context as _;
    use wasmtime::component::{
        Component, ComponentExportIndex, Instance, InstancePre, Linker, ResourceTable, TypedFunc, Val,
    };
    use wasmtime::{Engine, Store, StoreLimits};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
    use wrpc_ring::host::RuntimeConfig;
    use wrpc_ring::runtime::engine_config;

    use super::{BLOB, GREETER, STAGE, wasm};

    /// The runtime's epoch deadline with the default 10 s limit and 10 ms ticks (no
    /// ticker runs here: the deadline is set, as there, but never reached).
    const EPOCH_DEADLINE: u64 = 1000;

    /// A store's data: WASI p2 and the memory limit, as in the runtime's stores.
    pub(super) struct State {
        wasi: WasiCtx,
        table: ResourceTable,
        limits: StoreLimits,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    /// An engine and its store setup; with `reuse_wasi`, a store's data is taken back
    /// after each call and given to the next store instead of building a new one.
    pub(super) struct Floor {
        engine: Engine,
        max_memory: usize,
        reuse_wasi: bool,
        spare: Mutex<Vec<State>>,
    }

    impl Floor {
        pub(super) fn new(
            runtime: &RuntimeConfig,
            max_memory: usize,
            reuse_wasi: bool,
        ) -> anyhow::Result<Arc<Self>> {
            let engine = Engine::new(&engine_config(runtime, max_memory)).map_err(anyhow::Error::from)?;
            Ok(Arc::new(Self {
                engine,
                max_memory,
                reuse_wasi,
                spare: Mutex::default(),
            }))
        }

        fn store(&self) -> Store<State> {
            let spare = if self.reuse_wasi {
                self.spare.lock().unwrap().pop()
            } else {
                None
            };
            let state = spare.unwrap_or_else(|| State {
                wasi: WasiCtx::builder().inherit_stderr().build(),
                table: ResourceTable::new(),
                limits: wasmtime::StoreLimitsBuilder::new()
                    .memory_size(self.max_memory)
                    .trap_on_grow_failure(true)
                    .build(),
            });
            let mut store = Store::new(&self.engine, state);
            store.limiter(|state| &mut state.limits);
            store.set_epoch_deadline(EPOCH_DEADLINE);
            store.epoch_deadline_trap();
            store
        }

        fn recycle(&self, store: Store<State>) {
            if self.reuse_wasi {
                let mut state = store.into_data();
                state.table = ResourceTable::new();
                let mut spare = self.spare.lock().unwrap();
                if spare.len() < 8 {
                    spare.push(state);
                }
            }
        }
    }

    /// What a loaded component's imports are bound to.
    pub(super) enum Imports {
        None,
        /// `stage.run` → the next stage, with `Val`s.
        Stage(Arc<Loaded>),
        /// `blob.fetch` and `blob.put` → `blob`'s `TypedFunc`s.
        Blob(Arc<Loaded>),
    }

    /// A loaded component and the indices of the functions of one exported interface.
    pub(super) struct Loaded {
        floor: Arc<Floor>,
        pre: InstancePre<State>,
        funcs: HashMap<&'static str, ComponentExportIndex>,
    }

    impl Loaded {
        pub(super) fn load(
            floor: &Arc<Floor>,
            file: &str,
            interface: &str,
            funcs: &[&'static str],
            imports: Imports,
        ) -> anyhow::Result<Arc<Self>> {
            let engine = &floor.engine;
            let component = Component::from_file(engine, wasm(file))
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot load `{file}`"))?;
            let mut linker = Linker::<State>::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            match imports {
                Imports::None => {}
                Imports::Stage(next) => {
                    linker
                        .instance(STAGE)
                        .map_err(anyhow::Error::from)?
                        .func_wrap_async("run", move |_store, (input,): (String,)| {
                            let next = next.clone();
                            Box::new(async move { Ok((next.run(input).await?,)) })
                        })
                        .map_err(anyhow::Error::from)?;
                }
                Imports::Blob(blob) => {
                    let mut instance = linker.instance(BLOB).map_err(anyhow::Error::from)?;
                    let fetch = blob.clone();
                    instance
                        .func_wrap_async("fetch", move |_store, (size,): (u32,)| {
                            let blob = fetch.clone();
                            Box::new(async move { Ok((blob.fetch_typed(size).await?,)) })
                        })
                        .map_err(anyhow::Error::from)?;
                    instance
                        .func_wrap_async("put", move |_store, (data,): (Vec<u8>,)| {
                            let blob = blob.clone();
                            Box::new(async move { Ok((blob.put_typed(&data).await?,)) })
                        })
                        .map_err(anyhow::Error::from)?;
                    // Not called by the benchmark: the rest of the imported interface.
                    instance
                        .func_wrap_async("fetch-chunks", |_store, _: (u64, u32)| {
                            Box::new(async {
                                wasmtime::Result::<(Vec<Vec<u8>>,)>::Err(wasmtime::format_err!(
                                    "fetch-chunks is not bound on the floor"
                                ))
                            })
                        })
                        .map_err(anyhow::Error::from)?;
                    instance
                        .func_wrap_async("echo", |_store, _: (Vec<u8>,)| {
                            Box::new(async {
                                wasmtime::Result::<(Vec<u8>,)>::Err(wasmtime::format_err!(
                                    "echo is not bound on the floor"
                                ))
                            })
                        })
                        .map_err(anyhow::Error::from)?;
                }
            }
            let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from)?;
            let instance = component
                .get_export_index(None, interface)
                .with_context(|| format!("`{file}` does not export `{interface}`"))?;
            let mut indices = HashMap::new();
            for func in funcs {
                let index = component
                    .get_export_index(Some(&instance), func)
                    .with_context(|| format!("`{file}` does not export `{interface}#{func}`"))?;
                indices.insert(*func, index);
            }
            Ok(Arc::new(Self {
                floor: floor.clone(),
                pre,
                funcs: indices,
            }))
        }

        async fn fresh(&self) -> wasmtime::Result<(Store<State>, Instance)> {
            let mut store = self.floor.store();
            let instance = self.pre.instantiate_async(&mut store).await?;
            Ok((store, instance))
        }

        /// A fresh store and instance, and nothing else.
        pub(super) async fn instantiate(&self) -> anyhow::Result<()> {
            let (store, _instance) = self.fresh().await?;
            self.floor.recycle(store);
            Ok(())
        }

        /// `greet(name)` in a fresh instance through a `TypedFunc`.
        pub(super) async fn greet_typed(&self, name: &str) -> anyhow::Result<String> {
            let (mut store, instance) = self.fresh().await?;
            let greet = instance.get_typed_func::<(&str,), (String,)>(&mut store, self.funcs["greet"])?;
            let (greeting,) = greet.call_async(&mut store, (name,)).await?;
            self.floor.recycle(store);
            Ok(greeting)
        }

        /// A warm instance of the greeter and its `greet` as a `TypedFunc` and as a
        /// `Func` (the allocation counts' wasmtime share).
        pub(super) async fn warm_greeter(&self) -> anyhow::Result<Warm> {
            let (mut store, instance) = self.fresh().await?;
            let typed = instance.get_typed_func::<(&str,), (String,)>(&mut store, self.funcs["greet"])?;
            let func = instance
                .get_func(&mut store, self.funcs["greet"])
                .context("`greet` does not resolve")?;
            Ok(Warm { store, typed, func })
        }

        /// `run(input)` in a fresh instance, with `Val`s.
        pub(super) async fn run(&self, input: String) -> wasmtime::Result<String> {
            let (mut store, instance) = self.fresh().await?;
            let func = instance
                .get_func(&mut store, self.funcs["run"])
                .ok_or_else(|| wasmtime::format_err!("`run` does not resolve"))?;
            let mut results = [Val::Bool(false)];
            func.call_async(&mut store, &[Val::String(input)], &mut results)
                .await?;
            self.floor.recycle(store);
            match results {
                [Val::String(output)] => Ok(output),
                other => Err(wasmtime::format_err!("`run` returned {other:?}")),
            }
        }

        /// `fetch(size)` in a fresh instance through a `TypedFunc`.
        pub(super) async fn fetch_typed(&self, size: u32) -> wasmtime::Result<Vec<u8>> {
            let (mut store, instance) = self.fresh().await?;
            let fetch = instance.get_typed_func::<(u32,), (Vec<u8>,)>(&mut store, self.funcs["fetch"])?;
            let (bytes,) = fetch.call_async(&mut store, (size,)).await?;
            self.floor.recycle(store);
            Ok(bytes)
        }

        /// `put(data)` in a fresh instance through a `TypedFunc`.
        pub(super) async fn put_typed(&self, data: &[u8]) -> wasmtime::Result<u32> {
            let (mut store, instance) = self.fresh().await?;
            let put = instance.get_typed_func::<(&[u8],), (u32,)>(&mut store, self.funcs["put"])?;
            let (offset,) = put.call_async(&mut store, (data,)).await?;
            self.floor.recycle(store);
            Ok(offset)
        }

        /// `func(params)` in a fresh instance with `Val`s; its one result.
        pub(super) async fn call_val(&self, func: &str, params: &[Val]) -> wasmtime::Result<Val> {
            let (mut store, instance) = self.fresh().await?;
            let index = *self
                .funcs
                .get(func)
                .ok_or_else(|| wasmtime::format_err!("no `{func}` loaded"))?;
            let func = instance
                .get_func(&mut store, index)
                .ok_or_else(|| wasmtime::format_err!("`{func}` does not resolve"))?;
            let mut results = [Val::Bool(false)];
            func.call_async(&mut store, params, &mut results).await?;
            self.floor.recycle(store);
            let [result] = results;
            Ok(result)
        }
    }

    /// A warm greeter instance.
    pub(super) struct Warm {
        pub(super) store: Store<State>,
        pub(super) typed: TypedFunc<(&'static str,), (String,)>,
        pub(super) func: wasmtime::component::Func,
    }

    /// Every floor component of the groups, on the default `[runtime]` engine config.
    pub(super) struct Direct {
        pub(super) a: Arc<Loaded>,
        pub(super) c: Arc<Loaded>,
        pub(super) blob: Arc<Loaded>,
        pub(super) proxy: Arc<Loaded>,
        pub(super) greeter: Arc<Loaded>,
    }

    impl Direct {
        pub(super) fn load(max_memory: usize) -> anyhow::Result<Self> {
            let floor = Floor::new(&RuntimeConfig::default(), max_memory, false)?;
            let c = Loaded::load(&floor, "pipeline-c", STAGE, &["run"], Imports::None)?;
            let b = Loaded::load(&floor, "pipeline-b", STAGE, &["run"], Imports::Stage(c.clone()))?;
            let a = Loaded::load(&floor, "pipeline-a", STAGE, &["run"], Imports::Stage(b))?;
            let blob = Loaded::load(&floor, "blob", BLOB, &["fetch", "put"], Imports::None)?;
            let proxy = Loaded::load(
                &floor,
                "blob-proxy",
                BLOB,
                &["fetch", "put"],
                Imports::Blob(blob.clone()),
            )?;
            let greeter = Loaded::load(&floor, "greeter", GREETER, &["greet"], Imports::None)?;
            Ok(Self {
                a,
                c,
                blob,
                proxy,
                greeter,
            })
        }
    }
}

use direct::{Direct, Floor, Imports, Loaded};

// ----- floor calls -----

fn greet_typed(greeter: &Arc<Loaded>) -> Call {
    let greeter = greeter.clone();
    call(move || {
        let greeter = greeter.clone();
        async move {
            let greeting = greeter.greet_typed(NAME).await?;
            ensure!(greeting == GREETING, "greeter answered {greeting:?}");
            Ok(())
        }
    })
}

fn instantiate(greeter: &Arc<Loaded>) -> Call {
    let greeter = greeter.clone();
    call(move || {
        let greeter = greeter.clone();
        async move { greeter.instantiate().await }
    })
}

fn run_direct(stage: &Arc<Loaded>, expect: &'static str) -> Call {
    let stage = stage.clone();
    call(move || {
        let stage = stage.clone();
        async move {
            let output = stage.run(INPUT.to_string()).await?;
            ensure!(output == expect, "stage answered {output:?}");
            Ok(())
        }
    })
}

fn fetch_typed(blob: &Arc<Loaded>) -> Call {
    let blob = blob.clone();
    call(move || {
        let blob = blob.clone();
        async move {
            let bytes = blob.fetch_typed(BLOB_SIZE).await?;
            ensure!(bytes.len() == BLOB_SIZE as usize, "blob of {} bytes", bytes.len());
            Ok(())
        }
    })
}

fn put_typed(blob: &Arc<Loaded>, data: &Bytes) -> Call {
    let blob = blob.clone();
    let data = data.clone();
    call(move || {
        let blob = blob.clone();
        let data = data.clone();
        async move {
            let offset = blob.put_typed(&data).await?;
            ensure!(offset == BLOB_SIZE, "put answered {offset}");
            Ok(())
        }
    })
}

fn floor_val(loaded: &Arc<Loaded>, func: &'static str, params: Vec<Val>) -> Call {
    let loaded = loaded.clone();
    let params = Arc::new(params);
    call(move || {
        let loaded = loaded.clone();
        let params = params.clone();
        async move {
            let result = loaded.call_val(func, &params).await?;
            match (func, &result) {
                ("fetch", Val::List(list)) => {
                    ensure!(list.len() == BLOB_SIZE as usize, "{} bytes", list.len())
                }
                ("put", Val::U32(offset)) => ensure!(*offset == BLOB_SIZE, "put answered {offset}"),
                _ => anyhow::bail!("`{func}` returned {result:?}"),
            }
            Ok(())
        }
    })
}

fn val_bytes(val: &Val) -> anyhow::Result<Vec<u8>> {
    let Val::List(list) = val else {
        anyhow::bail!("expected a list, got {val:?}")
    };
    list.iter()
        .map(|v| match v {
            Val::U8(b) => Ok(*b),
            other => Err(anyhow::anyhow!("a {other:?} in a list<u8>")),
        })
        .collect()
}

fn blob_vals(data: &[u8]) -> Vec<Val> {
    vec![Val::List(data.iter().map(|b| Val::U8(*b)).collect())]
}

// ----- checks -----

/// Every path gives the right answer, in full, before anything is timed.
fn verify(hosts: &[Host], direct: &Direct, data: &Bytes) -> anyhow::Result<()> {
    let ring = &hosts[0];
    ring.rt.block_on(async {
        let chain = direct.a.run(INPUT.into()).await?;
        ensure!(chain == CHAIN, "direct pipeline answered {chain:?}");
        let leaf = direct.c.run(INPUT.into()).await?;
        ensure!(leaf == "c(x)", "direct leaf answered {leaf:?}");
        ensure!(
            direct.greeter.greet_typed(NAME).await? == GREETING,
            "direct greeter"
        );
        direct.greeter.instantiate().await?;
        check_blob(&direct.blob.fetch_typed(BLOB_SIZE).await?).context("direct_typed fetch")?;
        ensure!(
            direct.blob.put_typed(data).await? == BLOB_SIZE,
            "direct_typed put"
        );
        check_blob(&direct.proxy.fetch_typed(BLOB_SIZE).await?).context("direct_typed c2c fetch")?;
        ensure!(
            direct.proxy.put_typed(data).await? == BLOB_SIZE,
            "direct_typed c2c put"
        );
        let fetched = direct.proxy.call_val("fetch", &[Val::U32(BLOB_SIZE)]).await?;
        check_blob(&val_bytes(&fetched)?).context("direct c2c fetch")?;
        let put = direct.proxy.call_val("put", &blob_vals(data)).await?;
        ensure!(
            matches!(put, Val::U32(BLOB_SIZE)),
            "direct c2c put answered {put:?}"
        );
        // `Component::call_values` on the ring host's components.
        let fetched = ring
            .blob
            .call_values(BLOB, "fetch", &[Val::U32(BLOB_SIZE)])
            .await?;
        check_blob(&val_bytes(&fetched[0])?).context("direct fetch")?;
        let put = ring.blob.call_values(BLOB, "put", &blob_vals(data)).await?;
        ensure!(
            matches!(put.as_slice(), [Val::U32(BLOB_SIZE)]),
            "direct put answered {put:?}"
        );
        for greeter in [&ring.greeter, &ring.greeter_reuse] {
            let greeting = greeter
                .call_values(GREETER, "greet", &[Val::String(NAME.into())])
                .await?;
            ensure!(
                matches!(greeting.as_slice(), [Val::String(s)] if s == GREETING),
                "direct greeter answered {greeting:?}"
            );
        }
        anyhow::Ok(())
    })?;
    for host in hosts {
        let kind = host.kind;
        host.rt.block_on(async {
            let dispatcher = host.runtime.dispatcher();
            let mut sources = vec!["caller", "caller-reuse"];
            if kind == TransportKind::Ring {
                sources.extend(["caller-probe", "caller-probe-inline"]);
            }
            for source in sources {
                let (greeting,): (String,) = dispatcher
                    .invoke_values_blocking(
                        CallContext::new(source),
                        GREETER,
                        "greet",
                        (NAME.to_string(),),
                        NO_PATHS,
                    )
                    .await?;
                ensure!(
                    greeting == GREETING,
                    "{kind} {source}: greeter answered {greeting:?}"
                );
            }
            for source in ["caller", "caller-proxy"] {
                let (blob,): (Bytes,) = dispatcher
                    .invoke_values_blocking(CallContext::new(source), BLOB, "fetch", (BLOB_SIZE,), NO_PATHS)
                    .await?;
                check_blob(&blob).with_context(|| format!("{kind} {source} fetch"))?;
                let (offset,): (u32,) = dispatcher
                    .invoke_values_blocking(CallContext::new(source), BLOB, "put", (data.clone(),), NO_PATHS)
                    .await?;
                ensure!(offset == BLOB_SIZE, "{kind} {source}: put answered {offset}");
            }
            let chain = host
                .pipeline_a
                .call_values(STAGE, "run", &[Val::String(INPUT.into())])
                .await?;
            ensure!(
                matches!(chain.as_slice(), [Val::String(s)] if s == CHAIN),
                "{kind}: pipeline answered {chain:?}"
            );
            anyhow::Ok(())
        })?;
    }
    Ok(())
}

/// Every host's calls went over its own transport, and none failed.
fn check_metrics(flavor: Flavor, hosts: &[Host]) {
    for host in hosts {
        let metrics = host.runtime.dispatcher().metrics();
        let own = metrics.transport(host.kind);
        println!(
            "metrics {}: {}: {} calls over {}, {} errors",
            flavor.name(),
            host.kind,
            own.calls,
            host.kind,
            own.errors
        );
        assert!(own.calls > 0, "{}: no calls: {metrics}", host.kind);
        assert_eq!(own.errors, 0, "{}: {metrics}", host.kind);
        for other in TransportKind::ALL.into_iter().filter(|k| *k != host.kind) {
            assert_eq!(metrics.transport(other).calls, 0, "{}: {metrics}", host.kind);
        }
    }
}

// ----- the groups -----

/// Whether criterion only tests or lists (then nothing extra is measured).
fn extras() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list" || a == "--test")
}

/// The levers: each alone on top of `baseline`, then the chosen defaults.
fn levers() -> Vec<(&'static str, RuntimeConfig, bool)> {
    let baseline = RuntimeConfig {
        linear_memory_keep_resident: wrpc_ring::host::ByteSize(0),
        table_keep_resident: wrpc_ring::host::ByteSize(0),
        async_stack_keep_resident: wrpc_ring::host::ByteSize(0),
        pagemap_scan: PagemapScan::No,
        decommit_batch_size: 1,
        max_unused_warm_slots: 100,
        concurrency_support: true,
        ..RuntimeConfig::default()
    };
    let keep = RuntimeConfig {
        linear_memory_keep_resident: wrpc_ring::host::ByteSize(1 << 20),
        table_keep_resident: wrpc_ring::host::ByteSize(64 << 10),
        ..baseline.clone()
    };
    vec![
        ("baseline", baseline.clone(), false),
        ("keep_resident", keep.clone(), false),
        (
            "pagemap_scan",
            RuntimeConfig {
                pagemap_scan: PagemapScan::Yes,
                ..baseline.clone()
            },
            false,
        ),
        (
            "keep_resident+pagemap_scan",
            RuntimeConfig {
                pagemap_scan: PagemapScan::Yes,
                ..keep
            },
            false,
        ),
        (
            "async_stack_keep_resident",
            RuntimeConfig {
                async_stack_keep_resident: wrpc_ring::host::ByteSize(64 << 10),
                ..baseline.clone()
            },
            false,
        ),
        (
            "decommit_batch_16",
            RuntimeConfig {
                decommit_batch_size: 16,
                ..baseline.clone()
            },
            false,
        ),
        (
            "warm_slots_0",
            RuntimeConfig {
                max_unused_warm_slots: 0,
                ..baseline.clone()
            },
            false,
        ),
        (
            "warm_slots_1000",
            RuntimeConfig {
                max_unused_warm_slots: 1000,
                ..baseline.clone()
            },
            false,
        ),
        (
            "no_concurrency_support",
            RuntimeConfig {
                concurrency_support: false,
                ..baseline.clone()
            },
            false,
        ),
        ("wasi_reused", baseline, true),
        ("chosen", RuntimeConfig::default(), false),
        ("chosen_wasi_reused", RuntimeConfig::default(), true),
    ]
}

fn bench_levers(c: &mut Criterion, flavor: Flavor, rt: &tokio::runtime::Runtime) {
    let name = format!("instantiation_levers_{}", flavor.name());
    let max_memory = max_memory();
    let load = |config: &RuntimeConfig, reuse_wasi: bool| {
        let floor = Floor::new(config, max_memory, reuse_wasi).expect("lever engine");
        Loaded::load(&floor, "greeter", GREETER, &["greet"], Imports::None).expect("greeter")
    };
    let levers = levers();
    let baseline = load(&levers[0].1, false);
    let (base_inst, base_call) = (instantiate(&baseline), greet_typed(&baseline));
    let mut group = c.benchmark_group(&name);
    for (lever, config, reuse_wasi) in &levers {
        let greeter = load(config, *reuse_wasi);
        rt.block_on(async {
            greeter.instantiate().await?;
            let greeting = greeter.greet_typed(NAME).await?;
            ensure!(greeting == GREETING, "{lever}: greeter answered {greeting:?}");
            anyhow::Ok(())
        })
        .unwrap_or_else(|err| panic!("{lever}: {err:#}"));
        let inst = instantiate(&greeter);
        let full = greet_typed(&greeter);
        group.bench_function(format!("instantiate/{lever}"), |b| {
            b.iter_custom(|iters| time(rt, &inst, iters))
        });
        group.bench_function(format!("instantiate+call/{lever}"), |b| {
            b.iter_custom(|iters| time(rt, &full, iters))
        });
        if extras() && *lever != "baseline" {
            print_paired(
                &name,
                &format!("instantiate/{lever}"),
                "baseline",
                paired(rt, &inst, rt, &base_inst),
            );
            print_paired(
                &name,
                &format!("instantiate+call/{lever}"),
                "baseline",
                paired(rt, &full, rt, &base_call),
            );
        }
    }
    group.finish();
}

/// `(name, runtime, call)`: one row of a group.
type Row<'a> = (String, &'a tokio::runtime::Runtime, Call);

fn bench_rows(c: &mut Criterion, name: &str, rows: &[Row<'_>], blob: bool) {
    let mut group = c.benchmark_group(name);
    if blob {
        group
            .throughput(Throughput::Bytes(u64::from(BLOB_SIZE)))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10);
    }
    for (id, rt, call) in rows {
        group.bench_function(id.as_str(), |b| b.iter_custom(|iters| time(rt, call, iters)));
    }
    group.finish();
}

fn find<'r, 'a>(rows: &'r [Row<'a>], id: &str) -> &'r Row<'a> {
    rows.iter().find(|r| r.0 == id).expect("row")
}

fn pair(name: &str, rows: &[Row<'_>], a: &str, b: &str) -> Paired {
    let (ra, rb) = (find(rows, a), find(rows, b));
    let p = paired(ra.1, &ra.2, rb.1, &rb.2);
    print_paired(name, a, b, p);
    p
}

fn transports<'a>(hosts: &'a [Host], make: impl Fn(&Host) -> Call) -> Vec<Row<'a>> {
    hosts
        .iter()
        .map(|h| (h.kind.as_str().to_string(), &h.rt, make(h)))
        .collect()
}

fn run_flavor(c: &mut Criterion, flavor: Flavor, nats: &nats::NatsServer) {
    println!("=== {} ===", flavor.name());
    let hosts: Vec<Host> = TransportKind::ALL
        .into_iter()
        .map(|kind| {
            let url = (kind == TransportKind::Nats).then(|| nats.url());
            Host::start(kind, flavor, url).unwrap_or_else(|err| panic!("{kind} host: {err:#}"))
        })
        .collect();
    assert_eq!(hosts[0].kind, TransportKind::Ring);
    let ring = &hosts[0];
    for component in [&ring.greeter, &ring.blob] {
        for export in component.exports() {
            println!(
                "export {}: {export:?}: fast path {:?}",
                component.id(),
                export.fast_path()
            );
        }
    }
    let direct = Direct::load(max_memory()).expect("direct floor");
    let data = Bytes::from(pattern());
    verify(&hosts, &direct, &data).unwrap_or_else(|err| panic!("{err:#}"));
    let suffix = flavor.name();
    // The floors run on the ring host's runtime: the same kind of runtime, and no
    // transport of its own is involved in them.
    let rt = &ring.rt;

    bench_levers(c, flavor, rt);

    {
        let name = format!("component_greeter_{suffix}");
        let mut rows: Vec<Row<'_>> = vec![
            (
                "direct".into(),
                rt,
                call_values(&ring.greeter, GREETER, "greet", vec![Val::String(NAME.into())]),
            ),
            ("direct_typed".into(), rt, greet_typed(&direct.greeter)),
        ];
        rows.extend(transports(&hosts, |h| h.greet("caller")));
        rows.push((
            "direct_reuse".into(),
            rt,
            call_values(
                &ring.greeter_reuse,
                GREETER,
                "greet",
                vec![Val::String(NAME.into())],
            ),
        ));
        rows.push(("ring_reuse".into(), rt, ring.greet("caller-reuse")));
        rows.push(("ring_rust".into(), rt, ring.greet("caller-probe")));
        rows.push(("ring_rust_inline".into(), rt, ring.greet("caller-probe-inline")));
        bench_rows(c, &name, &rows, false);
        if extras() {
            pair(&name, &rows, "ring", "direct");
            pair(&name, &rows, "ring", "direct_typed");
            pair(&name, &rows, "ring", "nats");
            pair(&name, &rows, "ring", "duplex");
            pair(&name, &rows, "ring_reuse", "direct_reuse");
            pair(&name, &rows, "ring_rust", "ring_rust_inline");
        }
    }
    {
        let name = format!("component_pipeline_{suffix}");
        let mut rows: Vec<Row<'_>> = vec![
            (
                "leaf".into(),
                rt,
                call_values(&ring.pipeline_c, STAGE, "run", vec![Val::String(INPUT.into())]),
            ),
            ("direct_leaf".into(), rt, run_direct(&direct.c, "c(x)")),
            ("direct".into(), rt, run_direct(&direct.a, CHAIN)),
        ];
        rows.extend(transports(&hosts, |h| {
            call_values(&h.pipeline_a, STAGE, "run", vec![Val::String(INPUT.into())])
        }));
        bench_rows(c, &name, &rows, false);
        if extras() {
            for kind in ["ring", "duplex", "nats"] {
                let p = pair(&name, &rows, kind, "direct");
                println!("paired {name}: ({kind} − direct) / 2 = {}", us((p.a - p.b) / 2.0));
            }
        }
    }
    {
        let name = format!("component_blob_1MiB_result_{suffix}");
        let mut rows: Vec<Row<'_>> = vec![
            (
                "direct".into(),
                rt,
                call_values(&ring.blob, BLOB, "fetch", vec![Val::U32(BLOB_SIZE)]),
            ),
            ("direct_typed".into(), rt, fetch_typed(&direct.blob)),
        ];
        rows.extend(transports(&hosts, |h| h.fetch("caller")));
        bench_rows(c, &name, &rows, true);
        if extras() {
            pair(&name, &rows, "ring", "direct_typed");
            pair(&name, &rows, "ring", "nats");
        }
    }
    {
        let name = format!("component_blob_1MiB_param_{suffix}");
        let mut rows: Vec<Row<'_>> = vec![
            (
                "direct".into(),
                rt,
                call_values(&ring.blob, BLOB, "put", blob_vals(&data)),
            ),
            ("direct_typed".into(), rt, put_typed(&direct.blob, &data)),
        ];
        rows.extend(transports(&hosts, |h| h.put("caller", &data)));
        bench_rows(c, &name, &rows, true);
        if extras() {
            pair(&name, &rows, "ring", "direct_typed");
            pair(&name, &rows, "ring", "nats");
        }
    }
    {
        let name = format!("component_blob_1MiB_result_c2c_{suffix}");
        let mut rows: Vec<Row<'_>> = vec![
            (
                "direct".into(),
                rt,
                floor_val(&direct.proxy, "fetch", vec![Val::U32(BLOB_SIZE)]),
            ),
            ("direct_typed".into(), rt, fetch_typed(&direct.proxy)),
        ];
        rows.extend(transports(&hosts, |h| h.fetch("caller-proxy")));
        bench_rows(c, &name, &rows, true);
        if extras() {
            pair(&name, &rows, "ring", "direct_typed");
            pair(&name, &rows, "ring", "nats");
        }
    }
    {
        let name = format!("component_blob_1MiB_param_c2c_{suffix}");
        let mut rows: Vec<Row<'_>> = vec![
            (
                "direct".into(),
                rt,
                floor_val(&direct.proxy, "put", blob_vals(&data)),
            ),
            ("direct_typed".into(), rt, put_typed(&direct.proxy, &data)),
        ];
        rows.extend(transports(&hosts, |h| h.put("caller-proxy", &data)));
        bench_rows(c, &name, &rows, true);
        if extras() {
            pair(&name, &rows, "ring", "direct_typed");
            pair(&name, &rows, "ring", "nats");
        }
    }

    if extras() {
        allocations(flavor, ring, &direct);
        thread_probe(flavor, ring);
    }
    check_metrics(flavor, &hosts);
    drop(direct);
    drop(hosts);
}

// ----- allocations -----

/// Allocations of every thread per call of `call`, warm.
fn allocs_per_call(rt: &tokio::runtime::Runtime, call: &Call) -> f64 {
    time(rt, call, ALLOC_CALLS / 5);
    count_start();
    time(rt, call, ALLOC_CALLS);
    count_stop() as f64 / ALLOC_CALLS as f64
}

fn allocations(flavor: Flavor, ring: &Host, direct: &Direct) {
    let rt = &ring.rt;
    let f = flavor.name();
    let total = allocs_per_call(rt, &ring.greet("caller-reuse"));
    let fresh = allocs_per_call(rt, &ring.greet("caller"));
    let rust = allocs_per_call(rt, &ring.greet("caller-probe"));
    let rust_inline = allocs_per_call(rt, &ring.greet("caller-probe-inline"));
    let direct_reuse = allocs_per_call(
        rt,
        &call_values(
            &ring.greeter_reuse,
            GREETER,
            "greet",
            vec![Val::String(NAME.into())],
        ),
    );

    // wasmtime's share: a warm instance, `TypedFunc` and `Val`, counted in one task.
    let (typed, val) = rt.block_on(async {
        let mut warm = direct.greeter.warm_greeter().await.expect("warm greeter");
        let n = ALLOC_CALLS;
        for _ in 0..n / 5 {
            warm.typed
                .call_async(&mut warm.store, (NAME,))
                .await
                .expect("typed greet");
        }
        count_start();
        for _ in 0..n {
            let (greeting,) = warm
                .typed
                .call_async(&mut warm.store, (NAME,))
                .await
                .expect("typed greet");
            assert_eq!(greeting, GREETING);
        }
        let typed = count_stop() as f64 / n as f64;
        let params = [Val::String(NAME.into())];
        let mut results = [Val::Bool(false)];
        for _ in 0..n / 5 {
            warm.func
                .call_async(&mut warm.store, &params, &mut results)
                .await
                .expect("greet");
        }
        count_start();
        for _ in 0..n {
            warm.func
                .call_async(&mut warm.store, &params, &mut results)
                .await
                .expect("greet");
        }
        let val = count_stop() as f64 / n as f64;
        (typed, val)
    });

    // The codec's share: a `Ring` (no dispatcher) and a Rust server answering inline.
    let codec = rt.block_on(async {
        let transport = Ring::new(RingPool::new(64 << 10, 256)).with_prefix("alloc");
        let invocations = transport
            .serve_values::<(String,), (String,)>(GREETER, "greet", Vec::<Box<[Option<usize>]>>::new())
            .await
            .expect("serve");
        let server = tokio::spawn(async move {
            let mut invocations = pin!(invocations);
            while let Some(Ok((_, (name,), _, respond))) = invocations.next().await {
                respond((format!("Hello, {name}!"),)).await.expect("respond");
            }
        });
        let t = transport.clone();
        let greet = call(move || {
            let t = t.clone();
            async move {
                let (greeting,): (String,) = t
                    .invoke_values_blocking(None, GREETER, "greet", (NAME.to_string(),), NO_PATHS)
                    .await?;
                ensure!(greeting == GREETING, "ring answered {greeting:?}");
                Ok(())
            }
        });
        (server, greet)
    });
    let (server, greet) = codec;
    let codec = allocs_per_call(rt, &greet);
    server.abort();

    println!("alloc {f}: greeter over the ring, warm instance (reuse), total: {total:.2} per call");
    println!("alloc {f}: greeter over the ring, fresh instance: {fresh:.2} per call");
    println!("alloc {f}: greeter reuse, Component::call_values (no transport): {direct_reuse:.2} per call");
    println!(
        "alloc {f}: wasmtime, warm TypedFunc greet: {typed:.2} per call; warm Func (Val) greet: {val:.2}"
    );
    println!(
        "alloc {f}: wRPC codec (+ Ring transport), Rust server inline on a bare Ring: {codec:.2} per call"
    );
    println!(
        "alloc {f}: Rust server through the dispatcher: task per call {rust:.2}, inline {rust_inline:.2} per call"
    );
    // No subtraction gives the host's own share: the codec probe runs wRPC's codec on
    // both sides, while the served greeter uses the fast path. tests/allocations.rs
    // traces each allocation to its owner instead (the host's share is 0).
    println!(
        "alloc {f}: the host's own share: see tests/allocations.rs (each allocation traced to its owner)"
    );
}

// ----- the thread probe -----

/// Which worker each part of a `probe` call ran on (a Rust server that spawns a task
/// per call, as the runtime does).
fn thread_probe(flavor: Flavor, ring: &Host) {
    let dispatcher = ring.dispatcher();
    ring.probe_log.lock().unwrap().clear();
    RECORDING.store(true, Ordering::Relaxed);
    let callers = ring.rt.block_on(async move {
        tokio::spawn(async move {
            let cx = CallContext::new("caller-probe");
            let mut callers = Vec::with_capacity(PROBE_CALLS);
            for _ in 0..PROBE_CALLS {
                let before = std::thread::current().id();
                let (greeting,): (String,) = dispatcher
                    .invoke_values_blocking(cx.clone(), GREETER, "greet", (NAME.to_string(),), NO_PATHS)
                    .await
                    .expect("probe call");
                assert_eq!(greeting, GREETING);
                callers.push((before, std::thread::current().id()));
            }
            callers
        })
        .await
        .expect("probe caller")
    });
    RECORDING.store(false, Ordering::Relaxed);
    let log = ring.probe_log.lock().unwrap().clone();
    assert_eq!(log.len(), callers.len(), "one probe record per call");
    let n = callers.len() as f64;
    let share = |f: &dyn Fn(usize) -> bool| (0..callers.len()).filter(|i| f(*i)).count() as f64 * 100.0 / n;
    let task_on_caller = share(&|i| log[i].1 == callers[i].0);
    let loop_on_caller = share(&|i| log[i].0 == callers[i].0);
    let task_on_loop = share(&|i| log[i].1 == log[i].0);
    let caller_moved = share(&|i| callers[i].1 != callers[i].0);
    let threads: std::collections::HashSet<ThreadId> = callers
        .iter()
        .flat_map(|c| [c.0, c.1])
        .chain(log.iter().flat_map(|l| [l.0, l.1]))
        .collect();
    println!(
        "threads {}: {} probe calls on {} threads: callee task on the caller's thread {task_on_caller:.1} %, \
         serve loop on the caller's thread {loop_on_caller:.1} %, callee task on the serve loop's thread \
         {task_on_loop:.1} %, caller resumed on another thread {caller_moved:.1} %",
        flavor.name(),
        callers.len(),
        threads.len()
    );
}

// ----- the run -----

fn main() {
    let nats = nats::NatsServer::start();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    for flavor in flavors() {
        run_flavor(&mut c, flavor, &nats);
    }
    c.final_summary();
    drop(nats);
}
