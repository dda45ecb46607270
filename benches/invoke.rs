//! The same typed wRPC echo call over `Ring` and its three baselines, side by side (issue:
//! native transport).
//!
//! Run with `cargo bench --bench invoke`; the results, their ratios and the allocation
//! counts are recorded in `docs/benchmarks.md`. Every group holds all four transports, so
//! criterion's report shows them next to each other:
//!
//! - `ring`: [`wrpc_ring::Ring`] on a `RingPool` of 64 KiB rings;
//! - `duplex`: [`wrpc_ring::baseline::Duplex`], wRPC's `frame` protocol over
//!   `tokio::io::duplex` with 64 KiB buffers;
//! - `mpsc`: [`wrpc_ring::baseline::Mpsc`], the same framing over `mpsc<Bytes>` pipes
//!   holding 64 KiB;
//! - `nats`: `wrpc_transport_nats::Client` over `async-nats`, against a real `nats-server`
//!   started on a random loopback port for the run.
//!
//! # What one iteration is
//!
//! One invocation through wRPC's typed helpers (`InvokeExt::invoke_values` on the caller,
//! `ServeExt::serve_values` on the callee), echoing its argument back:
//!
//! - `echo_string_64B`: `echo(s: string) -> string` with a 64-byte string;
//! - `echo_list_64KiB`: `echo(l: list<u8>) -> list<u8>` with 64 KiB (a `Bytes`);
//! - `echo_stream_16MiB`: `echo(s: stream<u8>) -> stream<u8>` with 16 MiB in 64 KiB chunks:
//!   the callee returns the very stream it receives, so every byte crosses the transport
//!   twice (parameter sub-stream in, result sub-stream out), and the caller consumes the
//!   result while its parameter writer (spawned by `invoke_values`) is still sending. The
//!   caller's source hands out one 64 KiB `Bytes` (a clone, no copy) per poll and yields
//!   to the scheduler between chunks, like a producer that is not infinitely fast:
//!   wRPC's `stream<u8>` encoder keeps pulling from an always-ready source into one
//!   growing buffer while its sink is full, which would turn the benchmark into a
//!   measurement of `BytesMut` growth and page faults (the same for every transport).
//! - `echo_string_64B_spawned`: the same call with the callee spawning a task per
//!   invocation to answer it, as generated bindings are served;
//! - `result_stream_16MiB`: `produce() -> stream<u8>`, 16 MiB in 64 KiB chunks from a
//!   source that yields between chunks, read by the caller through `invoke_values`
//!   while it polls the I/O future (what generated bindings do for a stream result);
//! - `raw_64B`: the transport alone, no codec: raw `Invoke::invoke` with 64 parameter
//!   bytes, shutdown, read the 64-byte reply to the end; the callee is a raw `Serve`
//!   stream that reads the parameters to the end, writes 64 bytes and shuts down.
//! - `raw_stream_16MiB`: the stream echo without the codec: the same root bytes as the
//!   typed call (one "stream pending" byte each way), then the caller writes 16 MiB as
//!   64 KiB `write_all`s to parameter sub-stream 0 while it reads result sub-stream 0
//!   to the end through `AsyncRead` into a 64 KiB buffer; the callee relays one to the
//!   other through a 64 KiB buffer. Every transport runs the same code (so the ring's
//!   in-place `AsyncBufRead` is not used): this is what the transports themselves cost
//!   for the bytes of the typed stream echo.
//!
//! Each transport has its own runtime, so no transport's background tasks (NATS's
//! connection) run next to another's calls. On it live a callee task per function
//! (spawned once; it answers invocations one after the other, inline: no task per call
//! of its own) and one caller task, which times a loop of `iters` calls itself
//! (`iter_custom`), so neither spawning nor the hand-over of the request is measured.
//! The same code runs on a `current_thread` runtime and on a `multi_thread` runtime with
//! two workers; both are built with `enable_all` (NATS needs the I/O and time drivers,
//! and every transport gets the same runtime).
//!
//! # Allocations
//!
//! Before the timed groups, the caller task counts the heap allocations of every thread
//! in the process during `ALLOC_CALLS` warm calls (after a quarter as many warm-up calls)
//! and prints them per invocation: `raw_64B` is the transport's own count (callee
//! included), the typed ones the total with wRPC's codec and helpers. The counting
//! allocator costs one relaxed load per allocation while not counting, so it does not
//! distort the timed groups.
//!
//! # Paired ratios
//!
//! After the groups, every operation runs again in `PAIRED_ROUNDS` interleaved rounds
//! (the same number of calls on each transport, back to back, the starting transport
//! rotating) and the median of the per-round ratios `ring ÷ baseline` is printed. On a
//! machine whose load comes and goes, this is the steadier ratio: criterion measures one
//! transport after the other, several seconds apart.
//!
//! Allocation counts and paired ratios are skipped in test mode (`cargo test --benches`),
//! with `--list` and with `--profile-time`.
//!
//! # Lost NATS calls
//!
//! wrpc-transport-nats 0.31 loses a call now and then (its router can see a call's
//! replies before it knows the call's subscription), and a lost call never ends. A NATS
//! call that takes over `NATS_CALL_LIMIT` is dropped, counted and reported on stderr as
//! it happens, and the run goes on: a paired round that lost a call is left out of that
//! transport's ratios (the line says how many were), a criterion sample that lost one
//! includes the wait (the warning says so), and the run ends with the count per
//! transport and runtime. The ring and the in-process baselines have no such limit: a
//! call of theirs that does not end is a bug, and the watchdog fails the run.
//!
//! # Buffer size
//!
//! Every transport buffers 64 KiB per stream (ring size, `duplex` buffer, `mpsc`
//! capacity). `WRPC_BENCH_BUFFER=1M cargo bench --bench invoke` changes it for all four at
//! once, to see how much the streaming results depend on it.

