//! Component-to-component call latency over `ring`, `duplex`, `mpsc` and `nats`, next to
//! a direct in-process wasmtime call that passes values without any transport (issue:
//! runtime).
//!
//! Run with `cargo bench --features wasmtime --bench component`; the table, the ratios
//! against the targets and what each number includes are recorded in
//! `docs/benchmarks.md` ("Components"). Every group holds the floor and all four
//! transports, so criterion's report shows them side by side.
//!
//! # The hosts
//!
//! One host per transport, each on its own `multi_thread` tokio runtime with two workers
//! (no host's background tasks, NATS's connection above all, run next to another's
//! calls): a [`Runtime`] with the default limits and ring config (64 KiB rings), serving
//! `greeter`, `blob` and the pipeline `pipeline-a` → `pipeline-b` → `pipeline-c` (each
//! `run` import linked to the next stage). Only the `nats` host gets a NATS url (a real
//! `nats-server` started for the run on a loopback port), so the other three serve on
//! their local transport only, and with `transport = "nats"` every call goes through the
//! server even though caller and callee share the process — what a wasmCloud 1.x host
//! does. Each served call runs in a fresh instance from the pooling allocator, on a task
//! of its own.
//!
//! # The groups
//!
//! - `component_greeter`, `component_blob_1MiB` — **host → component through the
//!   dispatcher**: the benchmark calls as component `caller`, linked to `greeter`
//!   (`greet("world") -> "Hello, world!"`) and to `blob` (`fetch(1 MiB) -> list<u8>`),
//!   with `InvokeExt::invoke_values_blocking` on the [`Dispatcher`]. One iteration: route,
//!   encode the params, hand them over, the callee's task instantiates the component,
//!   decodes, calls, encodes the results, they come back and are decoded. The floor,
//!   `direct`, is [`Instance::call_values`] on the same loaded component: a fresh
//!   instance (same pooling allocator, same store setup) and a call with `Val`s, no
//!   encoding, no transport, no task. `blob` also has `direct_typed`: a `TypedFunc<(u32,),
//!   (Vec<u8>,)>` on an equally configured engine (what generated host bindings do),
//!   because `Val` lifts a `list<u8>` byte by byte into one `Val::U8` each — and the
//!   served path does the same (`wrpc_runtime_wasmtime::call` lifts results to `Val`s),
//!   so `direct` is the like-for-like floor and `direct_typed` the best case. `greeter`
//!   also has `instantiate`: a fresh store and instance of the greeter and no call, the
//!   part of every one of these calls that is instantiation.
//! - `component_pipeline` — **the real component → component hop**: `run("x")` on
//!   `pipeline-a` with [`Instance::call_values`]; A's import goes to B and B's to C through
//!   the host's dispatcher, so one iteration is three fresh instances and two
//!   component-to-component calls over the transport (`a(b(c(x)))`). The floor, `direct`,
//!   runs the same three components on an equally configured engine whose linker binds
//!   each `stage` import to a host function that calls the next stage in a fresh instance
//!   directly, passing the string as a value (the approach wasmCloud 2 took).
//!   `leaf` is [`Instance::call_values`] on `pipeline-c` alone (one instance, no import),
//!   `direct_leaf` the same call on the floor's engine (to compare the two engines):
//!   `(pipeline − leaf) / 2` is the cost of one hop *including* the callee's instantiation,
//!   `(pipeline − direct) / 2` the transport's share of one hop.
//!
//! With `WRPC_RING_BENCH_RUNTIME=current_thread` every host runs on a `current_thread`
//! runtime instead, and the groups' names end in `_current_thread`.
//!
//! Each transport's calls are timed by one task on its host's runtime that runs `iters`
//! calls in a loop (`iter_custom`), so neither spawning the loop nor handing it the
//! request is measured. Before timing, every path is checked once for the right answer
//! (the whole 1 MiB pattern for `blob`), and at the end every host's metrics must show
//! its calls on its own transport and no errors.

