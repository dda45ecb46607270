//! The pooled hot path allocates nothing: acquire from a warm pool, a request/response
//! exchange, and release, counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use wrpc_ring::RingPool;

/// Counts allocations made by the thread that switched counting on (each test runs on
/// its own thread, so tests cannot disturb each other's counts).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: defers every operation to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One invocation-shaped exchange: a request ring and a response ring from the pool,
/// the "callee" reads the request in place and answers, then everything is dropped.
async fn exchange(pool: &RingPool) {
    let (mut client, mut server) = pool.acquire_duplex();
    let caller = async {
        client.write_all(&[0xAB; 64]).await.unwrap();
        client.shutdown().await.unwrap();
        let mut response = [0; 64];
        client.read_exact(&mut response).await.unwrap();
        assert_eq!(response, [0xCD; 64]);
    };
    let callee = async {
        let mut seen = 0;
        loop {
            let chunk = server.fill_buf().await.unwrap();
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.iter().all(|&b| b == 0xAB));
            let n = chunk.len();
            seen += n;
            server.consume(n);
        }
        assert_eq!(seen, 64);
        server.write_all(&[0xCD; 64]).await.unwrap();
    };
    tokio::join!(caller, callee);
}

#[test]
fn warm_pool_exchange_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pool = RingPool::new(4096, 8);
    rt.block_on(async {
        // Warm up: the pool allocates its rings, the runtime its internals.
        for _ in 0..4 {
            exchange(&pool).await;
        }
        COUNTING.with(|c| c.set(true));
        for _ in 0..100 {
            exchange(&pool).await;
        }
        COUNTING.with(|c| c.set(false));
    });
    let stats = pool.stats();
    assert_eq!(stats.in_use, 0);
    assert_eq!(stats.misses, 2, "only the warm-up allocates rings");
    assert_eq!(allocations(), 0, "allocations on the warm hot path");
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    COUNTING.with(|c| c.set(true));
    let before = allocations();
    let pool = RingPool::new(64, 1);
    drop(pool.acquire());
    let after = allocations();
    COUNTING.with(|c| c.set(false));
    assert!(after > before);
}
