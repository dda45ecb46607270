//! Call latency against payload size (issue 10, point 8): host → component
//! `blob.echo(list<u8>) -> list<u8>` with 64 B … 16 MiB over each transport
//! (`ring`, `duplex`, `mpsc`, `nats`) and the direct wasmtime call, side by side in one
//! run. `scripts/plot-latency` turns the results into `docs/latency.svg`
//! (`docs/benchmarks.md`, "Latency against payload size").
//!
//! Run with (the `instructions` profile is `release` without fat LTO, which would make a
//! wasmtime build far slower):
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-iai cargo bench --profile instructions --features wasmtime --bench payload
//! ```
//!
//! # What is measured
//!
//! - `ring`, `duplex`, `mpsc`, `nats`: one host per transport (a [`Runtime`] with the
//!   default `[limits]`, ring config and `[runtime]`), each on its own `multi_thread`
//!   tokio runtime with two workers (the machine's two vCPUs), serving `blob.wasm` with
//!   a fresh instance per call (the default). The benchmark calls as component
//!   `caller`, linked to `blob`, through the host's [`Dispatcher`] with
//!   `InvokeExt::invoke_values_blocking`, the list as `Bytes` (what generated wRPC
//!   bindings use): route, encode, hand over, the callee's task instantiates, decodes,
//!   calls, encodes, the result comes back and is decoded. Only the `nats` host has a
//!   NATS url: a real `nats-server` started for the run on a random loopback port, with
//!   its default `max_payload` (1 MiB); `wrpc-transport-nats` splits a larger payload
//!   into messages of at most `max_payload` bytes, so 4 and 16 MiB go through as
//!   several messages.
//! - `direct`: the floor. `blob.wasm` on an engine built from [`engine_config`] (the
//!   runtime's engine configuration, default `[runtime]`), WASI p2 linked, the store
//!   set up as the runtime's (memory limit, epoch deadline), a fresh store and instance
//!   from the pooling allocator per call, and `echo` through a
//!   `TypedFunc<(&[u8],), (Vec<u8>,)>`. No dispatcher, no encoding, no transport.
//!
//! # How
//!
//! For each size, every path is first checked: one call whose result must equal the
//! sent bytes in full. Then `ROUNDS_MIN`..`ROUNDS_MAX` rounds run, each a batch of
//! calls of every path in turn (the order rotates by one each round), until the size's
//! time budget is spent; a batch is sized to about `BATCH` from a calibration, and
//! timed by a task on the path's runtime that makes the calls in a loop. A sample is
//! the batch's time per call, so for small payloads (many calls per batch) the p10 and
//! p90 are the spread between rounds, not a per-call tail; from about 1 MiB a batch is
//! one call. Timed calls check the result's length and last byte. At the end every
//! host's metrics must show its calls on its own transport and no errors.
//!
//! Results: a table on stdout, and JSON (median, p10, p90, mean per point, in ns per
//! call) in `target/payload/latency.json` under the repository, or
//! `$WRPC_RING_PAYLOAD_OUT`. `WRPC_RING_PAYLOAD_SECS` sets the time budget per size
//! (default 15 s). Without `--bench` (`cargo test --benches`) only the checks run.

#[path = "../tests/common/nats.rs"]
mod nats;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use futures::future::BoxFuture;
use wrpc_ring::host::{CallContext, ComponentConfig, Dispatcher, HostConfig, TransportKind};
use wrpc_ring::runtime::{Runtime, Serving};
use wrpc_transport::InvokeExt as _;

const BLOB: &str = "wrpc-ring:examples/blob";
const NO_PATHS: &[&[Option<usize>]] = &[];

