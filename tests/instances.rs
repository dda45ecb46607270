//! Instance modes: a fresh instance per call (the default) against warm instances
//! reused across calls (`instances = "reuse"`), with real components.
#![cfg(feature = "wasmtime")]

mod common;

use std::time::Duration;

use wrpc_ring::host::{ByteSize, CallContext, ComponentConfig, HostConfig, InstanceMode, TransportKind};
use wrpc_transport::InvokeExt as _;

use common::host::{TestHost, wasm};

const FAULTS: &str = "wrpc-ring:examples/faults";
const KV: &str = "wrpc-ring:examples/kv";
const NO_RESULT_PATHS: &[&[Option<usize>]] = &[];

fn config(transport: TransportKind) -> HostConfig {
    common::host::config(transport, None)
}

fn component(id: &str, mode: InstanceMode, max_uses: u32) -> ComponentConfig {
    let component = ComponentConfig::new(id, wasm(id));
    match mode {
        InstanceMode::Fresh => component,
        InstanceMode::Reuse => component.reuse(max_uses),
    }
}

async fn calls(host: &TestHost) -> u32 {
    host.call::<(), (u32,)>(FAULTS, "calls", ()).await.unwrap().0
}

/// What one call leaves in the guest (a counter, a stored value) is seen by the next
/// call only with `instances = "reuse"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_calls_state_is_visible_only_in_reuse_mode() {
    for kind in [TransportKind::Ring, TransportKind::Duplex] {
        for mode in [InstanceMode::Fresh, InstanceMode::Reuse] {
            let mut config = config(kind);
            config.limits.max_instances = 1; // sequential calls meet the same warm instance
            let host = TestHost::start_with(
                config,
                &[component("faults", mode, 1000), component("kv", mode, 1000)],
                &[("test", FAULTS, "faults"), ("test", KV, "kv")],
            )
            .await;
            let counts = [calls(&host).await, calls(&host).await, calls(&host).await];
            let set: (Result<(), String>,) = host
                .call(KV, "set", ("key".to_string(), b"value".to_vec()))
                .await
                .unwrap();
            assert_eq!(set.0, Ok(()), "{kind} {mode:?}");
            let (got,): (Option<Vec<u8>>,) = host.call(KV, "get", ("key".to_string(),)).await.unwrap();
            match mode {
                InstanceMode::Fresh => {
                    assert_eq!(counts, [1, 1, 1], "{kind}: every call in a fresh instance");
                    assert_eq!(got, None, "{kind}: a fresh instance starts empty");
                }
                InstanceMode::Reuse => {
                    assert_eq!(counts, [1, 2, 3], "{kind}: one instance served them all");
                    assert_eq!(got.as_deref(), Some(&b"value"[..]), "{kind}");
                }
            }
        }
    }
}

/// An instance whose call trapped, ran past its time limit or past its memory limit is
/// thrown away: the next call gets a fresh one (its call counter starts at 1 again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapped_instance_never_serves_again() {
    let mut config = config(TransportKind::Ring);
    config.limits.max_instances = 1;
    config.limits.invocation_timeout = Duration::from_millis(500);
    config.limits.max_memory = ByteSize(16 << 20);
    let host = TestHost::start_with(
        config,
        &[component("faults", InstanceMode::Reuse, 1000)],
        &[("test", FAULTS, "faults")],
    )
    .await;
    assert_eq!(calls(&host).await, 1);
    for fault in ["trap", "spin", "hog"] {
        assert_eq!(
            calls(&host).await,
            2,
            "before {fault}: the warm instance serves again"
        );
        let err = match fault {
            "hog" => host.call::<(u32,), (u32,)>(FAULTS, "hog", (64,)).await.map(drop),
            _ => host.call::<(), ()>(FAULTS, fault, ()).await,
        }
        .expect_err(fault);
        assert!(!format!("{err:#}").is_empty());
        assert_eq!(
            calls(&host).await,
            1,
            "after {fault}: a new instance, not the faulted one"
        );
    }
}

/// With `max_uses = 2` an instance serves two calls, then a fresh one takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_uses_bounds_the_calls_an_instance_serves() {
    let mut config = config(TransportKind::Ring);
    config.limits.max_instances = 1;
    let host = TestHost::start_with(
        config,
        &[component("faults", InstanceMode::Reuse, 2)],
        &[("test", FAULTS, "faults")],
    )
    .await;
    let mut counts = Vec::new();
    for _ in 0..5 {
        counts.push(calls(&host).await);
    }
    assert_eq!(counts, [1, 2, 1, 2, 1]);
}

/// `max_instances` still bounds the calls a reusing component serves at once: while
/// its only instance spins, a second call cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_with_reused_instances() {
    let mut config = config(TransportKind::Ring);
    config.limits.max_instances = 1;
    config.limits.invocation_timeout = Duration::from_secs(3);
    let host = TestHost::start_with(
        config,
        &[component("faults", InstanceMode::Reuse, 1000)],
        &[("test", FAULTS, "faults")],
    )
    .await;
    let dispatcher = host.runtime.dispatcher().clone();
    let spin = tokio::spawn(async move {
        dispatcher
            .invoke_values_blocking::<_, (), ()>(
                CallContext::new("test"),
                FAULTS,
                "spin",
                (),
                NO_RESULT_PATHS,
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await; // the only instance is spinning
    let ok = host.call::<(), (String,)>(FAULTS, "ok", ());
    tokio::pin!(ok);
    // No upper bound on time is asserted: only that the second call does not finish
    // while the first holds the only permit.
    let early = tokio::time::timeout(Duration::from_millis(500), &mut ok).await;
    assert!(
        early.is_err(),
        "a second call ran while the only instance was busy: {early:?}"
    );
    assert!(spin.await.unwrap().is_err(), "the spin ends at its time limit");
}

/// Many concurrent calls on a reusing component: every answer right, and the warm
/// instances never exceed `max_instances` (each instance's counter stays below the
/// total, and the sum of what they served is the number of calls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_reused_instances_stay_within_the_limit() {
    let mut config = config(TransportKind::Ring);
    config.limits.max_instances = 4;
    let host = std::sync::Arc::new(
        TestHost::start_with(
            config,
            &[component("kv", InstanceMode::Reuse, 1000)],
            &[("test", KV, "kv")],
        )
        .await,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let host = host.clone();
        tasks.spawn(async move {
            let key = format!("k{i}");
            let set: (Result<(), String>,) = host
                .call(KV, "set", (key.clone(), i.to_le_bytes().to_vec()))
                .await?;
            anyhow::ensure!(set.0.is_ok(), "set failed: {set:?}");
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let warm = host.components[0].warm_instances();
    assert!(
        (1..=4).contains(&warm),
        "{warm} warm instances, max_instances = 4"
    );
    let metrics = host.runtime.dispatcher().metrics();
    assert_eq!(metrics.transport(TransportKind::Ring).errors, 0, "{metrics}");
}
