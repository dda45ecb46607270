//! The ring core against its baselines, side by side (issue: ring core).
//!
//! Run with `cargo bench --bench pipe`; the results and their ratios are recorded in
//! `docs/benchmarks.md`. Every group holds the ring *and* its baselines, so criterion's
//! report shows them next to each other.
//!
//! # `rtt_64B_current_thread`, `rtt_64B_multi_thread_2w`: 64-byte ping-pong
//!
//! Two long-lived tasks: the client writes 64 bytes, the echo task reads them and writes
//! them back, the client reads them. One criterion iteration is one round trip; the
//! client times a loop of `iters` round trips itself (`iter_custom`), so neither task
//! spawning nor the hand-over of the request to the client is measured. The same code
//! runs on a `current_thread` runtime and on a `multi_thread` runtime with 2 workers
//! (both built without the I/O and time drivers, which nothing here uses).
//!
//! - `waker_floor`: no data at all, only the wake-ups — one flag and one `AtomicWaker`
//!   per direction (the waker cell the ring itself uses). A round trip is exactly two
//!   wake + poll cycles; no pipe can do less.
//! - `ring_duplex`: [`wrpc_ring::duplex`], `write_all` / `read_exact`.
//! - `ring_duplex_bufread`: the same, but reading through `AsyncBufRead` (`fill_buf`, copy
//!   the 64 bytes out of ring memory, `consume`), the ring's in-place read path.
//! - `ring_write_with`: the same rings, but writing through
//!   [`RingWriter::poll_write_with`](wrpc_ring::RingWriter::poll_write_with), the path an
//!   encoder takes to write straight into ring memory (the message is copied in through
//!   the `fill` closure's cursor); reading as `ring_duplex`. Against `ring_duplex` it
//!   shows the cost of the cursor that keeps stale ring bytes from being published.
//! - `tokio_duplex`: `tokio::io::duplex`, the same capacity and the same calls.
//! - `mpsc_bytes`: one `tokio::sync::mpsc::channel::<Bytes>` per direction, used as a
//!   byte pipe: each send copies the 64 bytes into a fresh `Bytes`, each receive copies
//!   them out, just as the pipes copy them in and out. Its capacity holds as many bytes
//!   as a ring (`RTT_CAPACITY / 64` messages); with one message in flight it never fills.
//!
//! After each round-trip group, `ring_duplex` and `ring_duplex_bufread` are measured
//! again against `tokio_duplex`, paired: `PAIRED_ROUNDS` rounds (or
//! `PIPE_PAIRED_ROUNDS`), each a batch of about 5 ms on one connection then on the other
//! (the order alternating), printed as the medians of the per-round-trip times and of the
//! per-round ratios, and as the ratio of each side's fastest round (`paired ...` lines).
//! Criterion measures one entry after the other, seconds apart, on cores other engineers
//! share; the paired ratios are the steadier ones, and with many rounds the best-of one
//! is the steadiest (interference only adds time). Skipped in test mode and with
//! `--list`.
//!
//! # `stream_1GiB`: bulk throughput
//!
//! A writer task streams `WRPC_BENCH_STREAM_BYTES` (default 1 GiB, the size; a
//! `K`/`M`/`G` suffix is accepted, the value is rounded up to whole chunks) as 64 KiB
//! writes from one 64 KiB source buffer, then closes; a reader task reads to the end.
//! Both run on one `current_thread` runtime (the deployment the design aims for: caller
//! and callee on one worker). The parameter is the ring size, 64 KiB or 1 MiB.
//!
//! - `memcpy`: one 64 KiB `copy_from_slice`, the physical limit (its throughput is per
//!   64 KiB copied; every other entry copies each byte at least once).
//! - `ring_read`: [`wrpc_ring::pipe`], reader `AsyncRead` into a 64 KiB buffer (two copies
//!   per byte: into the ring, out of it).
//! - `ring_bufread`: the same ring, reader `fill_buf` / `consume` on ring memory in place
//!   (one copy per byte).
//! - `tokio_duplex_read`: `tokio::io::duplex` with the same `max_buf_size`, reader
//!   `AsyncRead` into a 64 KiB buffer (tokio's duplex has no `AsyncBufRead`; two copies).
//! - `mpsc_bytes`: `mpsc::channel::<Bytes>` whose capacity holds the same number of bytes
//!   as the ring (1 or 16 chunks). The writer produces each chunk the way the ring gets
//!   it, from the source buffer: `Bytes::copy_from_slice` (an allocation and one copy).
//!   It never sends clones of one pre-built `Bytes`, which would move no bytes at all.
//!   The reader takes each `Bytes` and drops it (one copy per byte, like `ring_bufread`).
//!
//! No reader inspects the bytes (each hands them to `black_box`), so the numbers are the
//! pipe's cost alone; every reader counts them and the total is checked.