#[path = "../tests/common/nats.rs"]
mod nats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use criterion::{Criterion, SamplingMode, Throughput};
use futures::future::BoxFuture;
use wasmtime::component::Val;
use wrpc_ring::host::{CallContext, Dispatcher, HostConfig, TransportKind};
use wrpc_ring::runtime::{Instance, Runtime, Serving};
use wrpc_transport::InvokeExt as _;

const GREETER: &str = "wrpc-ring:examples/greeter";
const BLOB: &str = "wrpc-ring:examples/blob";
const STAGE: &str = "wrpc-ring:examples/stage";
const NO_RESULT_PATHS: &[&[Option<usize>]] = &[];

/// The `blob` case: 1 MiB, sixteen times the default ring capacity.
const BLOB_SIZE: u32 = 1 << 20;

/// The name the greeter greets, and what it answers.
const NAME: &str = "world";
const GREETING: &str = "Hello, world!";

/// The pipeline's input, and what `pipeline-a` answers.
const INPUT: &str = "x";
const CHAIN: &str = "a(b(c(x)))";

/// The benchmark's own component id: the source of the host → component calls.
const CALLER: &str = "caller";

/// Worker threads of each host's tokio runtime (the machine has two vCPUs).
const WORKERS: usize = 2;

fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/components/wasm")
        .join(format!("{name}.wasm"))
}

/// One call, ready to be made again and again; checks the answer only cheaply (the full
/// check is [`verify`]'s).
type Call = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

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

// ----- the hosts, one per transport -----

/// A host serving the example components over one transport, on its own runtime.
struct Host {
    kind: TransportKind,
    runtime: Runtime,
    greeter: Arc<Instance>,
    pipeline_a: Arc<Instance>,
    pipeline_c: Arc<Instance>,
    blob: Arc<Instance>,
    _serving: Vec<Serving>,
    // Last: dropped after everything that runs on it.
    rt: tokio::runtime::Runtime,
}

/// Set to `current_thread` to run every host on a `current_thread` runtime instead (the
/// groups then end in `_current_thread`): the same calls without any cross-worker
/// wake-up, to see how much of a transport's cost is scheduling.
const FLAVOR_VAR: &str = "WRPC_RING_BENCH_RUNTIME";

fn current_thread() -> bool {
    match std::env::var(FLAVOR_VAR).as_deref() {
        Ok("current_thread") => true,
        Ok("multi_thread") | Err(_) => false,
        Ok(other) => panic!("{FLAVOR_VAR}={other}: expected `multi_thread` or `current_thread`"),
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    let mut builder = if current_thread() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(WORKERS);
        builder
    };
    builder
        .enable_all()
        .build()
        .expect("failed to build a tokio runtime")
}

impl Host {
    fn start(kind: TransportKind, nats_url: Option<String>) -> anyhow::Result<Self> {
        let rt = tokio_runtime();
        let (runtime, serving, [greeter, blob, pipeline_a, pipeline_c]) = rt.block_on(async {
            let mut config = HostConfig {
                transport: kind,
                ..HostConfig::default()
            };
            config.nats.url = nats_url;
            let dispatcher = Dispatcher::new(&config).await?;
            let runtime = Runtime::new(dispatcher, &config.limits)?;
            let mut serving = Vec::new();
            let mut loaded = Vec::new();
            for id in ["greeter", "blob", "pipeline-a", "pipeline-b", "pipeline-c"] {
                let instance = runtime.load_file(id, wasm(id))?;
                serving.push(runtime.serve(instance.clone()).await?);
                if id != "pipeline-b" {
                    loaded.push(instance);
                }
            }
            let dispatcher = runtime.dispatcher();
            dispatcher.link(CALLER, GREETER, "default", "greeter");
            dispatcher.link(CALLER, BLOB, "default", "blob");
            dispatcher.link("pipeline-a", STAGE, "default", "pipeline-b");
            dispatcher.link("pipeline-b", STAGE, "default", "pipeline-c");
            let loaded: [Arc<Instance>; 4] = loaded.try_into().expect("four instances");
            anyhow::Ok((runtime, serving, loaded))
        })?;
        Ok(Self {
            kind,
            runtime,
            greeter,
            pipeline_a,
            pipeline_c,
            blob,
            _serving: serving,
            rt,
        })
    }