#[path = "../tests/common/nats.rs"]
mod nats;
#[path = "common/paired.rs"]
mod paired;

use paired::median;

use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, oneshot};
use wrpc_ring::baseline::{Duplex, Mpsc};
use wrpc_ring::{Ring, RingPool};
use wrpc_transport::{Index, Invoke, InvokeExt as _, Serve, ServeExt as _};

// ----- allocation counting -----

#[path = "../tests/common/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Allocations counted over a run of calls.
#[derive(Debug, Clone, Copy, Default)]
struct Allocations {
    count: u64,
    bytes: u64,
}

/// What a caller task reports for one request.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    elapsed: Duration,
    allocations: Allocations,
    /// Calls given up at the harness' call limit (NATS only); their time is in `elapsed`.
    lost: u64,
}

// ----- the calls -----

/// How long one request to a caller task may take before the run fails as a hang.
const WATCHDOG: Duration = Duration::from_secs(120);
/// How long one NATS call may take before it counts as lost and the run goes on.
///
/// wrpc-transport-nats 0.31's router can drop a call's replies when it learns of the
/// call's subscription after they arrive (docs/benchmarks.md, "Session 7: what lost the
/// NATS calls"); such a call never ends. Only the NATS harness has this limit: a hang
/// of the ring or of a baseline is a bug in this crate and fails the run. Its timer
/// costs well under 1 % of a NATS call.
const NATS_CALL_LIMIT: Duration = Duration::from_secs(10);
const INSTANCE: &str = "bench:invoke/echo";
/// Ring size, `tokio::io::duplex` buffer and `mpsc` pipe capacity alike.
const DEFAULT_BUFFER: usize = 64 * 1024;
/// Overrides [`DEFAULT_BUFFER`] for every transport at once (bytes, or with a `K`/`M`
/// suffix): a diagnostic of how much the streaming results depend on it.
const BUFFER_VAR: &str = "WRPC_BENCH_BUFFER";
/// Idle rings (and invocations) the `Ring` pool keeps.
const POOL_IDLE: usize = 256;
/// The 64-byte string.
const TEXT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const LIST: usize = 64 * 1024;
const STREAM: usize = 16 << 20;
const CHUNK: usize = 64 * 1024;
/// One chunk of the callee's `result-stream`.
static RESULT_CHUNK: [u8; CHUNK] = [0x3C; CHUNK];
/// The raw call's parameters and reply.
static RAW: [u8; 64] = [0x5A; 64];
/// Calls counted per operation (after a quarter as many warm-up calls).
const ALLOC_CALLS: [(Op, u64); 7] = [
    (Op::Raw, 2000),
    (Op::String, 2000),
    (Op::SpawnedString, 2000),
    (Op::ResultStream, 8),
    (Op::List, 500),
    (Op::Stream, 8),
    (Op::RawStream, 8),
];

