//! Allocations per invocation over a warm `Ring` transport, counted by a global
//! allocator: the transport's own (raw `Invoke`/`Serve` handles, no codec) must be zero;
//! the total through wRPC's typed helpers is printed for the record.

mod common;

use std::pin::pin;

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use wrpc_ring::{Ring, RingPool};
use wrpc_transport::{Invoke as _, InvokeExt as _, Serve as _, ServeExt as _};

// Every test runs its caller and callee on a current-thread runtime on its own
// thread, so the per-thread count covers both ends of each invocation and nothing else.
#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

/// Runs `round` `WARM_UP` times, then counts the allocations of `MEASURED` more rounds.
fn allocations_per_round<F: Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    mut round: impl FnMut() -> F,
) -> f64 {
    const WARM_UP: usize = 200;
    const MEASURED: usize = 1000;
    let measured = rt.block_on(async {
        for _ in 0..WARM_UP {
            round().await;
        }
        common::alloc::start();
        for _ in 0..MEASURED {
            round().await;
        }
        common::alloc::stop()
    });
    measured as f64 / MEASURED as f64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

const NO_PATHS: &[&[Option<usize>]] = &[];

#[test]
fn the_transport_allocates_nothing_per_invocation_on_a_warm_pool() {
    let rt = runtime();
    let ring = Ring::new(RingPool::new(64 * 1024, 64));
    let params = Bytes::from_static(&[0xAB; 64]);
    let invocations = rt
        .block_on(ring.serve("test:alloc/alloc", "echo", Vec::<Box<[Option<usize>]>>::new()))
        .unwrap();
    // The callee: one task serving invocations one after the other (no task per call,
    // which would be the application's allocation, not the transport's).
    let _server = rt.spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some(invocation) = invocations.next().await {
            let (_cx, mut outgoing, mut incoming) = invocation.unwrap();
            let mut seen = 0;
            loop {
                let chunk = incoming.fill_buf().await.unwrap();
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len();
                seen += n;
                incoming.consume(n);
            }
            assert_eq!(seen, 64);
            outgoing.write_all(&[0xCD; 64]).await.unwrap();
        }
    });
    let per_invocation = allocations_per_round(&rt, || {
        let ring = &ring;
        let params = params.clone();
        async move {
            let (mut outgoing, mut incoming) = ring
                .invoke(None, "test:alloc/alloc", "echo", params, NO_PATHS)
                .await
                .unwrap();
            outgoing.shutdown().await.unwrap();
            let mut seen = 0;
            loop {
                let chunk = incoming.fill_buf().await.unwrap();
                if chunk.is_empty() {
                    break;
                }
                assert!(chunk.iter().all(|&b| b == 0xCD));
                let n = chunk.len();
                seen += n;
                incoming.consume(n);
            }
            assert_eq!(seen, 64);
        }
    });
    println!("Ring transport alone: {per_invocation} allocations per invocation (warm pool)");
    assert_eq!(per_invocation, 0.0, "the transport allocates per invocation");
    assert_eq!(ring.rings_in_use(), 0);
}

#[test]
fn allocations_with_the_typed_helpers_are_reported() {
    let rt = runtime();
    let ring = Ring::new(RingPool::new(64 * 1024, 64));
    let invocations = rt
        .block_on(ring.serve_values::<(String,), (String,)>(
            "test:alloc/alloc",
            "echo",
            Vec::<Box<[Option<usize>]>>::new(),
        ))
        .unwrap();
    let _server = rt.spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some(invocation) = invocations.next().await {
            let (_cx, (text,), _, respond) = invocation.unwrap();
            respond((text,)).await.unwrap();
        }
    });
    let text = "x".repeat(64);
    let per_invocation = allocations_per_round(&rt, || {
        let ring = &ring;
        let text = text.clone();
        async move {
            let ((echo,), _) = ring
                .invoke_values::<_, _, (String,)>(None, "test:alloc/alloc", "echo", (text,), NO_PATHS)
                .await
                .unwrap();
            assert_eq!(echo.len(), 64);
        }
    });
    println!(
        "Ring with invoke_values/serve_values (64-byte string echo): {per_invocation} allocations per \
         invocation, all in wRPC's codec and helpers and the test's own String"
    );
    assert_eq!(ring.rings_in_use(), 0);
}
