//! Invocation soak: many invocations through `Ring`'s public wRPC traits
//! (`Invoke`, `Serve`, `Index`) on a two-worker runtime, with every byte checked.
//!
//! Each invocation carries a root parameter stream, a parameter sub-stream `[0]`, a root
//! result stream and a result sub-stream `[0]`, of mixed sizes (most tiny, some up to
//! 4 MiB; 1 MiB in debug builds), every byte drawn from a pattern seeded by the
//! invocation's number. A seeded RNG picks what happens to each:
//!
//! - completes normally (both sides check every byte and every length);
//! - the caller cancels at a random point (its future dropped after a random delay);
//! - the callee's task is cancelled at a random point;
//! - the handler panics at a random stage (the caller must see an error, never a clean
//!   but short stream);
//! - the handler never answers (the transport has no timeout: the caller gives up after
//!   a while, and the handler then learns it from a failed read).
//!
//! At the end no ring is in use and the peak heap stayed bounded. A watchdog thread
//! fails the run with a message naming the progress if it stalls.
//!
//! `SOAK_INVOCATIONS` sets the number of invocations (default 2,000, a few seconds);
//! `SOAK_SEED` the seed. The full-scale run is in `docs/soak.md`.

mod common;

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wrpc_ring::transport::{Incoming, Outgoing};
use wrpc_ring::{Ring, RingPool};
use wrpc_transport::{Index as _, Invoke as _, Serve as _};

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

const INSTANCE: &str = "soak:test/soak";
const FUNC: &str = "f";
const MIB: usize = 1 << 20;
/// Invocations in flight at once.
const IN_FLIGHT: usize = 48;
/// How long a caller waits for a handler that never answers.
const GIVE_UP: Duration = Duration::from_millis(20);
/// Longest a single invocation may take before the run fails as a hang.
const INVOCATION_LIMIT: Duration = Duration::from_secs(60);
/// Peak heap bound: in-flight invocations × their largest streams, with room for the
/// rings and the checking buffers.
const PEAK_LIMIT: usize = 768 * MIB;
/// `i`, mode, stage, parameter sub-stream, result root and result sub-stream lengths.
const HEADER: usize = 8 + 1 + 1 + 4 * 3;

/// What happens to one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal = 0,
    CallerCancels = 1,
    CalleeCancelled = 2,
    HandlerPanics = 3,
    NeverAnswers = 4,
}

impl Mode {
    fn from_byte(byte: u8) -> Self {
        match byte {
            1 => Self::CallerCancels,
            2 => Self::CalleeCancelled,
            3 => Self::HandlerPanics,
            4 => Self::NeverAnswers,
            _ => Self::Normal,
        }
    }
}

/// One invocation's plan, drawn from the seeded RNG.
#[derive(Debug, Clone, Copy)]
struct Plan {
    i: u64,
    mode: Mode,
    /// Where a panic or cancellation happens (mode dependent).
    stage: u8,
    params_root: usize,
    params_sub: usize,
    results_root: usize,
    results_sub: usize,
    /// Delay before a cancellation, in microseconds.
    cancel_after: u64,
}

fn size(rng: &mut StdRng) -> usize {
    let max = if cfg!(debug_assertions) { MIB } else { 4 * MIB };
    match rng.random_range(0..100) {
        0 => rng.random_range(0..=max),
        1..=6 => rng.random_range(0..=64 * 1024),
        _ => rng.random_range(0..=64),
    }
}

fn plan(rng: &mut StdRng, i: u64) -> Plan {
    let mode = match rng.random_range(0..100) {
        0..=69 => Mode::Normal,
        70..=79 => Mode::CallerCancels,
        80..=87 => Mode::CalleeCancelled,
        88..=95 => Mode::HandlerPanics,
        _ => Mode::NeverAnswers,
    };
    Plan {
        i,
        mode,
        stage: rng.random_range(0..4),
        params_root: size(rng),
        params_sub: size(rng),
        results_root: size(rng),
        results_sub: size(rng),
        cancel_after: rng.random_range(0..2000),
    }
}

/// Byte `at` of stream `stream` of invocation `i`.
fn pattern(i: u64, stream: u8, at: usize) -> u8 {
    let x = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(stream) << 56).wrapping_add(at as u64);
    (x ^ (x >> 13) ^ (x >> 29)) as u8
}

fn fill(i: u64, stream: u8, from: usize, buf: &mut [u8]) {
    for (n, byte) in buf.iter_mut().enumerate() {
        *byte = pattern(i, stream, from + n);
    }
}

fn check(i: u64, stream: u8, from: usize, got: &[u8]) -> io::Result<()> {
    for (n, &byte) in got.iter().enumerate() {
        if byte != pattern(i, stream, from + n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("invocation {i}, stream {stream}: byte {} differs", from + n),
            ));
        }
    }
    Ok(())
}