const NO_PATHS: &[&[Option<usize>]] = &[];

type ByteStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Every operation, in the order the groups run.
const OPS: [Op; 7] = [
    Op::String,
    Op::SpawnedString,
    Op::Raw,
    Op::List,
    Op::ResultStream,
    Op::Stream,
    Op::RawStream,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Raw,
    String,
    SpawnedString,
    ResultStream,
    List,
    Stream,
    RawStream,
}

impl Op {
    fn func(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::String => "echo-string",
            Self::SpawnedString => "echo-string-spawned",
            Self::ResultStream => "result-stream",
            Self::List => "echo-list",
            Self::Stream => "echo-stream",
            Self::RawStream => "raw-stream",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Self::Raw => "raw_64B",
            Self::String => "echo_string_64B",
            Self::SpawnedString => "echo_string_64B_spawned",
            Self::ResultStream => "result_stream_16MiB",
            Self::List => "echo_list_64KiB",
            Self::Stream => "echo_stream_16MiB",
            Self::RawStream => "raw_stream_16MiB",
        }
    }

    fn payload(self) -> u64 {
        match self {
            Self::Raw | Self::String | Self::SpawnedString => 64,
            Self::List => LIST as u64,
            Self::Stream | Self::RawStream | Self::ResultStream => STREAM as u64,
        }
    }
}

/// `n` clones of `chunk`, one per poll, yielding to the scheduler between them.
struct Source {
    chunk: Bytes,
    left: usize,
    yielded: bool,
}

impl Stream for Source {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        self.left -= 1;
        Poll::Ready(Some(self.chunk.clone()))
    }
}

/// What the caller sends.
struct Payloads {
    list: Bytes,
    chunk: Bytes,
}

impl Payloads {
    fn new() -> Self {
        Self {
            list: Bytes::from(vec![0xA5; LIST]),
            chunk: Bytes::from(vec![0x5A; CHUNK]),
        }
    }
}

