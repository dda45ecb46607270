//! Stress: large transfers with random chunking across threads, many small ping-pongs,
//! and futures cancelled mid-poll.
//!
//! Every test runs under a watchdog: if its progress counters stop moving for a minute
//! (a lost wake-up parks both sides for good), it fails with `stuck: …` and the counters,
//! instead of hanging.

#[path = "../src/ring/watchdog.rs"]
mod watchdog;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use wrpc_ring::{RingPool, duplex, pipe};

/// A deterministic byte stream: `source[i % period]`, with a period that is not a
/// multiple of any ring size so that every byte position is checked against a
/// different ring offset.
struct Pattern {
    source: Vec<u8>,
}

impl Pattern {
    const PERIOD: usize = (1 << 20) + 7;

    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut source = vec![0; Self::PERIOD * 2];
        rng.fill(&mut source[..Self::PERIOD]);
        source.copy_within(..Self::PERIOD, Self::PERIOD);
        Self { source }
    }

    /// The `len` bytes starting at stream offset `at` (`len` ≤ the period).
    fn at(&self, at: u64, len: usize) -> &[u8] {
        let start = (at % Self::PERIOD as u64) as usize;
        &self.source[start..start + len]
    }
}

const BIG: u64 = 256 << 20;

/// Byte counts a test updates as it goes (`Relaxed`: they only feed the watchdog).
#[derive(Clone, Default)]
struct Progress {
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl Progress {
    fn report(&self, unit: &str) -> String {
        format!(
            "writer sent {} {unit}, reader received {}",
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed)
        )
    }
}

/// Runs `test` on a 2-worker runtime under the watchdog, reporting `progress`.
fn on_two_workers<F>(what: &str, progress: &Progress, unit: &'static str, test: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let report = progress.clone();
    watchdog::watch(
        what,
        move || report.report(unit),
        move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .expect("multi_thread runtime")
                .block_on(test)
        },
    );
}

async fn transfer_256_mib(buffered_reader: bool, progress: Progress) {
    let pattern = std::sync::Arc::new(Pattern::new(7));
    let (mut w, mut r) = pipe(64 * 1024);
    let source = pattern.clone();
    let reader_progress = progress.received.clone();
    let writer = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(1);
        let mut sent = 0u64;
        while sent < BIG {
            let len = rng.random_range(1..=(128 * 1024)).min((BIG - sent) as usize);
            w.write_all(source.at(sent, len)).await.unwrap();
            sent += len as u64;
            progress.sent.store(sent, Ordering::Relaxed);
        }
        w.shutdown().await.unwrap();
    });
    let mut rng = StdRng::seed_from_u64(2);
    let mut received = 0u64;
    let mut buf = vec![0; 96 * 1024];
    loop {
        if buffered_reader {
            let chunk = r.fill_buf().await.unwrap();
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len().min(rng.random_range(1..=chunk.len()));
            assert!(
                chunk[..n] == *pattern.at(received, n),
                "corrupt at offset {received}"
            );
            r.consume(n);
            received += n as u64;
        } else {
            let want = rng.random_range(1..=buf.len());
            let n = r.read(&mut buf[..want]).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(
                buf[..n] == *pattern.at(received, n),
                "corrupt at offset {received}"
            );
            received += n as u64;
        }
        reader_progress.store(received, Ordering::Relaxed);
    }
    assert_eq!(received, BIG);
    writer.await.unwrap();
}

#[test]
fn transfers_256_mib_byte_exact_through_async_read() {
    let progress = Progress::default();
    let test = transfer_256_mib(false, progress.clone());
    on_two_workers(
        "a 256 MiB transfer read through AsyncRead",
        &progress,
        "bytes",
        test,
    );
}

#[test]
fn transfers_256_mib_byte_exact_through_async_buf_read() {
    let progress = Progress::default();
    let test = transfer_256_mib(true, progress.clone());
    on_two_workers(
        "a 256 MiB transfer read through AsyncBufRead",
        &progress,
        "bytes",
        test,
    );
}

