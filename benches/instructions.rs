//! Instruction counts of three hot paths, measured by callgrind through gungraun
//! (issue: performance regressions that a noisy machine cannot hide).
//!
//! Wall-clock benches on a shared 2-core VM swing by 2×; the number of instructions a
//! path executes does not. `scripts/instructions` runs this bench, compares each case's
//! count with `benches/instructions.baseline` and fails on a regression beyond its
//! margin; `docs/instructions.md` says how, and why that margin.
//!
//! Every case runs on a `current_thread` tokio runtime, so the whole path — both ends of
//! the pipe or call, and the scheduler between them — runs on the one thread callgrind
//! counts. The runtime, the pipe or host, and a few warm-up rounds (pool rings leased
//! once, components compiled, first-call allocations) are built by the case's `setup`,
//! which gungraun runs outside the measured function; the measured function runs
//! [`ROUND_TRIPS`], [`CALLS`] or [`GREETS`] rounds and hands its state back, so that
//! tearing it down is not measured either. The rounds run in a task of their own (as in
//! `benches/pipe.rs` and `benches/component.rs`), not as `block_on`'s future, so a
//! wake-up is a task switch, not a trip through the runtime's park path; the two ring
//! cases' runtimes have no I/O or time driver, which nothing there uses.
//!
//! - `ring_rtt_64b`: [`wrpc_ring::duplex`] ping-pong: the client writes 64 bytes
//!   (`write_all`), an echo task reads them (`read_exact`) and writes them back, the
//!   client reads them. The path of `rtt_64B_current_thread/ring_duplex` in
//!   `benches/pipe.rs`. `tokio_rtt_64b` is the same over `tokio::io::duplex`, its
//!   baseline (optimized profile only).
//! - `ring_call`: one [`Ring`] call through wRPC's typed helpers: `invoke_values` of
//!   `echo("ping") -> string` and a `serve_values` handler answering with its argument,
//!   on an unprefixed `Ring` over a warm 64 KiB pool.
//! - `greeter_call`: `wrpc-ring:examples/greeter.greet("world")` from component
//!   `caller`, linked to the `greeter` example component, through the host's
//!   `Dispatcher` over the ring (`invoke_values_blocking`): routing, encoding, a fresh
//!   greeter instance from the pooling allocator, the guest's call and the reply. The
//!   path of `component_greeter_current_thread/ring` in `benches/component.rs`.
//!   `greeter_call.direct` is its floor (`direct` there): `Component::call_values` on
//!   the same loaded greeter, fresh instance, no dispatcher, encoding, transport or
//!   task; `greeter_call.reuse` / `direct_reuse` are the two with `instances =
//!   "reuse"`. `docs/benchmarks.md` splits these counts by part of the call.
//!
//! Run with `scripts/instructions` (or `cargo bench --profile instructions --features
//! wasmtime --bench instructions`, which needs `gungraun-runner` and valgrind).

// gungraun's macros generate public modules, constants and functions without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::pin::pin;

use futures::StreamExt as _;
use gungraun::Callgrind;
use gungraun::prelude::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;
use wasmtime::component::Val;
use wrpc_ring::host::{CallContext, HostConfig};
use wrpc_ring::{Ring, RingPool, RingStream};
use wrpc_transport::{InvokeExt as _, ServeExt as _};

/// Round trips per `ring_rtt_64b` run.
const ROUND_TRIPS: usize = 1000;
/// Calls per `ring_call` run.
const CALLS: usize = 100;
/// Calls per `greeter_call` run.
const GREETS: usize = 10;
/// Rounds every case runs in its setup before it is measured.
const WARM_UP: usize = 3;

/// The ping-pong message size.
const MESSAGE: usize = 64;
/// Each ring's capacity: the crate's default ring size.
const CAPACITY: usize = 64 * 1024;

const NO_PATHS: &[&[Option<usize>]] = &[];

/// A `current_thread` runtime, with the I/O and time drivers if `drivers`.
fn current_thread(drivers: bool) -> Runtime {
    let mut builder = Builder::new_current_thread();
    if drivers {
        builder.enable_all();
    }
    builder.build().expect("failed to build a current_thread runtime")
}