/// One call of `op` through `transport`, checking the echo; `scratch` is a 64 KiB read
/// buffer.
async fn call<T>(transport: &T, op: Op, payloads: &Payloads, scratch: &mut [u8]) -> anyhow::Result<()>
where
    T: Invoke,
    T::Context: Default,
{
    let cx = T::Context::default;
    match op {
        Op::Raw => {
            let params = Bytes::from_static(&RAW);
            let (mut outgoing, mut incoming) = transport
                .invoke(cx(), INSTANCE, op.func(), params, NO_PATHS)
                .await?;
            outgoing.shutdown().await?;
            // `frame` ends the parameters only when the writer is dropped.
            drop(outgoing);
            let mut buf = [0; 256];
            let mut seen = 0;
            loop {
                let n = incoming.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                seen += n;
            }
            ensure!(seen == RAW.len(), "raw reply of {seen} bytes");
        }
        Op::String | Op::SpawnedString => {
            let ((echo,), _) = transport
                .invoke_values::<_, _, (String,)>(cx(), INSTANCE, op.func(), (TEXT.to_string(),), NO_PATHS)
                .await?;
            ensure!(echo == TEXT, "string echo differs");
        }
        Op::List => {
            let ((echo,), _) = transport
                .invoke_values::<_, _, (Bytes,)>(
                    cx(),
                    INSTANCE,
                    op.func(),
                    (payloads.list.clone(),),
                    NO_PATHS,
                )
                .await?;
            ensure!(echo.len() == LIST, "list echo of {} bytes", echo.len());
        }
        Op::ResultStream => {
            // What generated bindings do for `-> stream<u8>`: decode the root, then
            // read the stream while polling the I/O future.
            let ((mut chunks,), io) = transport
                .invoke_values::<_, _, (ByteStream,)>(cx(), INSTANCE, op.func(), (), [[Some(0)].as_slice()])
                .await?;
            let io = io.context("a stream result needs I/O")?;
            let consume = async {
                let mut received = 0;
                while let Some(chunk) = chunks.next().await {
                    received += chunk.len();
                }
                received
            };
            let (received, io) = tokio::join!(consume, io);
            io?;
            ensure!(received == STREAM, "result stream of {received} bytes");
        }
        Op::Stream => {
            let source: ByteStream = Box::pin(Source {
                chunk: payloads.chunk.clone(),
                left: STREAM / CHUNK,
                yielded: false,
            });
            let ((mut echo,), io) = transport
                .invoke_values::<_, _, (ByteStream,)>(
                    cx(),
                    INSTANCE,
                    op.func(),
                    (source,),
                    [[Some(0)].as_slice()],
                )
                .await?;
            let io = io.context("a stream echo needs I/O")?;
            let consume = async {
                let mut received = 0;
                while let Some(chunk) = echo.next().await {
                    received += chunk.len();
                }
                received
            };
            let (received, io) = tokio::join!(consume, io);
            io?;
            ensure!(received == STREAM, "stream echo of {received} bytes");
        }
        Op::RawStream => {
            // As the typed helpers do it, minus the codec: a one-byte "stream pending"
            // each way on the root streams, the bytes on sub-stream 0.
            let (mut outgoing, mut incoming) = transport
                .invoke(
                    cx(),
                    INSTANCE,
                    op.func(),
                    Bytes::from_static(&[0]),
                    [[Some(0)].as_slice()],
                )
                .await?;
            let mut input = outgoing.index(&[0])?;
            let mut echo = incoming.index(&[0])?;
            outgoing.shutdown().await?;
            drop(outgoing);
            incoming.read_exact(&mut [0; 1]).await?;
            let send = async {
                for _ in 0..STREAM / CHUNK {
                    input.write_all(&payloads.chunk).await?;
                }
                input.shutdown().await?;
                drop(input);
                anyhow::Ok(())
            };
            let receive = async {
                let mut received = 0;
                loop {
                    let n = echo.read(scratch).await?;
                    if n == 0 {
                        return anyhow::Ok(received);
                    }
                    received += n;
                }
            };
            let (sent, received) = tokio::join!(send, receive);
            sent?;
            let received = received?;
            ensure!(received == STREAM, "raw stream echo of {received} bytes");
        }
    }
    Ok(())
}

/// The callee of `raw-stream`: relays sub-stream 0 of the parameters to sub-stream 0 of
/// the results through `buf`.
async fn relay<O, I>(mut outgoing: O, mut incoming: I, buf: &mut [u8]) -> anyhow::Result<()>
where
    O: AsyncWrite + Index<O> + Unpin,
    I: AsyncRead + Index<I> + Unpin,
{
    incoming.read_exact(&mut [0; 1]).await?;
    let mut input = incoming.index(&[0])?;
    let mut output = outgoing.index(&[0])?;
    outgoing.write_all(&[0]).await?;
    outgoing.shutdown().await?;
    drop(outgoing);
    loop {
        let n = input.read(buf).await?;
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n]).await?;
    }
    output.shutdown().await?;
    Ok(())
}

fn serve_paths(paths: &[&[Option<usize>]]) -> Vec<Box<[Option<usize>]>> {
    paths.iter().map(|path| Box::from(*path)).collect()
}

/// Answers every invocation of `invocations` with `answer`, one after the other.
async fn serve_loop<T, F: Future<Output = anyhow::Result<()>>>(
    what: &'static str,
    invocations: impl Stream<Item = anyhow::Result<T>>,
    mut answer: impl FnMut(T) -> F,
) {
    let mut invocations = pin!(invocations);
    while let Some(invocation) = invocations.next().await {
        let result = match invocation {
            Ok(invocation) => answer(invocation).await,
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            eprintln!("{what} callee: {err:#}");
        }
    }
}