#[test]
fn a_million_small_ping_pongs() {
    let progress = Progress::default();
    let test = million_ping_pongs(progress.clone());
    on_two_workers("a million 64-byte ping-pongs", &progress, "requests", test);
}

async fn million_ping_pongs(progress: Progress) {
    const ROUNDS: u32 = 1_000_000;
    let (mut client, mut server) = duplex(256);
    let echo = tokio::spawn(async move {
        let mut buf = [0; 64];
        loop {
            match server.read_exact(&mut buf).await {
                Ok(_) => server.write_all(&buf).await.unwrap(),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut msg = [0u8; 64];
    let mut back = [0u8; 64];
    for i in 0..ROUNDS {
        msg[..4].copy_from_slice(&i.to_le_bytes());
        client.write_all(&msg).await.unwrap();
        progress.sent.store(u64::from(i) + 1, Ordering::Relaxed);
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
        progress.received.store(u64::from(i) + 1, Ordering::Relaxed);
    }
    drop(client);
    echo.await.unwrap();
}

/// Reads and writes raced against an always-ready branch in `select!`, so that many of
/// them are dropped after having been polled: nothing may be lost or duplicated.
#[test]
fn futures_cancelled_mid_poll_lose_and_duplicate_nothing() {
    let progress = Progress::default();
    let test = cancelled_mid_poll(progress.clone());
    on_two_workers(
        "an 8 MiB transfer with cancelled futures",
        &progress,
        "bytes",
        test,
    );
}

async fn cancelled_mid_poll(progress: Progress) {
    const TOTAL: u64 = 8 << 20;
    let pattern = std::sync::Arc::new(Pattern::new(3));
    let (mut w, mut r) = pipe(4096);
    let source = pattern.clone();
    let writer_progress = progress.sent.clone();
    let writer = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(4);
        let (mut sent, mut cancelled) = (0u64, 0u32);
        while sent < TOTAL {
            let len = rng.random_range(1..=8192).min((TOTAL - sent) as usize);
            tokio::select! {
                biased;
                n = w.write(source.at(sent, len)) => {
                    sent += n.unwrap() as u64;
                    writer_progress.store(sent, Ordering::Relaxed);
                }
                () = tokio::task::yield_now() => cancelled += 1,
            }
        }
        w.shutdown().await.unwrap();
        cancelled
    });
    let (mut received, mut cancelled) = (0u64, 0u32);
    let mut buf = vec![0; 8192];
    loop {
        tokio::select! {
            biased;
            n = r.read(&mut buf) => {
                let n = n.unwrap();
                if n == 0 { break; }
                assert!(buf[..n] == *pattern.at(received, n), "corrupt at offset {received}");
                received += n as u64;
                progress.received.store(received, Ordering::Relaxed);
            }
            () = tokio::task::yield_now() => cancelled += 1,
        }
    }
    assert_eq!(received, TOTAL);
    let writer_cancelled = writer.await.unwrap();
    assert!(cancelled + writer_cancelled > 0, "no future was ever cancelled");
}

/// Many concurrent streams through one pool on a multi-thread runtime: every stream is
/// intact and every ring comes back.
#[test]
fn pooled_streams_in_parallel_all_return() {
    let progress = Progress::default();
    let test = pooled_streams(progress.clone());
    on_two_workers("500 pooled streams in parallel", &progress, "streams", test);
}

async fn pooled_streams(progress: Progress) {
    let pool = RingPool::new(1024, 64);
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let (mut w, mut r) = pool.acquire();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..(i * 37 % 5000)).map(|j| (j ^ i) as u8).collect();
            let expected = data.clone();
            let send = tokio::spawn(async move { w.write_all(&data).await.unwrap() });
            progress.sent.fetch_add(1, Ordering::Relaxed);
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            send.await.unwrap();
            assert_eq!(got, expected);
            progress.received.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = pool.stats();
    assert_eq!(stats.in_use, 0);
    assert_eq!(stats.hits + stats.misses, 500);
    assert!(stats.idle <= 64);
}