/// Callgrind's `CALLGRIND_START_INSTRUMENTATION` client request (`valgrind/callgrind.h`):
/// from here on, callgrind instruments the code it runs; a no-op outside valgrind.
///
/// The bench runs under `--instr-atstart=no` (see [`config`]): a setup is not counted
/// anyway, and without instrumentation valgrind runs it several times faster. That
/// matters for the greeter, whose setup compiles the component with cranelift, slow to
/// begin with in the dev profile. Each setup ends with this request, so the measured
/// function is entered, and counted through gungraun's `--toggle-collect`, exactly as
/// with instrumentation from the start. gungraun has the request behind its non-default
/// `act` feature (`gungraun::client_requests`); this is the same few instructions, so
/// that the bench links the gungraun the tests have built (`docs/instructions.md`).
fn start_instrumentation() {
    #[cfg(target_arch = "x86_64")]
    {
        /// `VG_USERREQ_TOOL_BASE('C', 'T') + 4`: the fifth of callgrind's requests.
        const START_INSTRUMENTATION: u64 = ((b'C' as u64) << 24 | (b'T' as u64) << 16) + 4;
        let request: [u64; 6] = [START_INSTRUMENTATION, 0, 0, 0, 0, 0];
        // SAFETY: valgrind's x86_64 "special instruction" (`valgrind.h`,
        // `VALGRIND_DO_CLIENT_REQUEST_EXPR`): four rotations of `rdi` by 128 bits in all,
        // which leave it as it was (only the flags change, as `asm!` assumes by default), and
        // `xchg rbx, rbx`, which changes nothing. Natively
        // the sequence has no effect; valgrind recognises it and reads the request from
        // the six words `rax` points to (alive until the block ends), answering in `rdx`.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") request.as_ptr(),
                inout("rdx") 0u64 => _,
                inout("rdi") 0u64 => _,
                options(nostack),
            );
        }
    }
}

/// The config of every case: callgrind without instrumentation until a setup ends
/// ([`start_instrumentation`]), where the bench knows how to ask for it (x86_64).
fn config() -> LibraryBenchmarkConfig {
    let mut config = LibraryBenchmarkConfig::default();
    if cfg!(target_arch = "x86_64") {
        config.tool(Callgrind::with_args(["--instr-atstart=no"]));
    }
    config
}

/// Runs `rounds` as a task of `rt` and waits for its output.
fn on_task<T: Send + 'static>(rt: &Runtime, rounds: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(rt.spawn(rounds)).expect("the measured task panicked")
}

// ----- ring_rtt_64b -----

/// A client end and an echo task on the other end of a [`wrpc_ring::duplex`] (or, for
/// `tokio_rtt_64b`, of a [`tokio::io::duplex`] of the same capacity).
struct PingPong<S> {
    /// `None` only while a run has it.
    client: Option<S>,
    _echo: JoinHandle<()>,
    rt: Runtime,
}

impl PingPong<RingStream> {
    fn new() -> Self {
        Self::over(wrpc_ring::duplex(CAPACITY))
    }
}

impl PingPong<tokio::io::DuplexStream> {
    fn tokio() -> Self {
        Self::over(tokio::io::duplex(CAPACITY))
    }
}

impl<S> PingPong<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn over((client, mut server): (S, S)) -> Self {
        let rt = current_thread(false);
        let echo = rt.spawn(async move {
            let mut message = [0; MESSAGE];
            while server.read_exact(&mut message).await.is_ok() {
                if server.write_all(&message).await.is_err() {
                    break;
                }
            }
        });
        let mut this = Self {
            client: Some(client),
            _echo: echo,
            rt,
        };
        this.run(WARM_UP);
        start_instrumentation();
        this
    }

    fn run(&mut self, round_trips: usize) {
        let mut client = self.client.take().expect("a client end");
        let client = on_task(&self.rt, async move {
            let mut message = [0xA5; MESSAGE];
            for _ in 0..round_trips {
                client.write_all(black_box(&message)).await.expect("write");
                client.read_exact(&mut message).await.expect("read");
            }
            assert_eq!(message, [0xA5; MESSAGE], "the echo changed the message");
            client
        });
        self.client = Some(client);
    }
}

#[library_benchmark]
#[bench::duplex(setup = PingPong::new)]
fn ring_rtt_64b(mut ping_pong: PingPong<RingStream>) -> PingPong<RingStream> {
    ping_pong.run(ROUND_TRIPS);
    ping_pong
}

// The same ping-pong over `tokio::io::duplex`: the baseline of the ring's round trip
// (issue 9's target is ≤ 0.95× of it). Not one of the CI cases. (gungraun allows no doc
// comment on a benchmark function.)
#[library_benchmark]
#[bench::duplex(setup = PingPong::tokio)]
fn tokio_rtt_64b(mut ping_pong: PingPong<tokio::io::DuplexStream>) -> PingPong<tokio::io::DuplexStream> {
    ping_pong.run(ROUND_TRIPS);
    ping_pong
}

// ----- ring_call -----

const ECHO: &str = "wrpc-ring:bench/echo";

/// A [`Ring`] with an `echo` handler served on it.
struct RingCall {
    ring: Ring,
    _server: JoinHandle<()>,
    rt: Runtime,
}

impl RingCall {
    fn new() -> Self {
        let rt = current_thread(false);
        let ring = Ring::new(RingPool::new(CAPACITY, 64));
        let invocations = rt
            .block_on(ring.serve_values::<(String,), (String,)>(ECHO, "echo", Vec::new()))
            .expect("serve");
        let server = rt.spawn(async move {
            let mut invocations = pin!(invocations);
            while let Some(Ok((_, (text,), _, respond))) = invocations.next().await {
                tokio::spawn(async move {
                    let _ = respond((text,)).await;
                });
            }
        });
        let mut this = Self {
            ring,
            _server: server,
            rt,
        };
        this.run(WARM_UP);
        start_instrumentation();
        this
    }

