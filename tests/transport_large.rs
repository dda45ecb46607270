//! Large values through the `Ring` transport with bounded memory: a 64 MiB `list<u8>`
//! each way, a 1 GiB `stream<u8>` result (256 MiB in debug builds unless
//! `WRPC_RING_FULL_SIZE=1`), a flood of calls with 1 MiB parameters against a server
//! that does not take them, and 100,000 async values written ahead of their reader, with
//! the peak of live heap bytes measured by the counting allocator.

mod common;

use std::pin::{Pin, pin};
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{Stream, StreamExt as _, stream};
use tokio::io::AsyncWriteExt as _;
use wrpc_ring::{Ring, RingPool};
use wrpc_transport::{Index as _, Invoke as _, InvokeExt as _, Serve as _, ServeExt as _};

use common::alloc::with_peak;

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

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
    let _alone = common::alloc::exclusive();
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
            assert_eq!(ring.rings_in_use(), 0);
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
    let _alone = common::alloc::exclusive();
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
            assert_eq!(ring.rings_in_use(), 0);
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
    let _alone = common::alloc::exclusive();
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

const NO_PATHS: &[&[Option<usize>]] = &[];

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Defect 1: a flood of calls with 1 MiB parameters against a registration whose serve
/// stream is never polled. Each call is either queued or refused at once as overloaded,
/// naming its target, and memory stays bounded by the queue, not by the flood.
#[test]
fn a_flood_against_a_server_that_does_not_poll_stays_bounded() {
    let _alone = common::alloc::exclusive();
    const CALLS: usize = 256;
    let rt = current_thread();
    let ((), peak) = with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(64 * 1024, 16)).with_prefix("flood");
            // Registered, never polled.
            let invocations = ring.serve("test:flood/flood", "f", NO_SERVE_PATHS).await?;
            let (mut queued, mut overloaded) = (Vec::new(), 0);
            for i in 0..CALLS {
                let params = Bytes::from(vec![i as u8; MIB]);
                match ring.invoke(None, "test:flood/flood", "f", params, NO_PATHS).await {
                    Ok(handles) => queued.push(handles),
                    Err(err) => {
                        let msg = format!("{err:#}");
                        for part in ["overloaded", "`f`", "`test:flood/flood`", "`flood`"] {
                            assert!(msg.contains(part), "{part} missing in: {msg}");
                        }
                        overloaded += 1;
                    }
                }
            }
            eprintln!("{CALLS} calls: {} queued, {overloaded} overloaded", queued.len());
            assert!(overloaded > 0, "all {CALLS} calls were queued");
            assert_eq!(queued.len() + overloaded, CALLS);
            drop(queued);
            drop(invocations);
            assert_eq!(ring.rings_in_use(), 0);
            anyhow::Ok(())
        })
        .unwrap();
    });
    eprintln!("flood of {CALLS} × 1 MiB: peak heap {} MiB", peak / MIB);
    assert!(
        peak < 80 * MIB,
        "peak {peak} bytes for a flood of {CALLS} 1 MiB calls"
    );
}

/// Defect 1: a caller that gives up while its call is queued frees the parameters at
/// once (not when the server finally polls), and the server never sees that call.
#[test]
fn a_cancelled_queued_call_frees_its_params_at_once() {
    let _alone = common::alloc::exclusive();
    const SIZE: usize = 16 * MIB;
    let rt = current_thread();
    let ((), _) = with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(64 * 1024, 16));
            let mut invocations = Box::pin(ring.serve("test:cancel/cancel", "f", NO_SERVE_PATHS).await?);
            let params = Bytes::from(vec![7; SIZE]);
            let cancelled = ring
                .invoke(None, "test:cancel/cancel", "f", params, NO_PATHS)
                .await?;
            assert!(common::alloc::live() >= SIZE);
            drop(cancelled);
            let live = common::alloc::live();
            assert!(
                live < MIB,
                "{} MiB still live after the caller gave up its queued call",
                live / MIB
            );
            let (out, _results) = ring
                .invoke(
                    None,
                    "test:cancel/cancel",
                    "f",
                    Bytes::from_static(b"live"),
                    NO_PATHS,
                )
                .await?;
            drop(out); // the parameters end with the `params` bytes
            let (_, _outgoing, mut incoming) = invocations.next().await.context("served")??;
            let mut params = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut incoming, &mut params).await?;
            assert_eq!(params, b"live", "the server was handed the cancelled call");
            anyhow::Ok(())
        })
        .unwrap();
    });
}