    /// `greet(NAME)` from `caller` through the dispatcher.
    fn greet(&self) -> Call {
        let dispatcher = self.runtime.dispatcher().clone();
        let cx = CallContext::new(CALLER);
        Arc::new(move || {
            let dispatcher = dispatcher.clone();
            let cx = cx.clone();
            Box::pin(async move {
                let (greeting,): (String,) = dispatcher
                    .invoke_values_blocking(cx, GREETER, "greet", (NAME.to_string(),), NO_RESULT_PATHS)
                    .await?;
                ensure!(greeting == GREETING, "greeter answered {greeting:?}");
                Ok(())
            })
        })
    }

    /// `fetch(BLOB_SIZE)` from `caller` through the dispatcher.
    fn fetch(&self) -> Call {
        let dispatcher = self.runtime.dispatcher().clone();
        let cx = CallContext::new(CALLER);
        Arc::new(move || {
            let dispatcher = dispatcher.clone();
            let cx = cx.clone();
            Box::pin(async move {
                let (blob,): (Vec<u8>,) = dispatcher
                    .invoke_values_blocking(cx, BLOB, "fetch", (BLOB_SIZE,), NO_RESULT_PATHS)
                    .await?;
                ensure!(blob.len() == BLOB_SIZE as usize, "blob of {} bytes", blob.len());
                Ok(())
            })
        })
    }
}

/// `func` of `instance` on `component` with [`Instance::call_values`]: no transport for
/// the call itself (the component's imports still go through its host's dispatcher).
fn call_values(
    component: &Arc<Instance>,
    instance: &'static str,
    func: &'static str,
    params: Vec<Val>,
) -> Call {
    let component = component.clone();
    Arc::new(move || {
        let component = component.clone();
        let params = params.clone();
        Box::pin(async move {
            let results = component.call_values(instance, func, &params).await?;
            ensure!(results.len() == 1, "{} results", results.len());
            Ok(())
        })
    })
}

fn greet_direct(host: &Host) -> Call {
    call_values(&host.greeter, GREETER, "greet", vec![Val::String(NAME.into())])
}

fn fetch_direct(host: &Host) -> Call {
    call_values(&host.blob, BLOB, "fetch", vec![Val::U32(BLOB_SIZE)])
}

fn pipeline(host: &Host) -> Call {
    call_values(&host.pipeline_a, STAGE, "run", vec![Val::String(INPUT.into())])
}

fn leaf(host: &Host) -> Call {
    call_values(&host.pipeline_c, STAGE, "run", vec![Val::String(INPUT.into())])
}

// ----- the floor: components linked in-process, values passed directly -----

/// The same components on an engine configured like the runtime's, linked to each other
/// directly: a `stage` import is a host function that runs the next stage in a fresh
/// instance and returns its string. No dispatcher, no encoding, no task.
mod direct {
    use std::sync::Arc;