    fn run(&mut self, calls: usize) {
        let ring = self.ring.clone();
        on_task(&self.rt, async move {
            for _ in 0..calls {
                let ((text,), io) = ring
                    .invoke_values::<_, _, (String,)>(
                        None,
                        ECHO,
                        "echo",
                        (black_box("ping").to_string(),),
                        NO_PATHS,
                    )
                    .await
                    .expect("call");
                assert!(io.is_none(), "no async values, no I/O future");
                assert_eq!(text, "ping");
            }
        });
    }
}

#[library_benchmark]
#[bench::echo(setup = RingCall::new)]
fn ring_call(mut call: RingCall) -> RingCall {
    call.run(CALLS);
    call
}

// ----- greeter_call -----

const GREETER: &str = "wrpc-ring:examples/greeter";
/// Slots of the greeter host's pooling allocator: a handful, since every call here
/// runs alone.
const POOLED_INSTANCES: u32 = 4;
/// The calling component: not loaded, only the source of the calls and of the link.
const CALLER: &str = "caller";

/// How a `greeter_call` case calls `greet`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// As component `caller`, through the `Dispatcher` over the ring.
    Ring,
    /// The floor: [`Component::call_values`](wrpc_ring::runtime::Component::call_values)
    /// on the loaded greeter, in the task itself: no dispatcher, encoding, transport or
    /// task hand-off.
    Direct,
}

/// A host serving the greeter (fresh instances, or `instances = "reuse"`), `caller`'s
/// greeter import linked to it. Built from TOML and `Host`, so that it depends on
/// little of the runtime's API.
struct Greeter {
    host: wrpc_ring::runtime::Host,
    path: Path,
    rt: Runtime,
}

impl Greeter {
    /// Fresh instances, over the ring (`greeter_call.world`).
    fn new() -> Self {
        Self::with(Path::Ring, "fresh")
    }

    /// Fresh instances, direct (`greeter_call.direct`).
    fn direct() -> Self {
        Self::with(Path::Direct, "fresh")
    }

    /// Warm reused instances, over the ring (`greeter_call.reuse`).
    fn reuse() -> Self {
        Self::with(Path::Ring, "reuse")
    }

    /// Warm reused instances, direct (`greeter_call.direct_reuse`).
    fn direct_reuse() -> Self {
        Self::with(Path::Direct, "reuse")
    }

    fn with(path: Path, instances: &str) -> Self {
        let wasm =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/components/wasm/greeter.wasm");
        let config = HostConfig::from_toml(&format!(
            r#"
            transport = "ring"

            [[component]]
            id = "greeter"
            path = {wasm:?}
            instances = "{instances}"

            [runtime]
            # valgrind's address space holds less than 64 GiB: room for a few 4 GiB
            # memory slots, not for the default 1000.
            pooled_instances = {POOLED_INSTANCES}
            "#
        ))
        .expect("the greeter host's config");
        let rt = current_thread(true);
        let host = rt
            .block_on(wrpc_ring::runtime::Host::start(&config))
            .expect("the greeter host");
        // A `[[link]]` must come from a loaded component; `caller` is only this bench.
        host.dispatcher().link(CALLER, GREETER, "default", "greeter");
        let mut this = Self { host, path, rt };
        this.run(WARM_UP);
        start_instrumentation();
        this
    }

    fn run(&mut self, calls: usize) {
        match self.path {
            Path::Ring => {
                let dispatcher = self.host.dispatcher().clone();
                // Made once and cloned per call, as the runtime's import polyfill does
                // (a clone is reference counts; `new` builds the headers).
                let cx = CallContext::new(CALLER);
                on_task(&self.rt, async move {
                    for _ in 0..calls {
                        let (greeting,): (String,) = dispatcher
                            .invoke_values_blocking(
                                cx.clone(),
                                GREETER,
                                "greet",
                                (black_box("world").to_string(),),
                                NO_PATHS,
                            )
                            .await
                            .expect("greet");
                        assert_eq!(greeting, "Hello, world!");
                    }
                });
            }
            Path::Direct => {
                let greeter = self.host.component("greeter").expect("the greeter").clone();
                on_task(&self.rt, async move {
                    for _ in 0..calls {
                        let params = [Val::String(black_box("world").to_string())];
                        let results = greeter
                            .call_values(GREETER, "greet", &params)
                            .await
                            .expect("greet");
                        assert!(
                            matches!(&results[..], [Val::String(s)] if s == "Hello, world!"),
                            "the greeter answered {results:?}"
                        );
                    }
                });
            }
        }
    }
}

#[library_benchmark]
#[bench::world(setup = Greeter::new)]
#[bench::direct(setup = Greeter::direct)]
#[bench::reuse(setup = Greeter::reuse)]
#[bench::direct_reuse(setup = Greeter::direct_reuse)]
fn greeter_call(mut greeter: Greeter) -> Greeter {
    greeter.run(GREETS);
    greeter
}

library_benchmark_group!(
    name = instructions,
    config = config(),
    benchmarks = [ring_rtt_64b, tokio_rtt_64b, ring_call, greeter_call]
);

main!(library_benchmark_groups = instructions);