/// Registers the four callees on `transport` and returns their loops, to be spawned.
async fn callees<T: Serve>(
    transport: &T,
) -> anyhow::Result<Vec<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>> {
    let raw = transport
        .serve(INSTANCE, Op::Raw.func(), serve_paths(&[]))
        .await?;
    let raw = serve_loop("raw", raw, |(_, mut outgoing, mut incoming)| async move {
        let mut buf = [0; 256];
        let mut seen = 0;
        loop {
            let n = incoming.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            seen += n;
        }
        ensure!(seen == RAW.len(), "raw parameters of {seen} bytes");
        outgoing.write_all(&RAW).await?;
        outgoing.shutdown().await?;
        Ok(())
    });
    let string = transport
        .serve_values::<(String,), (String,)>(INSTANCE, Op::String.func(), serve_paths(&[]))
        .await?;
    let string = serve_loop("string", string, |(_, (text,), _, respond)| respond((text,)));
    // As generated bindings are used: a task per invocation.
    let spawned = transport
        .serve_values::<(String,), (String,)>(INSTANCE, Op::SpawnedString.func(), serve_paths(&[]))
        .await?;
    let spawned = serve_loop("spawned", spawned, |(_, (text,), _, respond)| async move {
        tokio::spawn(async move {
            if let Err(err) = respond((text,)).await {
                eprintln!("spawned callee: {err:#}");
            }
        });
        Ok(())
    });
    let result_stream = transport
        .serve_values::<(), (ByteStream,)>(INSTANCE, Op::ResultStream.func(), serve_paths(&[]))
        .await?;
    let result_stream = serve_loop("result-stream", result_stream, |(_, (), _, respond)| async move {
        let source: ByteStream = Box::pin(Source {
            chunk: Bytes::from_static(&RESULT_CHUNK),
            left: STREAM / CHUNK,
            yielded: false,
        });
        respond((source,)).await
    });
    let list = transport
        .serve_values::<(Bytes,), (Bytes,)>(INSTANCE, Op::List.func(), serve_paths(&[]))
        .await?;
    let list = serve_loop("list", list, |(_, (list,), _, respond)| respond((list,)));
    let stream = transport
        .serve_values::<(ByteStream,), (ByteStream,)>(INSTANCE, Op::Stream.func(), serve_paths(&[&[Some(0)]]))
        .await?;
    let stream = serve_loop("stream", stream, |(_, (input,), io, respond)| async move {
        let io = async {
            match io {
                Some(io) => io.await.context("receiving the stream parameter"),
                None => Ok(()),
            }
        };
        let (received, sent) = tokio::join!(io, respond((input,)));
        received?;
        sent
    });
    let raw_stream = transport
        .serve(INSTANCE, Op::RawStream.func(), serve_paths(&[&[Some(0)]]))
        .await?;
    let raw_stream = async move {
        let mut buf = vec![0; CHUNK];
        let mut invocations = pin!(raw_stream);
        while let Some(invocation) = invocations.next().await {
            let result = match invocation {
                Ok((_, outgoing, incoming)) => relay(outgoing, incoming, &mut buf).await,
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                eprintln!("raw-stream callee: {err:#}");
            }
        }
    };
    Ok(vec![
        Box::pin(raw),
        Box::pin(string),
        Box::pin(spawned),
        Box::pin(result_stream),
        Box::pin(list),
        Box::pin(stream),
        Box::pin(raw_stream),
    ])
}

// ----- harnesses -----

/// A request to a caller task: run `calls` calls of `op`, counting allocations or not.
struct Request {
    op: Op,
    calls: u64,
    count: bool,
    reply: oneshot::Sender<Outcome>,
}

/// One transport on its own runtime: the callees and a caller task.
struct Harness {
    name: &'static str,
    requests: mpsc::UnboundedSender<Request>,
    /// Calls lost at the call limit since the harness started.
    lost: std::cell::Cell<u64>,
    // Declared last so that it is dropped last: dropping it cancels the tasks.
    runtime: Runtime,
}