use std::future::{Future, poll_fn};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

#[path = "common/paired.rs"]
mod paired;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use paired::Paired;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, oneshot};

/// The ping-pong message size.
const MESSAGE: usize = 64;
/// Capacity of each direction of the ping-pong pipes (ring and `tokio::io::duplex`).
const RTT_CAPACITY: usize = 64 * 1024;
/// The size of every streaming write, and of the `AsyncRead` readers' buffer.
const CHUNK: usize = 64 * 1024;
/// The bytes every streaming writer copies from.
static SOURCE: [u8; CHUNK] = [0xA5; CHUNK];
/// The ring sizes the streaming group compares.
const STREAM_RINGS: [usize; 2] = [64 * 1024, 1024 * 1024];
/// The environment variable that overrides the streamed size.
const STREAM_BYTES_VAR: &str = "WRPC_BENCH_STREAM_BYTES";
/// The streamed size.
const DEFAULT_STREAM_BYTES: u64 = 1 << 30;

// ----- ping-pong -----

/// One end of a ping-pong connection. Both calls return `false` once the peer is gone.
trait Endpoint: Send + 'static {
    /// Sends the message in `message`.
    fn send(&mut self, message: &[u8]) -> impl Future<Output = bool> + Send;
    /// Receives one message into `message`.
    fn recv(&mut self, message: &mut [u8]) -> impl Future<Output = bool> + Send;
}