/// How many async values the tests below write ahead of their reader
/// (`WRPC_RING_ELEMENTS` overrides it).
fn elements(default: usize) -> usize {
    std::env::var("WRPC_RING_ELEMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

type U8Future = Pin<Box<dyn Future<Output = u8> + Send>>;

/// Heap held per element once everything is written and before the caller reads: the
/// transport's small ring (256 bytes of storage and its bookkeeping) and table entry,
/// plus the caller's decoded but pending values (measured: 1.6 KiB per `future<u8>`,
/// 3.1 KiB per `stream<u8>`; 64 KiB and more before size-classed rings).
const HELD_PER_ELEMENT: usize = 4 * 1024;
/// Peak heap per element, both sides and wRPC's codec included. wRPC's decoder dominates
/// it: each pending `future`/`stream` element gets a `FramedRead` with an 8 KiB buffer
/// once the caller's I/O future polls it (measured: 10.5 KiB per `future<u8>`, 12 KiB
/// per `stream<u8>`; before size-classed rings, 70 KiB).
const PEAK_PER_ELEMENT: usize = 16 * 1024;

/// 100,000 elements in release builds, 20,000 in debug ones (a debug run of 100,000
/// takes minutes), unless `WRPC_RING_ELEMENTS` says otherwise.
fn many() -> usize {
    elements(if cfg!(debug_assertions) { 20_000 } else { 100_000 })
}

/// Defect 2: a `list<future<u8>>` result of 100,000 elements, every one written before
/// the caller reads any. Each holds one byte, so the transport must not hold a 64 KiB
/// ring for each.
#[test]
fn a_hundred_thousand_futures_written_ahead_of_their_reader() {
    let _alone = common::alloc::exclusive();
    let n = many();
    let rt = runtime();
    let ((), peak) = with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(64 * 1024, 16));
            let invocations = ring
                .serve_values::<(), (Vec<U8Future>,)>("test:many/futures", "f", NO_SERVE_PATHS)
                .await?;
            let server = tokio::spawn(async move {
                let mut invocations = pin!(invocations);
                let (_, (), _, respond) = invocations.next().await.context("no invocation")??;
                let futures = (0..n)
                    .map(|i| Box::pin(async move { i as u8 }) as U8Future)
                    .collect();
                respond((futures,)).await
            });
            let ((futures,), io) = ring
                .invoke_values::<_, _, (Vec<U8Future>,)>(
                    None,
                    "test:many/futures",
                    "f",
                    (),
                    [[Some(0), None].as_slice()],
                )
                .await?;
            // Everything is written before the caller reads a byte.
            server.await??;
            let held = common::alloc::live();
            eprintln!("{n} future<u8> written ahead: {} B held per element", held / n);
            assert!(held < n * HELD_PER_ELEMENT, "{held} bytes held for {n} futures");
            let io = tokio::spawn(io.context("futures need I/O")?);
            for (i, future) in futures.into_iter().enumerate() {
                assert_eq!(future.await, i as u8);
            }
            io.await??;
            assert_eq!(ring.rings_in_use(), 0);
            anyhow::Ok(())
        })
        .unwrap();
    });
    eprintln!(
        "{n} future<u8> written ahead: peak heap {} MiB ({} B per element)",
        peak / MIB,
        peak / n
    );
    assert!(peak < n * PEAK_PER_ELEMENT, "peak {peak} bytes for {n} futures");
}

/// Defect 2: a `list<stream<u8>>` result of 10,000 elements of 16 bytes each, every one
/// written before the caller reads any.
#[test]
fn ten_thousand_streams_written_ahead_of_their_reader() {
    let _alone = common::alloc::exclusive();
    let n = elements(10_000);
    let rt = runtime();
    let ((), peak) = with_peak(|| {
        rt.block_on(async {
            let ring = Ring::new(RingPool::new(64 * 1024, 16));
            let invocations = ring
                .serve_values::<(), (Vec<ByteStream>,)>("test:many/streams", "f", NO_SERVE_PATHS)
                .await?;
            let server = tokio::spawn(async move {
                let mut invocations = pin!(invocations);
                let (_, (), _, respond) = invocations.next().await.context("no invocation")??;
                let streams = (0..n)
                    .map(|i| {
                        let chunk = Bytes::from(vec![i as u8; 16]);
                        Box::pin(stream::iter([chunk])) as ByteStream
                    })
                    .collect();
                respond((streams,)).await
            });
            let ((streams,), io) = ring
                .invoke_values::<_, _, (Vec<ByteStream>,)>(
                    None,
                    "test:many/streams",
                    "f",
                    (),
                    [[Some(0), None].as_slice()],
                )
                .await?;
            server.await??;
            let held = common::alloc::live();
            eprintln!("{n} stream<u8> written ahead: {} B held per element", held / n);
            assert!(held < n * HELD_PER_ELEMENT, "{held} bytes held for {n} streams");
            let io = tokio::spawn(io.context("streams need I/O")?);
            for (i, stream) in streams.into_iter().enumerate() {
                let chunks: Vec<Bytes> = stream.collect().await;
                let got: Vec<u8> = chunks.concat();
                assert_eq!(got, vec![i as u8; 16], "stream {i}");
            }
            io.await??;
            assert_eq!(ring.rings_in_use(), 0);
            anyhow::Ok(())
        })
        .unwrap();
    });
    eprintln!(
        "{n} stream<u8> written ahead: peak heap {} MiB ({} B per element)",
        peak / MIB,
        peak / n
    );
    assert!(peak < n * PEAK_PER_ELEMENT, "peak {peak} bytes for {n} streams");
}