impl Harness {
    /// Sets up `transport` (made on `runtime`) with its callees and a caller task.
    ///
    /// With a `call_limit`, a call that takes longer is dropped and counted as lost;
    /// without one, a call that fails to end trips the [`WATCHDOG`].
    fn start<T, F>(
        name: &'static str,
        runtime: Runtime,
        call_limit: Option<Duration>,
        transport: impl FnOnce() -> F,
    ) -> Self
    where
        F: Future<Output = anyhow::Result<T>>,
        T: Invoke + Serve + Send + 'static,
        <T as Invoke>::Context: Default,
    {
        let (requests, mut pending) = mpsc::unbounded_channel::<Request>();
        runtime
            .block_on(async {
                let transport = transport().await?;
                for callee in callees(&transport).await? {
                    tokio::spawn(callee);
                }
                tokio::spawn(async move {
                    let payloads = Payloads::new();
                    let mut scratch = vec![0; CHUNK];
                    while let Some(Request {
                        op,
                        calls,
                        count,
                        reply,
                    }) = pending.recv().await
                    {
                        if count {
                            alloc::start_all();
                        }
                        let mut lost = 0;
                        let start = Instant::now();
                        for _ in 0..calls {
                            let done = call(&transport, op, &payloads, &mut scratch);
                            let result = match call_limit {
                                None => done.await,
                                Some(limit) => match tokio::time::timeout(limit, done).await {
                                    Ok(result) => result,
                                    Err(_) => {
                                        lost += 1;
                                        continue;
                                    }
                                },
                            };
                            if let Err(err) = result {
                                panic!("{name} {op:?}: {err:#}");
                            }
                        }
                        let elapsed = start.elapsed();
                        let (count, bytes) = alloc::stop_all();
                        let allocations = Allocations { count, bytes };
                        let _ = reply.send(Outcome {
                            elapsed,
                            allocations,
                            lost,
                        });
                    }
                });
                anyhow::Ok(())
            })
            .unwrap_or_else(|err| panic!("setting up {name}: {err:#}"));
        Self {
            name,
            requests,
            lost: std::cell::Cell::new(0),
            runtime,
        }
    }

    /// Runs `calls` calls of `op` on the caller task. Lost calls are reported on stderr
    /// as they happen and added to [`Harness::lost`].
    fn run(&self, op: Op, calls: u64, count: bool) -> Outcome {
        let (reply, done) = oneshot::channel();
        self.requests
            .send(Request {
                op,
                calls,
                count,
                reply,
            })
            .expect("caller task alive");
        let name = self.name;
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(WATCHDOG, done).await })
            .unwrap_or_else(|_| panic!("{name} {op:?}: {calls} calls took over {WATCHDOG:?} (a hang)"))
            .expect("caller task finished its calls");
        if outcome.lost > 0 {
            self.lost.set(self.lost.get() + outcome.lost);
            eprintln!(
                "warning: {name} {op:?}: {} of {calls} calls lost (no answer within {NATS_CALL_LIMIT:?}); \
                 this sample's time includes their wait",
                outcome.lost
            );
        }
        outcome
    }

    /// The time `calls` calls of `op` take, and how many of them were lost.
    fn measure(&self, op: Op, calls: u64) -> (Duration, u64) {
        let outcome = self.run(op, calls, false);
        (outcome.elapsed, outcome.lost)
    }

    /// Allocations per call of `op`, after a warm-up (lost calls included: they
    /// allocate too, and a count is not a time).
    fn allocations(&self, op: Op, calls: u64) -> (f64, f64) {
        self.run(op, (calls / 4).max(2), false);
        let counted = self.run(op, calls, true).allocations;
        (
            counted.count as f64 / calls as f64,
            counted.bytes as f64 / calls as f64,
        )
    }
}

/// Builds one of the runtimes compared.
type MakeRuntime = fn() -> Runtime;

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime")
}

fn multi_thread_2w() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("multi_thread runtime")
}

/// The four transports on runtimes made by `runtime`, serving under `bench.{flavor}`.
///
/// The prefix differs per flavor because both flavors' NATS callees share one
/// `nats-server`: under one prefix, each would also receive the other's invocations (no
/// queue group), answered late or never while that runtime is not being driven.
fn harnesses(flavor: &str, runtime: MakeRuntime, nats_url: &str, buffer: usize) -> Vec<Harness> {
    let prefix = format!("bench.{flavor}");
    let url = nats_url.to_string();
    vec![
        Harness::start("ring", runtime(), None, || async {
            anyhow::Ok(Ring::new(RingPool::new(buffer, POOL_IDLE)).with_prefix(&prefix))
        }),
        Harness::start("duplex", runtime(), None, || async {
            anyhow::Ok(Duplex::new(buffer).with_prefix(&prefix))
        }),
        Harness::start("mpsc", runtime(), None, || async {
            anyhow::Ok(Mpsc::new(buffer).with_prefix(&prefix))
        }),
        Harness::start("nats", runtime(), Some(NATS_CALL_LIMIT), || async {
            let nats = async_nats::connect(url).await?;
            let client = wrpc_transport_nats::Client::new(nats, prefix.as_str(), None).await?;
            anyhow::Ok(client)
        }),
    ]
}