/// The payload sizes, 64 B to 16 MiB.
const SIZES: [usize; 7] = [64, 1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

/// Worker threads of each `multi_thread` runtime (the machine has two vCPUs).
const WORKERS: usize = 2;

/// A batch of calls takes about this long (at least one call).
const BATCH: Duration = Duration::from_millis(10);
/// The most calls in one batch.
const BATCH_MAX: u64 = 10_000;
/// Rounds per size: at least this many, whatever the time budget...
const ROUNDS_MIN: usize = 21;
/// ...and no more than this many.
const ROUNDS_MAX: usize = 301;
/// The time budget of one size, unless `WRPC_RING_PAYLOAD_SECS` says otherwise.
const SECS_DEFAULT: f64 = 15.0;

const SECS_VAR: &str = "WRPC_RING_PAYLOAD_SECS";
const OUT_VAR: &str = "WRPC_RING_PAYLOAD_OUT";

fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/components/wasm")
        .join(format!("{name}.wasm"))
}

/// `size` bytes, byte `i` being `i % 251` (251 is prime: a lost or repeated chunk of
/// any power-of-two size shows up).
fn payload(size: usize) -> Bytes {
    (0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

fn max_memory() -> usize {
    usize::try_from(HostConfig::default().limits.max_memory.0).unwrap_or(usize::MAX)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("failed to build a tokio runtime")
}

/// A short readable size: `64 B`, `16 KiB`, `4 MiB`.
fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// A short readable time from nanoseconds.
fn time_name(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

// ----- calls -----

/// `echo(data)` once: the echoed bytes.
type Echo = Arc<dyn Fn(Bytes) -> BoxFuture<'static, anyhow::Result<Bytes>> + Send + Sync>;

/// One path: a name, the runtime its calls run on, and its `echo`.
struct Path {
    name: &'static str,
    rt: Arc<tokio::runtime::Runtime>,
    echo: Echo,
}

/// `iters` calls of `echo(data)` in a loop on a task of `rt`, timed by that task; each
/// result's length and last byte are checked.
fn time(path: &Path, data: &Bytes, iters: u64) -> Duration {
    let echo = path.echo.clone();
    let data = data.clone();
    let name = path.name;
    path.rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                let result = echo(data.clone())
                    .await
                    .unwrap_or_else(|err| panic!("{name}: echo of {} bytes: {err:#}", data.len()));
                assert!(
                    result.len() == data.len() && result.last() == data.last(),
                    "{name}: echo of {} bytes returned {} bytes",
                    data.len(),
                    result.len()
                );
            }
            start.elapsed()
        })
        .await
        .expect("measurement task panicked")
    })
}

/// One call whose result must be the sent bytes, in full.
fn check(path: &Path, data: &Bytes) -> anyhow::Result<()> {
    let echo = path.echo.clone();
    let data = data.clone();
    path.rt.block_on(async move {
        let result = echo(data.clone()).await?;
        ensure!(
            result.len() == data.len(),
            "echo of {} bytes returned {} bytes",
            data.len(),
            result.len()
        );
        let bad = result.iter().zip(data.iter()).position(|(a, b)| a != b);
        ensure!(
            bad.is_none(),
            "echo of {} bytes differs at byte {bad:?}",
            data.len()
        );
        Ok(())
    })
}

// ----- the hosts, one per transport -----

/// A host serving `blob` over one transport, on its own runtime.
struct Host {
    kind: TransportKind,
    runtime: Runtime,
    _serving: Serving,
    // Last: dropped after everything that runs on it.
    rt: Arc<tokio::runtime::Runtime>,
}

impl Host {
    fn start(kind: TransportKind, nats_url: Option<String>) -> anyhow::Result<Self> {
        let rt = Arc::new(runtime());
        let (runtime, serving) = rt.block_on(async move {
            let mut config = HostConfig {
                transport: kind,
                lattice: "payload".to_string(),
                ..HostConfig::default()
            };
            config.nats.url = nats_url;
            let dispatcher = Dispatcher::new(&config).await?;
            let runtime = Runtime::new(dispatcher, &config.limits, &config.runtime)?;
            // A fresh instance per call: `ComponentConfig`'s default.
            let blob = runtime.load_config(&ComponentConfig::new("blob", wasm("blob")))?;
            let serving = runtime.serve(blob).await?;
            runtime.dispatcher().link("caller", BLOB, "default", "blob");
            anyhow::Ok((runtime, serving))
        })?;
        Ok(Self {
            kind,
            runtime,
            _serving: serving,
            rt,
        })
    }