    use anyhow::Context as _;
    use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, ResourceTable, Val};
    use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
    use wrpc_ring::host::LimitsConfig;

    use super::{BLOB, GREETER, STAGE, wasm};

    /// Instances the pooling allocator keeps slots for: the runtime's value.
    const POOLED_INSTANCES: u32 = 1000;

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

    fn engine(max_memory: usize) -> anyhow::Result<Engine> {
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES)
            .total_memories(POOLED_INSTANCES)
            .total_tables(POOLED_INSTANCES)
            .max_memory_size(max_memory);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        Engine::new(&config).map_err(anyhow::Error::from)
    }

    fn store(engine: &Engine, max_memory: usize) -> Store<State> {
        let state = State {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            table: ResourceTable::new(),
            limits: wasmtime::StoreLimitsBuilder::new()
                .memory_size(max_memory)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(EPOCH_DEADLINE);
        store.epoch_deadline_trap();
        store
    }

    /// A loaded component and the index of one of its exports.
    struct Loaded {
        pre: InstancePre<State>,
        func: ComponentExportIndex,
        max_memory: usize,
    }

    impl Loaded {
        /// Loads `file`, with `next` (if any) bound to its `stage` import.
        fn load(
            engine: &Engine,
            max_memory: usize,
            file: &str,
            interface: &str,
            func: &str,
            next: Option<Arc<Loaded>>,
        ) -> anyhow::Result<Self> {
            let component = Component::from_file(engine, wasm(file))
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot load `{file}`"))?;
            let mut linker = Linker::<State>::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            if let Some(next) = next {
                linker
                    .instance(STAGE)
                    .map_err(anyhow::Error::from)?
                    .func_wrap_async("run", move |_store, (input,): (String,)| {
                        let next = next.clone();
                        Box::new(async move { Ok((next.run(input).await?,)) })
                    })
                    .map_err(anyhow::Error::from)?;
            }
            let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from)?;
            let instance = component
                .get_export_index(None, interface)
                .with_context(|| format!("`{file}` does not export `{interface}`"))?;
            let func = component
                .get_export_index(Some(&instance), func)
                .with_context(|| format!("`{file}` does not export `{interface}#{func}`"))?;
            Ok(Self {
                pre,
                func,
                max_memory,
            })
        }

        /// A fresh store and instance, and nothing else.
        async fn instantiate(&self) -> wasmtime::Result<()> {
            let mut store = store(self.pre.engine(), self.max_memory);
            self.pre.instantiate_async(&mut store).await?;
            Ok(())
        }

        /// `run(input)` in a fresh instance, with `Val`s like the runtime's calls.
        async fn run(&self, input: String) -> wasmtime::Result<String> {
            let mut store = store(self.pre.engine(), self.max_memory);
            let instance = self.pre.instantiate_async(&mut store).await?;
            let func = instance
                .get_func(&mut store, self.func)
                .ok_or_else(|| wasmtime::format_err!("`run` does not resolve"))?;
            let mut results = [Val::Bool(false)];
            func.call_async(&mut store, &[Val::String(input)], &mut results)
                .await?;
            match results {
                [Val::String(output)] => Ok(output),
                other => Err(wasmtime::format_err!("`run` returned {other:?}")),
            }
        }
    }

    /// The pipeline A → B → C, the blob and the greeter, linked in-process.
    pub(super) struct Direct {
        a: Arc<Loaded>,
        c: Arc<Loaded>,
        blob: Loaded,
        greeter: Loaded,
    }

    impl Direct {
        pub(super) fn load(limits: &LimitsConfig) -> anyhow::Result<Self> {
            let max_memory = usize::try_from(limits.max_memory.0).unwrap_or(usize::MAX);
            let engine = engine(max_memory)?;
            let c = Arc::new(Loaded::load(
                &engine,
                max_memory,
                "pipeline-c",
                STAGE,
                "run",
                None,
            )?);
            let b = Arc::new(Loaded::load(
                &engine,
                max_memory,
                "pipeline-b",
                STAGE,
                "run",
                Some(c.clone()),
            )?);
            let a = Arc::new(Loaded::load(
                &engine,
                max_memory,
                "pipeline-a",
                STAGE,
                "run",
                Some(b),
            )?);
            let blob = Loaded::load(&engine, max_memory, "blob", BLOB, "fetch", None)?;
            let greeter = Loaded::load(&engine, max_memory, "greeter", GREETER, "greet", None)?;
            Ok(Self { a, c, blob, greeter })
        }

        /// A fresh instance of the greeter, without calling it: the part of every call
        /// that is instantiation.
        pub(super) async fn instantiate_greeter(&self) -> anyhow::Result<()> {
            self.greeter.instantiate().await.map_err(anyhow::Error::from)
        }

        /// `run(input)` on C alone: one fresh instance, no import.
        pub(super) async fn leaf(&self, input: &str) -> anyhow::Result<String> {
            self.c.run(input.to_string()).await.map_err(anyhow::Error::from)
        }

        /// `run(input)` on A, which calls B, which calls C: three fresh instances.
        pub(super) async fn pipeline(&self, input: &str) -> anyhow::Result<String> {
            self.a.run(input.to_string()).await.map_err(anyhow::Error::from)
        }

        /// `fetch(size)` through a `TypedFunc`, as generated host bindings call it.
        pub(super) async fn fetch_typed(&self, size: u32) -> anyhow::Result<Vec<u8>> {
            let mut store = store(self.blob.pre.engine(), self.blob.max_memory);
            let instance = self.blob.pre.instantiate_async(&mut store).await?;
            let fetch = instance.get_typed_func::<(u32,), (Vec<u8>,)>(&mut store, self.blob.func)?;
            let (bytes,) = fetch.call_async(&mut store, (size,)).await?;
            Ok(bytes)
        }
    }
}