/// A byte stream (the ring's `RingStream`, tokio's `DuplexStream`) as an endpoint.
struct ByteStream<S>(S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Endpoint for ByteStream<S> {
    async fn send(&mut self, message: &[u8]) -> bool {
        self.0.write_all(message).await.is_ok()
    }

    async fn recv(&mut self, message: &mut [u8]) -> bool {
        self.0.read_exact(message).await.is_ok()
    }
}

/// A ring stream read in place: `fill_buf` / `consume` instead of `read_exact`.
struct InPlace(wrpc_ring::RingStream);

impl Endpoint for InPlace {
    async fn send(&mut self, message: &[u8]) -> bool {
        self.0.write_all(message).await.is_ok()
    }

    async fn recv(&mut self, message: &mut [u8]) -> bool {
        let mut filled = 0;
        while filled < message.len() {
            let Ok(chunk) = self.0.fill_buf().await else {
                return false;
            };
            if chunk.is_empty() {
                return false;
            }
            let n = chunk.len().min(message.len() - filled);
            message[filled..filled + n].copy_from_slice(&chunk[..n]);
            self.0.consume(n);
            filled += n;
        }
        true
    }
}

/// A ring stream written through `poll_write_with`, read with `read_exact`.
struct WriteWith {
    reader: wrpc_ring::RingReader,
    writer: wrpc_ring::RingWriter,
}

impl WriteWith {
    fn pair(capacity: usize) -> (Self, Self) {
        let (a, b) = wrpc_ring::duplex(capacity);
        let ((a_reader, a_writer), (b_reader, b_writer)) = (a.into_split(), b.into_split());
        (
            Self {
                reader: a_reader,
                writer: a_writer,
            },
            Self {
                reader: b_reader,
                writer: b_writer,
            },
        )
    }
}

impl Endpoint for WriteWith {
    async fn send(&mut self, message: &[u8]) -> bool {
        let mut rest = message;
        while !rest.is_empty() {
            let written = poll_fn(|cx| {
                self.writer.poll_write_with(cx, |buf| {
                    let n = buf.remaining().min(rest.len());
                    buf.put_slice(&rest[..n]);
                })
            })
            .await;
            match written {
                Ok(n) => rest = &rest[n..],
                Err(_) => return false,
            }
        }
        true
    }

    async fn recv(&mut self, message: &mut [u8]) -> bool {
        self.reader.read_exact(message).await.is_ok()
    }
}

/// One direction of each of two `mpsc::channel::<Bytes>`s, used as a byte pipe.
struct Channel {
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
}

impl Channel {
    fn pair(capacity: usize) -> (Self, Self) {
        let (a_tx, b_rx) = mpsc::channel(capacity);
        let (b_tx, a_rx) = mpsc::channel(capacity);
        (Self { tx: a_tx, rx: a_rx }, Self { tx: b_tx, rx: b_rx })
    }
}

impl Endpoint for Channel {
    async fn send(&mut self, message: &[u8]) -> bool {
        self.tx.send(Bytes::copy_from_slice(message)).await.is_ok()
    }

    async fn recv(&mut self, message: &mut [u8]) -> bool {
        match self.rx.recv().await {
            Some(bytes) => {
                message.copy_from_slice(&bytes);
                true
            }
            None => false,
        }
    }
}

/// "You have a message": a flag and the waker of the task that waits for it.
#[derive(Default)]
struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

/// The waker-only floor: one [`Signal`] per direction, no data.
struct Floor {
    outgoing: Arc<Signal>,
    incoming: Arc<Signal>,
}

impl Floor {
    fn pair() -> (Self, Self) {
        let (a, b) = (Arc::new(Signal::default()), Arc::new(Signal::default()));
        (
            Self {
                outgoing: a.clone(),
                incoming: b.clone(),
            },
            Self {
                outgoing: b,
                incoming: a,
            },
        )
    }
}

impl Endpoint for Floor {
    async fn send(&mut self, _message: &[u8]) -> bool {
        // `Release` pairs with the receiver's `Acquire` swap; `AtomicWaker::wake` orders
        // itself after the store and against the receiver's `register`.
        self.outgoing.raised.store(true, Ordering::Release);
        self.outgoing.waker.wake();
        true
    }

    async fn recv(&mut self, _message: &mut [u8]) -> bool {
        let signal = &*self.incoming;
        poll_fn(|cx| {
            if signal.raised.swap(false, Ordering::Acquire) {
                return Poll::Ready(true);
            }
            // Register, then re-check: the documented `AtomicWaker` protocol.
            signal.waker.register(cx.waker());
            if signal.raised.swap(false, Ordering::Acquire) {
                Poll::Ready(true)
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// A request to the client task: run this many round trips, reply with their duration.
type Request = (u64, oneshot::Sender<Duration>);

/// A ping-pong connection whose two ends live in long-lived tasks on `runtime`.
struct PingPong {
    requests: mpsc::UnboundedSender<Request>,
    // Declared last so that it is dropped last: dropping it cancels the tasks.
    runtime: Runtime,
}

impl PingPong {
    /// Spawns an echo task on `server` and a client task on `client`.
    fn start<E: Endpoint>(runtime: Runtime, (mut client, mut server): (E, E)) -> Self {
        runtime.spawn(async move {
            let mut message = [0; MESSAGE];
            while server.recv(&mut message).await && server.send(&message).await {}
        });
        let (requests, mut pending) = mpsc::unbounded_channel::<Request>();
        runtime.spawn(async move {
            let mut message = [0x5A; MESSAGE];
            while let Some((round_trips, reply)) = pending.recv().await {
                let start = Instant::now();
                for _ in 0..round_trips {
                    assert!(client.send(&message).await, "echo task gone");
                    assert!(client.recv(&mut message).await, "echo task gone");
                }
                let _ = reply.send(start.elapsed());
            }
        });
        Self { requests, runtime }
    }

    /// Runs `round_trips` round trips and returns the time the client took for them.
    fn measure(&self, round_trips: u64) -> Duration {
        let (reply, elapsed) = oneshot::channel();
        self.requests
            .send((round_trips, reply))
            .expect("client task alive");
        self.runtime
            .block_on(elapsed)
            .expect("client task finished its round trips")
    }
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .build()
        .expect("current_thread runtime")
}

fn multi_thread_2w() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("multi_thread runtime")
}

/// Starts a ping-pong connection on `runtime` and benchmarks one round trip as `name`.
fn bench_round_trip<E: Endpoint>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    runtime: Runtime,
    ends: (E, E),
) {
    let pair = PingPong::start(runtime, ends);
    group.bench_function(name, |b| b.iter_custom(|iters| pair.measure(iters)));
}

fn bench_ping_pong(c: &mut Criterion, group_name: &str, runtime: fn() -> Runtime) {
    let mut group = c.benchmark_group(group_name);
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));

    bench_round_trip(&mut group, "waker_floor", runtime(), Floor::pair());
    let (a, b) = wrpc_ring::duplex(RTT_CAPACITY);
    let ring = PingPong::start(runtime(), (ByteStream(a), ByteStream(b)));
    group.bench_function("ring_duplex", |b| b.iter_custom(|iters| ring.measure(iters)));
    let (a, b) = wrpc_ring::duplex(RTT_CAPACITY);
    let in_place = PingPong::start(runtime(), (InPlace(a), InPlace(b)));
    group.bench_function("ring_duplex_bufread", |b| {
        b.iter_custom(|iters| in_place.measure(iters))
    });
    bench_round_trip(
        &mut group,
        "ring_write_with",
        runtime(),
        WriteWith::pair(RTT_CAPACITY),
    );
    let (a, b) = tokio::io::duplex(RTT_CAPACITY);
    let tokio_duplex = PingPong::start(runtime(), (ByteStream(a), ByteStream(b)));
    group.bench_function("tokio_duplex", |b| {
        b.iter_custom(|iters| tokio_duplex.measure(iters))
    });
    bench_round_trip(
        &mut group,
        "mpsc_bytes",
        runtime(),
        Channel::pair(RTT_CAPACITY / MESSAGE),
    );
    group.finish();
    if measuring() {
        print_paired(
            group_name,
            "ring_duplex",
            "tokio_duplex",
            paired(&ring, &tokio_duplex),
        );
        print_paired(
            group_name,
            "ring_duplex_bufread",
            "tokio_duplex",
            paired(&in_place, &tokio_duplex),
        );
    }
}

/// Rounds of a paired measurement, unless `PIPE_PAIRED_ROUNDS` says otherwise (the
/// best-of ratio needs many: `docs/benchmarks.md` used 1001 for the 64 B round trip).
const PAIRED_ROUNDS: usize = 21;

fn paired_rounds() -> usize {
    std::env::var("PIPE_PAIRED_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(PAIRED_ROUNDS)
}

/// Whether this is a real measurement (`cargo bench`), not test mode or `--list`.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list" || a == "--test")
}

/// `PAIRED_ROUNDS` rounds of a batch of round trips on `a` and one on `b` (the order
/// alternating), batches of about 5 ms. Criterion measures one entry after the other,
/// seconds apart, on cores other engineers share; the per-round ratio is steadier.
fn paired(a: &PingPong, b: &PingPong) -> Paired {
    let per_trip = |pair: &PingPong| pair.measure(1000).as_secs_f64() / 1000.0;
    let batch = ((0.005 / per_trip(a).max(per_trip(b))) as u64).clamp(100, 1_000_000);
    let ns = |pair: &PingPong| pair.measure(batch).as_secs_f64() * 1e9 / batch as f64;
    paired::alternate(paired_rounds(), || ns(a), || ns(b))
}

fn print_paired(group: &str, a: &str, b: &str, p: Paired) {
    println!(
        "paired {group}: {a} / {b} = {:.3}  ({a} {:.1} ns, {b} {:.1} ns); best / best = {:.3}  ({:.1} ns, {:.1} ns)",
        p.ratio,
        p.a,
        p.b,
        p.a_best / p.b_best,
        p.a_best,
        p.b_best
    );
}

fn rtt_current_thread(c: &mut Criterion) {
    bench_ping_pong(c, "rtt_64B_current_thread", current_thread);
}

fn rtt_multi_thread(c: &mut Criterion) {
    bench_ping_pong(c, "rtt_64B_multi_thread_2w", multi_thread_2w);
}

// ----- streaming -----

/// The streamed size: `WRPC_BENCH_STREAM_BYTES` if set, rounded up to whole chunks.
fn stream_bytes() -> u64 {
    let bytes = match std::env::var(STREAM_BYTES_VAR) {
        Ok(value) => parse_size(&value).unwrap_or_else(|| {
            panic!("{STREAM_BYTES_VAR}={value:?} is not a size like 1073741824, 64M or 1G")
        }),
        Err(_) => DEFAULT_STREAM_BYTES,
    };
    bytes.max(1).div_ceil(CHUNK as u64) * CHUNK as u64
}

/// Parses `123`, `64K`, `256M`, `1G` (binary units).
fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, shift) = match value.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&value[..value.len() - 1], 10),
        b'M' => (&value[..value.len() - 1], 20),
        b'G' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A size in the units used in benchmark names: `64KiB`, `1MiB`, `1GiB`.