/// Writes `len` pattern bytes of `stream` in chunks of varying size.
async fn write_pattern(out: &mut Outgoing, i: u64, stream: u8, len: usize) -> io::Result<()> {
    let mut buf = vec![0; len.min(256 * 1024)];
    let mut at = 0;
    while at < len {
        let chunk = (len - at).min(buf.len()).min(1 + (at * 7919 + 13) % (64 * 1024));
        fill(i, stream, at, &mut buf[..chunk]);
        out.write_all(&buf[..chunk]).await?;
        at += chunk;
    }
    out.shutdown().await
}

/// Reads `stream` to its end, checking every byte; returns how many there were.
async fn read_pattern(inc: &mut Incoming, i: u64, stream: u8, skip: usize) -> io::Result<usize> {
    let mut buf = vec![0; 64 * 1024];
    let mut at = 0;
    loop {
        let n = inc.read(&mut buf).await?;
        if n == 0 {
            return Ok(at);
        }
        check(i, stream, at + skip, &buf[..n])?;
        at += n;
    }
}

fn header(plan: &Plan) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&plan.i.to_le_bytes());
    header.push(plan.mode as u8);
    header.push(plan.stage);
    for len in [plan.params_sub, plan.results_root, plan.results_sub] {
        header.extend_from_slice(&(len as u32).to_le_bytes());
    }
    header
}

fn parse(header: &[u8]) -> (u64, Mode, u8, [usize; 3]) {
    let i = u64::from_le_bytes(header[..8].try_into().unwrap());
    let mode = Mode::from_byte(header[8]);
    let stage = header[9];
    let len = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap()) as usize;
    (i, mode, stage, [len(10), len(14), len(18)])
}

/// The callee of one invocation.
async fn handle(mut out: Outgoing, mut inc: Incoming) -> io::Result<()> {
    let mut head = [0; HEADER];
    inc.read_exact(&mut head).await?;
    let (i, mode, stage, [params_sub, results_root, results_sub]) = parse(&head);
    let panics = |at: u8| mode == Mode::HandlerPanics && stage == at;
    if panics(0) {
        panic!("soak: handler {i} panics before reading");
    }
    let params_root = read_pattern(&mut inc, i, 0, HEADER).await?;
    let mut sub = inc.index(&[0]).map_err(io::Error::other)?;
    if mode == Mode::NeverAnswers {
        // Never answers: waits until the caller gives up (which ends this stream), then
        // notices the caller is gone by a write failing.
        let _ = read_pattern(&mut sub, i, 1, 0).await;
        let mut probe = out.index(&[0]).map_err(io::Error::other)?;
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if probe.write(&[0]).await.is_err() {
                return Ok(());
            }
        }
    }
    let got = read_pattern(&mut sub, i, 1, 0).await?;
    if mode == Mode::Normal && got != params_sub {
        return Err(io::Error::other(format!(
            "invocation {i}: parameter sub-stream of {got} bytes, expected {params_sub}"
        )));
    }
    let _ = params_root;
    if panics(1) {
        panic!("soak: handler {i} panics after reading");
    }
    let mut data = out.index(&[0]).map_err(io::Error::other)?;
    write_pattern(&mut out, i, 2, results_root).await?;
    drop(out);
    if panics(2) {
        panic!("soak: handler {i} panics before writing its result stream");
    }
    if panics(3) {
        let mut buf = vec![0; results_sub / 2];
        fill(i, 3, 0, &mut buf);
        data.write_all(&buf).await?;
        panic!("soak: handler {i} panics in the middle of its result stream");
    }
    write_pattern(&mut data, i, 3, results_sub).await
}

/// The caller of one invocation: fails on any wrong byte or length, and on a clean end
/// of results from a handler that panicked.
async fn call(ring: &Ring, plan: Plan) -> anyhow::Result<()> {
    let i = plan.i;
    let mut params = header(&plan);
    let mut rest = vec![0; plan.params_root];
    fill(i, 0, HEADER, &mut rest);
    params.extend_from_slice(&rest);
    drop(rest);
    let (mut out, mut inc) = ring
        .invoke(None, INSTANCE, FUNC, Bytes::from(params), [[Some(0)].as_slice()])
        .await?;
    let mut sub = out.index(&[0])?;
    let mut results = inc.index(&[0])?;
    out.shutdown().await?;
    drop(out);
    if plan.mode == Mode::NeverAnswers {
        // Holds the parameter sub-stream unwritten and gives up after a while.
        let read = tokio::time::timeout(GIVE_UP, read_pattern(&mut inc, i, 2, 0)).await;
        anyhow::ensure!(
            read.is_err(),
            "invocation {i}: a handler that never answers answered"
        );
        drop(sub);
        return Ok(());
    }
    let send = write_pattern(&mut sub, i, 1, plan.params_sub);
    let receive = async {
        let root = read_pattern(&mut inc, i, 2, 0).await?;
        let data = read_pattern(&mut results, i, 3, 0).await?;
        io::Result::Ok((root, data))
    };
    let (sent, received) = tokio::join!(send, receive);
    match plan.mode {
        Mode::Normal => {
            sent?;
            let (root, data) = received?;
            anyhow::ensure!(
                (root, data) == (plan.results_root, plan.results_sub),
                "invocation {i}: results of {root} + {data} bytes, expected {} + {}",
                plan.results_root,
                plan.results_sub
            );
        }
        Mode::HandlerPanics => {
            if let Ok((root, data)) = received {
                anyhow::bail!(
                    "invocation {i}: a panicking handler (stage {}) ended its results cleanly \
                     ({root} + {data} bytes)",
                    plan.stage
                );
            }
        }
        // A cancelled callee may end its streams short: what arrived was checked.
        Mode::CalleeCancelled | Mode::CallerCancels | Mode::NeverAnswers => {}
    }
    Ok(())
}