fn direct_pipeline(direct: &Arc<direct::Direct>) -> Call {
    let direct = direct.clone();
    Arc::new(move || {
        let direct = direct.clone();
        Box::pin(async move {
            let chain = direct.pipeline(INPUT).await?;
            ensure!(chain == CHAIN, "pipeline answered {chain:?}");
            Ok(())
        })
    })
}

fn instantiate_greeter(direct: &Arc<direct::Direct>) -> Call {
    let direct = direct.clone();
    Arc::new(move || {
        let direct = direct.clone();
        Box::pin(async move { direct.instantiate_greeter().await })
    })
}

fn direct_leaf(direct: &Arc<direct::Direct>) -> Call {
    let direct = direct.clone();
    Arc::new(move || {
        let direct = direct.clone();
        Box::pin(async move {
            let output = direct.leaf(INPUT).await?;
            ensure!(output == "c(x)", "leaf answered {output:?}");
            Ok(())
        })
    })
}

fn fetch_typed(direct: &Arc<direct::Direct>) -> Call {
    let direct = direct.clone();
    Arc::new(move || {
        let direct = direct.clone();
        Box::pin(async move {
            let blob = direct.fetch_typed(BLOB_SIZE).await?;
            ensure!(blob.len() == BLOB_SIZE as usize, "blob of {} bytes", blob.len());
            Ok(())
        })
    })
}

// ----- checks -----

fn check_blob(blob: &[u8]) -> anyhow::Result<()> {
    ensure!(blob.len() == BLOB_SIZE as usize, "blob of {} bytes", blob.len());
    let bad = blob.iter().enumerate().position(|(i, b)| *b != (i % 251) as u8);
    ensure!(bad.is_none(), "blob differs from its pattern at byte {bad:?}");
    Ok(())
}