fn size_name(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

/// Writes `total` bytes as 64 KiB writes from [`SOURCE`], then shuts down.
async fn write_stream<W: AsyncWrite + Unpin>(mut writer: W, total: u64) {
    for _ in 0..total / CHUNK as u64 {
        writer.write_all(&SOURCE).await.expect("write");
    }
    writer.shutdown().await.expect("shutdown");
}

/// Reads to the end through `AsyncRead` into a 64 KiB buffer; returns the byte count.
async fn read_stream<R: AsyncRead + Unpin>(mut reader: R) -> u64 {
    let mut buf = vec![0; CHUNK];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf).await.expect("read");
        if n == 0 {
            return total;
        }
        black_box(&buf[..n]);
        total += n as u64;
    }
}

/// Reads to the end through `AsyncBufRead`, in place; returns the byte count.
async fn bufread_stream<R: AsyncBufRead + Unpin>(mut reader: R) -> u64 {
    let mut total = 0;
    loop {
        let chunk = reader.fill_buf().await.expect("fill_buf");
        if chunk.is_empty() {
            return total;
        }
        let n = chunk.len();
        black_box(chunk);
        reader.consume(n);
        total += n as u64;
    }
}

/// Sends `total` bytes as 64 KiB `Bytes`, each copied from [`SOURCE`] into a fresh buffer.
async fn send_stream(tx: mpsc::Sender<Bytes>, total: u64) {
    for _ in 0..total / CHUNK as u64 {
        tx.send(Bytes::copy_from_slice(&SOURCE)).await.expect("send");
    }
}

