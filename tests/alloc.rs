//! The pooled hot path allocates nothing: acquire from a warm pool, a request/response
//! exchange, and release, counted by a global allocator.

mod common;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use wrpc_ring::RingPool;

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

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
        common::alloc::start();
        for _ in 0..100 {
            exchange(&pool).await;
        }
    });
    let allocations = common::alloc::stop();
    let stats = pool.stats();
    assert_eq!(stats.in_use, 0);
    assert_eq!(stats.misses, 2, "only the warm-up allocates rings");
    assert_eq!(allocations, 0, "allocations on the warm hot path");
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    common::alloc::start();
    let pool = RingPool::new(64, 1);
    drop(pool.acquire());
    assert!(common::alloc::stop() > 0);
}