/// Every path gives the right answer, in full, before anything is timed.
fn verify(hosts: &[Host], direct: &direct::Direct) -> anyhow::Result<()> {
    let floor = &hosts[0];
    floor.rt.block_on(async {
        let chain = direct.pipeline(INPUT).await?;
        ensure!(chain == CHAIN, "direct pipeline answered {chain:?}");
        let leaf = direct.leaf(INPUT).await?;
        ensure!(leaf == "c(x)", "direct leaf answered {leaf:?}");
        direct.instantiate_greeter().await?;
        check_blob(&direct.fetch_typed(BLOB_SIZE).await?).context("direct_typed")?;
        let blob = floor
            .blob
            .call_values(BLOB, "fetch", &[Val::U32(BLOB_SIZE)])
            .await?;
        let [Val::List(blob)] = blob.as_slice() else {
            anyhow::bail!("direct fetch returned {blob:?}")
        };
        let blob: Vec<u8> = blob
            .iter()
            .map(|v| match v {
                Val::U8(b) => Ok(*b),
                other => Err(anyhow::anyhow!("direct fetch returned a {other:?}")),
            })
            .collect::<anyhow::Result<_>>()?;
        check_blob(&blob).context("direct")?;
        anyhow::Ok(())
    })?;
    for host in hosts {
        let kind = host.kind;
        host.rt.block_on(async {
            let dispatcher = host.runtime.dispatcher();
            let (greeting,): (String,) = dispatcher
                .invoke_values_blocking(
                    CallContext::new(CALLER),
                    GREETER,
                    "greet",
                    (NAME.to_string(),),
                    NO_RESULT_PATHS,
                )
                .await?;
            ensure!(greeting == GREETING, "{kind}: greeter answered {greeting:?}");
            let (blob,): (Vec<u8>,) = dispatcher
                .invoke_values_blocking(
                    CallContext::new(CALLER),
                    BLOB,
                    "fetch",
                    (BLOB_SIZE,),
                    NO_RESULT_PATHS,
                )
                .await?;
            check_blob(&blob).with_context(|| format!("{kind}"))?;
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
fn check_metrics(hosts: &[Host]) {
    for host in hosts {
        let metrics = host.runtime.dispatcher().metrics();
        let own = metrics.transport(host.kind);
        println!(
            "{}: {} calls over {}, {} errors",
            host.kind, own.calls, host.kind, own.errors
        );
        assert_eq!(own.errors, 0, "{}: {metrics}", host.kind);
        for other in TransportKind::ALL.into_iter().filter(|k| *k != host.kind) {
            assert_eq!(metrics.transport(other).calls, 0, "{}: {metrics}", host.kind);
        }
    }
}

// ----- the run -----

fn main() {
    let nats = nats::NatsServer::start();
    let hosts: Vec<Host> = TransportKind::ALL
        .into_iter()
        .map(|kind| {
            let url = (kind == TransportKind::Nats).then(|| nats.url());
            Host::start(kind, url).unwrap_or_else(|err| panic!("{kind} host: {err:#}"))
        })
        .collect();
    let direct = Arc::new(direct::Direct::load(&HostConfig::default().limits).expect("direct floor"));
    verify(&hosts, &direct).unwrap_or_else(|err| panic!("{err:#}"));
    // The floors run on the ring host's runtime: the same kind of runtime, and no
    // transport of its own is involved in them.
    let floor = hosts
        .iter()
        .find(|h| h.kind == TransportKind::Ring)
        .expect("a ring host");

    let suffix = if current_thread() { "_current_thread" } else { "" };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .sample_size(50)
        .configure_from_args();

    {
        let mut group = c.benchmark_group(format!("component_greeter{suffix}"));
        let call = instantiate_greeter(&direct);
        group.bench_function("instantiate", |b| {
            b.iter_custom(|iters| time(&floor.rt, &call, iters))
        });
        let call = greet_direct(floor);
        group.bench_function("direct", |b| b.iter_custom(|iters| time(&floor.rt, &call, iters)));
        for host in &hosts {
            let call = host.greet();
            group.bench_function(host.kind.as_str(), |b| {
                b.iter_custom(|iters| time(&host.rt, &call, iters))
            });
        }
        group.finish();
    }
    {
        let mut group = c.benchmark_group(format!("component_blob_1MiB{suffix}"));
        group
            .throughput(Throughput::Bytes(u64::from(BLOB_SIZE)))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .measurement_time(Duration::from_secs(8));
        let call = fetch_typed(&direct);
        group.bench_function("direct_typed", |b| {
            b.iter_custom(|iters| time(&floor.rt, &call, iters))
        });
        let call = fetch_direct(floor);
        group.bench_function("direct", |b| b.iter_custom(|iters| time(&floor.rt, &call, iters)));
        for host in &hosts {
            let call = host.fetch();
            group.bench_function(host.kind.as_str(), |b| {
                b.iter_custom(|iters| time(&host.rt, &call, iters))
            });
        }
        group.finish();
    }
    {
        let mut group = c.benchmark_group(format!("component_pipeline{suffix}"));
        let call = leaf(floor);
        group.bench_function("leaf", |b| b.iter_custom(|iters| time(&floor.rt, &call, iters)));
        let call = direct_leaf(&direct);
        group.bench_function("direct_leaf", |b| {
            b.iter_custom(|iters| time(&floor.rt, &call, iters))
        });
        let call = direct_pipeline(&direct);
        group.bench_function("direct", |b| b.iter_custom(|iters| time(&floor.rt, &call, iters)));
        for host in &hosts {
            let call = pipeline(host);
            group.bench_function(host.kind.as_str(), |b| {
                b.iter_custom(|iters| time(&host.rt, &call, iters))
            });
        }
        group.finish();
    }

    check_metrics(&hosts);
    c.final_summary();
    drop(hosts);
    drop(nats);
}
