//! Large values through the `Ring` transport with bounded memory: a 64 MiB `list<u8>`
//! each way, and a 1 GiB `stream<u8>` result (256 MiB in debug builds unless
//! `WRPC_RING_FULL_SIZE=1`), with the peak of live heap bytes measured by a global
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::pin::{Pin, pin};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{Stream, StreamExt as _, stream};
use tokio::io::AsyncWriteExt as _;
use wrpc_ring::{Ring, RingPool};
use wrpc_transport::{Index as _, InvokeExt as _, Serve as _, ServeExt as _};

/// Tracks live heap bytes and their peak.
struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: defers every operation to the system allocator unchanged.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// One measurement at a time: the counters are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `body` and returns its result and the peak of live heap bytes above what was
/// live when it started.
fn with_peak<T>(body: impl FnOnce() -> T) -> (T, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = body();
    (result, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

const MIB: usize = 1 << 20;
const RING_CAPACITY: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;
static PATTERN: [u8; CHUNK] = [0x5A; CHUNK];
const NO_SERVE_PATHS: Vec<Box<[Option<usize>]>> = Vec::new();

type ByteStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn stream_size() -> usize {
    let full = std::env::var_os("WRPC_RING_FULL_SIZE").is_some_and(|v| v == "1");
    if full || !cfg!(debug_assertions) {
        1024 * MIB
    } else {
        256 * MIB
    }
}

/// A 64 MiB `list<u8>` parameter echoed back as the result, through the typed helpers.
#[test]
fn a_64_mib_list_each_way() {
    const SIZE: usize = 64 * MIB;
    let rt = runtime();
    let ((), peak) = with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(RING_CAPACITY, 16));
            let invocations = ring
                .serve_values::<(Bytes,), (Bytes,)>("test:big/big", "echo", NO_SERVE_PATHS)
                .await?;
            let server = tokio::spawn(async move {
                let mut invocations = pin!(invocations);
                let (_, (list,), _, respond) = invocations.next().await.context("no invocation")??;
                respond((list,)).await
            });
            let list = Bytes::from((0..SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
            let started = Instant::now();
            let ((echo,), _) = ring
                .invoke_values::<_, _, (Bytes,)>(
                    None,
                    "test:big/big",
                    "echo",
                    (list.clone(),),
                    &[] as &[&[Option<usize>]],
                )
                .await?;
            let took = started.elapsed();
            server.await??;
            assert_eq!(echo.len(), SIZE);
            assert!(echo == list, "the echo differs");
            eprintln!("64 MiB list<u8> each way: {took:?}");
            assert_eq!(ring.pool().stats().in_use, 0);
            anyhow::Ok(())
        })
        .unwrap();
    });
    eprintln!(
        "64 MiB list<u8> each way: peak heap {} MiB above the start",
        peak / MIB
    );
    // The test's own value and its echo (2×), the encoded parameters (1×), the callee's
    // read buffer (1×) and encoded results (1×), the caller's read buffer (1×): wRPC's
    // codec holds whole lists; the transport adds only its rings.
    assert!(peak < 7 * SIZE, "peak {peak} bytes for a {SIZE}-byte list");
}

/// A large `stream<u8>` result: the callee writes length-prefixed chunks straight into
/// the sub-stream's ring (as a runtime streaming from a component would), the caller
/// decodes it with wRPC's typed `stream<u8>` decoder. Memory stays bounded by the rings
/// and the decoder's channel, whatever the size.
#[test]
fn a_1_gib_stream_with_bounded_memory() {
    let size = stream_size();
    let rt = runtime();
    let ((), peak) = with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(RING_CAPACITY, 16));
            let invocations = ring.serve("test:big/big", "stream", NO_SERVE_PATHS).await?;
            let server = tokio::spawn(async move {
                let mut invocations = pin!(invocations);
                let (_, mut results, _params) = invocations.next().await.context("no invocation")??;
                results.write_all(&[0x00]).await?; // `(stream<u8>,)`: the stream is pending
                results.shutdown().await?;
                let mut data = results.index(&[0])?;
                let mut chunk = PATTERN.to_vec();
                for i in 0..size / CHUNK {
                    chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    data.write_all(&[0x80, 0x80, 0x04]).await?; // LEB128 of 65536
                    data.write_all(&chunk).await?;
                }
                data.write_all(&[0x00]).await?; // end of stream
                anyhow::Ok(())
            });
            let started = Instant::now();
            let ((mut chunks,), io) = ring
                .invoke_values::<_, _, (ByteStream,)>(
                    None,
                    "test:big/big",
                    "stream",
                    (),
                    [[Some(0)].as_slice()],
                )
                .await?;
            let io = tokio::spawn(io.context("a stream result needs I/O")?);
            let (mut received, mut index) = (0, 0_u64);
            while let Some(chunk) = chunks.next().await {
                assert_eq!(chunk.len(), CHUNK);
                assert_eq!(chunk[..8], index.to_le_bytes(), "chunks out of order");
                assert!(chunk[8..] == PATTERN[8..], "chunk {index} corrupted");
                received += chunk.len();
                index += 1;
            }
            let took = started.elapsed();
            io.await??;
            server.await??;
            assert_eq!(received, size);
            eprintln!(
                "{} MiB stream<u8>: {took:?} ({:.2} GiB/s)",
                size / MIB,
                size as f64 / took.as_secs_f64() / (1u64 << 30) as f64
            );
            assert_eq!(ring.pool().stats().in_use, 0);
            anyhow::Ok(())
        })
        .unwrap();
    });
    eprintln!(
        "{} MiB stream<u8>: peak heap {} MiB above the start",
        size / MIB,
        peak / MIB
    );
    // Rings (256 KiB each) plus the typed decoder's channel of up to 128 chunks.
    assert!(peak < 32 * MIB, "peak {peak} bytes for a {size}-byte stream");
}

/// The same kind of `stream<u8>` result produced by wRPC's typed encoder. Correctness
/// only: that encoder keeps reading its source while the sink is full, so its memory
/// follows the source, not the transport (the peak is printed for the record).
#[test]
fn a_typed_stream_result() {
    const SIZE: usize = 64 * MIB;
    let rt = runtime();
    let ((), peak) = with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(RING_CAPACITY, 16));
            let invocations = ring
                .serve_values::<(), (ByteStream,)>("test:big/big", "typed", NO_SERVE_PATHS)
                .await?;
            let server = tokio::spawn(async move {
                let mut invocations = pin!(invocations);
                let (_, (), _, respond) = invocations.next().await.context("no invocation")??;
                let chunk = Bytes::from(vec![0xA5; CHUNK]);
                let source: ByteStream =
                    Box::pin(stream::iter((0..SIZE / CHUNK).map(move |_| chunk.clone())));
                respond((source,)).await
            });
            let ((mut chunks,), io) = ring
                .invoke_values::<_, _, (ByteStream,)>(
                    None,
                    "test:big/big",
                    "typed",
                    (),
                    [[Some(0)].as_slice()],
                )
                .await?;
            let io = tokio::spawn(io.context("a stream result needs I/O")?);
            let mut received = 0;
            while let Some(chunk) = chunks.next().await {
                assert!(chunk.iter().all(|&b| b == 0xA5));
                received += chunk.len();
            }
            io.await??;
            server.await??;
            assert_eq!(received, SIZE);
            anyhow::Ok(())
        })
        .unwrap();
    });
    eprintln!(
        "64 MiB typed stream<u8>: peak heap {} MiB above the start",
        peak / MIB
    );
}