/// Receives to the end, dropping each `Bytes`; returns the byte count.
async fn recv_stream(mut rx: mpsc::Receiver<Bytes>) -> u64 {
    let mut total = 0;
    while let Some(bytes) = rx.recv().await {
        total += bytes.len() as u64;
        black_box(bytes);
    }
    total
}

/// Runs one writer and one reader task to completion on `runtime`; returns the time from
/// spawning them to the reader's end, after checking the reader got `total` bytes.
fn time_stream(
    runtime: &Runtime,
    total: u64,
    writer: impl Future<Output = ()> + Send + 'static,
    reader: impl Future<Output = u64> + Send + 'static,
) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        let writer = tokio::spawn(writer);
        let reader = tokio::spawn(reader);
        let received = reader.await.expect("reader task");
        let elapsed = start.elapsed();
        writer.await.expect("writer task");
        assert_eq!(received, total, "the reader got every byte");
        elapsed
    })
}

fn stream(c: &mut Criterion) {
    let total = stream_bytes();
    let mut group = c.benchmark_group(format!("stream_{}", size_name(total)));
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));

    group.throughput(Throughput::Bytes(CHUNK as u64));
    let mut dst = vec![0; CHUNK];
    group.bench_function(BenchmarkId::new("memcpy", size_name(CHUNK as u64)), |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&SOURCE));
            black_box(&mut dst);
        })
    });

    let runtime = current_thread();
    group.throughput(Throughput::Bytes(total));
    for ring in STREAM_RINGS {
        let ring_name = size_name(ring as u64);
        let mut bench = |name: &str, run: &dyn Fn() -> Duration| {
            group.bench_function(BenchmarkId::new(name, &ring_name), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run()).sum())
            });
        };
        bench("ring_read", &|| {
            let (writer, reader) = wrpc_ring::pipe(ring);
            time_stream(&runtime, total, write_stream(writer, total), read_stream(reader))
        });
        bench("ring_bufread", &|| {
            let (writer, reader) = wrpc_ring::pipe(ring);
            time_stream(
                &runtime,
                total,
                write_stream(writer, total),
                bufread_stream(reader),
            )
        });
        bench("tokio_duplex_read", &|| {
            let (writer, reader) = tokio::io::duplex(ring);
            time_stream(&runtime, total, write_stream(writer, total), read_stream(reader))
        });
        bench("mpsc_bytes", &|| {
            let (tx, rx) = mpsc::channel((ring / CHUNK).max(1));
            time_stream(&runtime, total, send_stream(tx, total), recv_stream(rx))
        });
    }
    group.finish();
}

criterion_group!(benches, rtt_current_thread, rtt_multi_thread, stream);
criterion_main!(benches);