// ----- criterion -----

fn bench_op(criterion: &mut Criterion, op: Op, flavor: &str, harnesses: &[Harness]) {
    let mut group: BenchmarkGroup<'_, WallTime> =
        criterion.benchmark_group(format!("{}_{flavor}", op.group()));
    group.throughput(Throughput::Bytes(op.payload()));
    if matches!(op, Op::Stream | Op::RawStream | Op::ResultStream) {
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(6));
    } else {
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    }
    for harness in harnesses {
        group.bench_function(harness.name, |b| {
            b.iter_custom(|iters| harness.measure(op, iters).0)
        });
    }
    group.finish();
}

/// Rounds of the paired comparison.
const PAIRED_ROUNDS: usize = 11;

/// Calls per transport per round of the paired comparison.
fn paired_calls(op: Op) -> u64 {
    match op {
        Op::Raw | Op::String | Op::SpawnedString => 1000,
        Op::List => 200,
        // Eight 16 MiB calls, 7–20 ms on the ring and the in-process baselines. Rounds
        // of two (2–5 ms) spread by 2.6x on 2 workers, where criterion's long samples
        // of the same call agree within 10 %; rounds of eight spread by 1.5x
        // (docs/benchmarks.md, "Session 11").
        Op::Stream | Op::RawStream | Op::ResultStream => 8,
    }
}

/// Ratios measured in interleaved rounds: each round runs the same number of calls on
/// every transport back to back (rotating who goes first), and the ring's time is
/// divided by each baseline's time of the same round. Load that comes and goes on a busy
/// machine then hits both sides of a ratio alike, which criterion's one-after-the-other
/// groups cannot promise. Prints the median ratio and the range over the rounds.
///
/// A round in which a transport lost a call (NATS only, see [`NATS_CALL_LIMIT`]) is left
/// out of that transport's ratio and per-call time, and the line says how many were.
fn print_paired_ratios(flavor: &str, harnesses: &[Harness]) {
    println!(
        "\npaired ratios, {flavor}: ring time ÷ baseline time, median (min–max) of {PAIRED_ROUNDS} interleaved rounds"
    );
    for op in OPS {
        let calls = paired_calls(op);
        for harness in harnesses {
            harness.measure(op, calls.div_ceil(4)); // warm-up
        }
        // Per harness and round: the round's time, or `None` if it lost a call.
        let mut times: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(PAIRED_ROUNDS); harnesses.len()];
        for round in 0..PAIRED_ROUNDS {
            for i in (0..harnesses.len()).map(|i| (i + round) % harnesses.len()) {
                let (elapsed, lost) = harnesses[i].measure(op, calls);
                times[i].push((lost == 0).then_some(elapsed.as_secs_f64()));
            }
        }
        let ring = &times[0];
        let mut cells = Vec::new();
        for (harness, baseline) in harnesses.iter().zip(&times).skip(1) {
            let mut ratios: Vec<f64> = ring
                .iter()
                .zip(baseline)
                .filter_map(|(r, b)| Some(r.as_ref()? / b.as_ref()?))
                .collect();
            let left_out = match PAIRED_ROUNDS - ratios.len() {
                0 => String::new(),
                n => format!(", {n} rounds with lost calls left out"),
            };
            if ratios.is_empty() {
                cells.push(format!("÷ {} – (every round lost calls)", harness.name));
                continue;
            }
            let med = median(&mut ratios);
            cells.push(format!(
                "÷ {} {med:.3} ({:.3}–{:.3}{left_out})",
                harness.name,
                ratios[0],
                ratios[ratios.len() - 1]
            ));
        }
        let mut times: Vec<Vec<f64>> = times
            .into_iter()
            .map(|rounds| rounds.into_iter().flatten().collect())
            .collect();
        let per_call: Vec<String> = harnesses
            .iter()
            .zip(&mut times)
            .map(|(harness, times)| match times.is_empty() {
                true => format!("{} –", harness.name),
                false => format!("{} {:.2} µs", harness.name, median(times) / calls as f64 * 1e6),
            })
            .collect();
        println!("  {:<24} {}", op.group(), cells.join(" | "));
        println!("  {:<24} median per call: {}", "", per_call.join(", "));
        let ring = &mut times[0];
        let best = ring.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "  {:<24} ring: best round {:.2} µs per call, median ÷ best {:.3}",
            "",
            best / calls as f64 * 1e6,
            median(ring) / best
        );
    }
}