    fn path(&self) -> Path {
        let dispatcher = self.runtime.dispatcher().clone();
        let cx = CallContext::new("caller");
        Path {
            name: self.kind.as_str(),
            rt: self.rt.clone(),
            echo: Arc::new(move |data| {
                let dispatcher = dispatcher.clone();
                let cx = cx.clone();
                Box::pin(async move {
                    let (echoed,): (Bytes,) = dispatcher
                        .invoke_values_blocking(cx, BLOB, "echo", (data,), NO_PATHS)
                        .await?;
                    Ok(echoed)
                })
            }),
        }
    }

    /// Its calls went over its own transport, and none failed.
    fn check_metrics(&self) {
        let metrics = self.runtime.dispatcher().metrics();
        let own = metrics.transport(self.kind);
        println!(
            "metrics: {}: {} calls, {} errors",
            self.kind, own.calls, own.errors
        );
        assert!(own.calls > 0, "{}: no calls: {metrics}", self.kind);
        assert_eq!(own.errors, 0, "{}: {metrics}", self.kind);
        for other in TransportKind::ALL.into_iter().filter(|k| *k != self.kind) {
            assert_eq!(metrics.transport(other).calls, 0, "{}: {metrics}", self.kind);
        }
    }
}

// ----- the floor: `echo` through a `TypedFunc`, no transport -----

mod direct {
    use anyhow::Context as _;
    use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, ResourceTable};
    use wasmtime::{Engine, Store, StoreLimits};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
    use wrpc_ring::host::RuntimeConfig;
    use wrpc_ring::runtime::engine_config;

    use super::{BLOB, wasm};

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

    /// `blob.wasm` ready to be instantiated, and the index of its `echo`.
    pub(super) struct Blob {
        engine: Engine,
        pre: InstancePre<State>,
        echo: ComponentExportIndex,
        max_memory: usize,
    }

    impl Blob {
        pub(super) fn load(max_memory: usize) -> anyhow::Result<Self> {
            let engine = Engine::new(&engine_config(&RuntimeConfig::default(), max_memory))
                .map_err(anyhow::Error::from)?;
            let component = Component::from_file(&engine, wasm("blob"))
                .map_err(anyhow::Error::from)
                .context("cannot load `blob`")?;
            let mut linker = Linker::<State>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from)?;
            let interface = component
                .get_export_index(None, BLOB)
                .with_context(|| format!("`blob` does not export `{BLOB}`"))?;
            let echo = component
                .get_export_index(Some(&interface), "echo")
                .with_context(|| format!("`blob` does not export `{BLOB}#echo`"))?;
            Ok(Self {
                engine,
                pre,
                echo,
                max_memory,
            })
        }

        /// `echo(data)` in a fresh store and instance through a `TypedFunc`.
        pub(super) async fn echo(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
            let state = State {
                wasi: WasiCtx::builder().inherit_stderr().build(),
                table: ResourceTable::new(),
                limits: wasmtime::StoreLimitsBuilder::new()
                    .memory_size(self.max_memory)
                    .trap_on_grow_failure(true)
                    .build(),
            };
            let mut store = Store::new(&self.engine, state);
            store.limiter(|state| &mut state.limits);
            store.set_epoch_deadline(EPOCH_DEADLINE);
            store.epoch_deadline_trap();
            let instance = self.pre.instantiate_async(&mut store).await?;
            let echo = instance.get_typed_func::<(&[u8],), (Vec<u8>,)>(&mut store, self.echo)?;
            let (echoed,) = echo.call_async(&mut store, (data,)).await?;
            Ok(echoed)
        }
    }
}