fn invocations() -> u64 {
    std::env::var("SOAK_INVOCATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

/// Fails the process with `what` if `done` is not signalled within `limit`.
fn watchdog(limit: Duration, progress: Arc<AtomicU64>, total: u64) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut last = 0;
        loop {
            match wait.recv_timeout(limit) {
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let now = progress.load(Ordering::Relaxed);
                    if now == last {
                        eprintln!(
                            "soak watchdog: no invocation finished for {limit:?}; stuck at \
                             {now} of {total} finished"
                        );
                        std::process::exit(101);
                    }
                    last = now;
                }
            }
        }
    });
    done
}

#[test]
fn soak_invocations_through_the_public_traits() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|msg| msg.starts_with("soak: handler"));
        if !planned {
            default_hook(info);
        }
    }));
    let total = invocations();
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5EED);
    let progress = Arc::new(AtomicU64::new(0));
    let done = watchdog(INVOCATION_LIMIT, progress.clone(), total);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (counts, peak) = common::alloc::with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(64 * 1024, 256));
            let invocations = ring
                .serve(INSTANCE, FUNC, vec![Box::<[Option<usize>]>::from([Some(0)])])
                .await
                .unwrap();
            let server = tokio::spawn(async move {
                let mut invocations = pin!(invocations);
                while let Some(invocation) = invocations.next().await {
                    let (_, out, inc) = invocation.unwrap();
                    tokio::spawn(async move {
                        let _ = handle_maybe_cancelled(out, inc).await;
                    });
                }
            });
            let mut rng = StdRng::seed_from_u64(seed);
            let mut running = tokio::task::JoinSet::new();
            let mut counts = [0_u64; 5];
            for i in 0..total {
                if running.len() >= IN_FLIGHT {
                    running.join_next().await.unwrap().unwrap();
                }
                let plan = plan(&mut rng, i);
                counts[plan.mode as usize] += 1;
                let ring = ring.clone();
                let progress = progress.clone();
                running.spawn(async move {
                    let call = call(&ring, plan);
                    let result = if plan.mode == Mode::CallerCancels {
                        let after = Duration::from_micros(plan.cancel_after);
                        match tokio::time::timeout(after, call).await {
                            Ok(result) => result,
                            Err(_) => Ok(()), // cancelled
                        }
                    } else {
                        call.await
                    };
                    if let Err(err) = result {
                        panic!("{err:#}");
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                });
            }
            while let Some(joined) = running.join_next().await {
                joined.unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while ring.rings_in_use() != 0 {
                assert!(
                    Instant::now() < deadline,
                    "{} rings still in use after every invocation ended",
                    ring.rings_in_use()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            server.abort();
            counts
        })
    });
    let _ = done.send(());
    let took = started.elapsed();
    eprintln!(
        "soak: {total} invocations in {took:.2?} ({:.0}/s), seed {seed}: {} normal, {} caller \
         cancelled, {} callee cancelled, {} handler panics, {} never answered; peak heap {} MiB",
        total as f64 / took.as_secs_f64(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        peak / MIB
    );
    assert!(peak < PEAK_LIMIT, "peak heap {peak} bytes");
}

/// Runs [`handle`], dropping it at a random point when the caller's header asks for a
/// cancelled callee: the handler reads the header through `fill_buf` (without
/// consuming it) to learn its fate.
async fn handle_maybe_cancelled(out: Outgoing, mut inc: Incoming) -> io::Result<()> {
    use tokio::io::AsyncBufReadExt as _;
    let head = inc.fill_buf().await?;
    if head.len() < HEADER {
        return handle(out, inc).await;
    }
    let (i, mode, stage, _) = parse(head);
    if mode != Mode::CalleeCancelled {
        return handle(out, inc).await;
    }
    let after = Duration::from_micros(u64::from(stage) * 300 + (i % 7) * 50);
    match tokio::time::timeout(after, handle(out, inc)).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