fn print_allocations(flavor: &str, harnesses: &[Harness]) {
    println!("\nallocations per invocation, {flavor}: count (bytes), all threads, caller and callee");
    let header: Vec<String> = ALLOC_CALLS
        .iter()
        .map(|&(op, calls)| format!("{:>24}", format!("{} ×{calls}", op.group())))
        .collect();
    println!("  {:<6} {}", "", header.join(" "));
    for harness in harnesses {
        let cells: Vec<String> = ALLOC_CALLS
            .iter()
            .map(|&(op, calls)| {
                let (count, bytes) = harness.allocations(op, calls);
                format!("{:>24}", format!("{count:.3} ({bytes:.0} B)"))
            })
            .collect();
        println!("  {:<6} {}", harness.name, cells.join(" "));
    }
}

/// The transports' buffer size: [`BUFFER_VAR`] if set, else [`DEFAULT_BUFFER`].
fn buffer() -> usize {
    let Ok(value) = std::env::var(BUFFER_VAR) else {
        return DEFAULT_BUFFER;
    };
    let value = value.trim();
    let (digits, shift) = match value.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&value[..value.len() - 1], 10),
        Some(b'M') => (&value[..value.len() - 1], 20),
        _ => (value, 0),
    };
    let buffer = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .unwrap_or_else(|| panic!("{BUFFER_VAR}={value:?} is not a size like 65536, 64K or 1M"));
    if buffer != DEFAULT_BUFFER {
        println!("transport buffers: {buffer} bytes ({BUFFER_VAR})");
    }
    buffer
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    // Allocation counts and paired ratios only when benchmarking (`cargo bench` passes
    // `--bench`), not when testing, listing or profiling (`--profile-time`).
    let args: Vec<String> = std::env::args().collect();
    let extras = args.iter().any(|arg| arg == "--bench")
        && !args.iter().any(|arg| arg == "--list" || arg == "--profile-time");
    let buffer = buffer();
    let server = nats::NatsServer::start();
    let flavors: [(&str, MakeRuntime); 2] = [
        ("current_thread", current_thread),
        ("multi_thread_2w", multi_thread_2w),
    ];
    let all: Vec<(&str, Vec<Harness>)> = flavors
        .iter()
        .map(|&(flavor, runtime)| (flavor, harnesses(flavor, runtime, &server.url(), buffer)))
        .collect();
    if extras {
        for (flavor, harnesses) in &all {
            print_allocations(flavor, harnesses);
        }
        println!();
    }
    for op in OPS {
        for (flavor, harnesses) in &all {
            bench_op(&mut criterion, op, flavor, harnesses);
        }
    }
    if extras {
        for (flavor, harnesses) in &all {
            print_paired_ratios(flavor, harnesses);
        }
        println!();
    }
    let lost: Vec<String> = all
        .iter()
        .flat_map(|(flavor, harnesses)| {
            harnesses
                .iter()
                .filter(|harness| harness.lost.get() > 0)
                .map(move |harness| format!("{} {flavor}: {}", harness.name, harness.lost.get()))
        })
        .collect();
    if !lost.is_empty() {
        println!(
            "calls lost (no answer within {NATS_CALL_LIMIT:?}, left out of the paired ratios): {}",
            lost.join(", ")
        );
    }
    drop(all);
    drop(server);
    criterion.final_summary();
}