fn direct_path() -> anyhow::Result<Path> {
    let blob = Arc::new(direct::Blob::load(max_memory())?);
    Ok(Path {
        name: "direct",
        rt: Arc::new(runtime()),
        echo: Arc::new(move |data| {
            let blob = blob.clone();
            Box::pin(async move { Ok(blob.echo(&data).await?.into()) })
        }),
    })
}

// ----- statistics and results -----

/// The `q` quantile (0..=1) of sorted `values`, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// One path at one size.
struct Point {
    path: &'static str,
    size: usize,
    batch: u64,
    /// Time per call of each round's batch, ns, sorted.
    samples: Vec<f64>,
}

impl Point {
    fn median(&self) -> f64 {
        quantile(&self.samples, 0.5)
    }

    fn json(&self) -> String {
        let mean = self.samples.iter().sum::<f64>() / self.samples.len() as f64;
        format!(
            r#"{{"path": "{}", "size": {}, "median_ns": {:.1}, "p10_ns": {:.1}, "p90_ns": {:.1}, "mean_ns": {:.1}, "min_ns": {:.1}, "max_ns": {:.1}, "rounds": {}, "calls_per_round": {}}}"#,
            self.path,
            self.size,
            self.median(),
            quantile(&self.samples, 0.1),
            quantile(&self.samples, 0.9),
            mean,
            self.samples[0],
            self.samples[self.samples.len() - 1],
            self.samples.len(),
            self.batch,
        )
    }
}

/// The calls in a batch of about [`BATCH`]: batches of 1, 2, 4, ... calls until one
/// takes `BATCH` (which also warms the path up).
fn calibrate(path: &Path, data: &Bytes) -> u64 {
    let mut n = 1;
    loop {
        let elapsed = time(path, data, n);
        if elapsed >= BATCH || n >= BATCH_MAX {
            let per_call = elapsed.as_secs_f64() / n as f64;
            return ((BATCH.as_secs_f64() / per_call) as u64).clamp(1, BATCH_MAX);
        }
        n *= 2;
    }
}

/// Every path at `size`: calibrate, then rounds of one batch per path until `budget`.
fn measure_size(paths: &[Path], size: usize, budget: Duration) -> Vec<Point> {
    let data = payload(size);
    for path in paths {
        check(path, &data).unwrap_or_else(|err| panic!("{}: {err:#}", path.name));
    }
    let batches: Vec<u64> = paths.iter().map(|path| calibrate(path, &data)).collect();
    let mut samples = vec![Vec::new(); paths.len()];
    let start = Instant::now();
    let mut round = 0;
    while round < ROUNDS_MIN || (round < ROUNDS_MAX && start.elapsed() < budget) {
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            let elapsed = time(&paths[i], &data, batches[i]);
            samples[i].push(elapsed.as_secs_f64() * 1e9 / batches[i] as f64);
        }
        round += 1;
    }
    paths
        .iter()
        .zip(batches)
        .zip(samples)
        .map(|((path, batch), mut samples)| {
            samples.sort_by(f64::total_cmp);
            Point {
                path: path.name,
                size,
                batch,
                samples,
            }
        })
        .collect()
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Escapes `"` and `\` for a JSON string (the values here have no control characters).
fn json_str(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn write_results(points: &[Point], meta: &[(&str, String)]) -> anyhow::Result<PathBuf> {
    let out = std::env::var_os(OUT_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/payload/latency.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut json = String::from("{\n  \"meta\": {\n");
    for (i, (key, value)) in meta.iter().enumerate() {
        let comma = if i + 1 < meta.len() { "," } else { "" };
        writeln!(json, "    \"{key}\": \"{}\"{comma}", json_str(value))?;
    }
    json.push_str("  },\n  \"points\": [\n");
    for (i, point) in points.iter().enumerate() {
        let comma = if i + 1 < points.len() { "," } else { "" };
        writeln!(json, "    {}{comma}", point.json())?;
    }
    json.push_str("  ]\n}\n");
    std::fs::write(&out, json).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

fn print_table(paths: &[Path], points: &[Point]) {
    let mut header = format!("{:>8}", "size");
    for path in paths {
        write!(header, " {:>10}", path.name).unwrap();
    }
    header.push_str("  ring/direct  nats/ring");
    println!("{header}");
    for size in SIZES {
        let at = |name: &str| {
            points
                .iter()
                .find(|p| p.size == size && p.path == name)
                .map(Point::median)
        };
        let mut line = format!("{:>8}", size_name(size));
        for path in paths {
            let cell = at(path.name).map_or("-".to_string(), time_name);
            write!(line, " {cell:>10}").unwrap();
        }
        if let (Some(ring), Some(direct), Some(nats)) = (at("ring"), at("direct"), at("nats")) {
            write!(line, "  {:>10.2}×  {:>8.2}×", ring / direct, nats / ring).unwrap();
        }
        println!("{line}");
    }
}

// ----- the run -----

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let budget = std::env::var(SECS_VAR).map_or(SECS_DEFAULT, |s| {
        s.parse()
            .unwrap_or_else(|_| panic!("{SECS_VAR}={s}: expected seconds"))
    });
    let budget = Duration::from_secs_f64(budget);

    let nats = nats::NatsServer::start();
    println!("nats-server on {}", nats.url());
    let hosts: Vec<Host> = TransportKind::ALL
        .into_iter()
        .map(|kind| {
            let url = (kind == TransportKind::Nats).then(|| nats.url());
            Host::start(kind, url).unwrap_or_else(|err| panic!("{kind} host: {err:#}"))
        })
        .collect();
    let mut paths: Vec<Path> = hosts.iter().map(Host::path).collect();
    paths.push(direct_path().expect("direct floor"));

    if !bench {
        for size in SIZES {
            let data = payload(size);
            for path in &paths {
                check(path, &data).unwrap_or_else(|err| panic!("{}: {err:#}", path.name));
            }
        }
        for host in &hosts {
            host.check_metrics();
        }
        println!("payload: every path echoed every size (test mode, nothing timed)");
        return;
    }

    let load_start = loadavg();
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run_start = Instant::now();
    let mut points = Vec::new();
    for size in SIZES {
        let started = Instant::now();
        println!(
            "payload {}: measuring {} paths (budget {budget:?}, load {})",
            size_name(size),
            paths.len(),
            loadavg()
        );
        let measured = measure_size(&paths, size, budget);
        for point in &measured {
            println!(
                "payload {} {:>6}: median {:>10}  p10 {:>10}  p90 {:>10}  ({} rounds × {} calls)",
                size_name(size),
                point.path,
                time_name(point.median()),
                time_name(quantile(&point.samples, 0.1)),
                time_name(quantile(&point.samples, 0.9)),
                point.samples.len(),
                point.batch
            );
        }
        println!(
            "payload {}: done in {:.1} s",
            size_name(size),
            started.elapsed().as_secs_f64()
        );
        points.extend(measured);
    }
    for host in &hosts {
        host.check_metrics();
    }
    println!();
    print_table(&paths, &points);

    let meta = [
        ("commit", command_output("git", &["rev-parse", "--short", "HEAD"])),
        ("unix_time", unix_time.to_string()),
        ("rustc", command_output("rustc", &["--version"])),
        ("nats_server", command_output("nats-server", &["--version"])),
        (
            "runtime",
            format!("tokio multi_thread, {WORKERS} workers, one runtime per path"),
        ),
        ("instances", "fresh instance per call".to_string()),
        ("budget_per_size_s", format!("{}", budget.as_secs_f64())),
        ("loadavg_start", load_start),
        ("loadavg_end", loadavg()),
        ("duration_s", format!("{:.1}", run_start.elapsed().as_secs_f64())),
    ];
    let out = write_results(&points, &meta).expect("write results");
    println!("results written to {}", out.display());
    drop(hosts);
    drop(nats);
}
