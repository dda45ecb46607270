//! Real components (examples/components/wasm, built from the sources beside them)
//! calling each other through the dispatcher, on every transport.
#![cfg(feature = "wasmtime")]

mod common;
#[path = "common/ring.rs"]
mod ring_helpers;

use std::time::Duration;

use wrpc_ring::host::{CallContext, TransportKind};
use wrpc_ring::runtime::Component;
use wrpc_transport::InvokeExt as _;

use common::host::{TestHost, config, runtime, wasm};
use common::nats::NatsServer;
use ring_helpers::within_for;

const GREETER: &str = "wrpc-ring:examples/greeter";
const STAGE: &str = "wrpc-ring:examples/stage";
const BLOB: &str = "wrpc-ring:examples/blob";
const FAULTS: &str = "wrpc-ring:examples/faults";
const NO_RESULT_PATHS: &[&[Option<usize>]] = &[];

/// The examples over each transport: the greeter, the A → B → C pipeline (nested calls
/// through polyfilled imports) and a 1 MiB blob — identical results on all four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_gives_identical_results_on_every_transport() {
    let nats = NatsServer::start();
    let mut outcomes = Vec::new();
    for kind in TransportKind::ALL {
        let host = TestHost::start(
            config(kind, Some(&nats)),
            &[
                ("greeter", "greeter"),
                ("pipeline-a", "pipeline-a"),
                ("pipeline-b", "pipeline-b"),
                ("pipeline-c", "pipeline-c"),
                ("blob", "blob"),
            ],
            &[
                ("test", GREETER, "greeter"),
                ("test", STAGE, "pipeline-a"),
                ("test", BLOB, "blob"),
                ("pipeline-a", STAGE, "pipeline-b"),
                ("pipeline-b", STAGE, "pipeline-c"),
            ],
        )
        .await;
        let (greeting,): (String,) = host.call(GREETER, "greet", ("ring".to_string(),)).await.unwrap();
        let (chain,): (String,) = host.call(STAGE, "run", ("x".to_string(),)).await.unwrap();
        let (blob,): (Vec<u8>,) = host.call(BLOB, "fetch", (1u32 << 20,)).await.unwrap();
        assert_eq!(greeting, "Hello, ring!", "{kind}");
        assert_eq!(chain, "a(b(c(x)))", "{kind}");
        assert_eq!(blob.len(), 1 << 20, "{kind}");
        assert!(
            blob.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
            "{kind}: blob pattern"
        );
        let metrics = host.runtime.dispatcher().metrics();
        // test→greeter, test→a, a→b, b→c, test→blob: five calls, all on the configured path.
        assert_eq!(metrics.transport(kind).calls, 5, "{kind}: {metrics}");
        assert_eq!(metrics.transport(kind).errors, 0, "{kind}: {metrics}");
        outcomes.push((greeting, chain, blob));
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]));
}

/// Faults in a guest reach the caller as clear errors, and the next call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_faults_are_clear_errors_and_the_next_call_succeeds() {
    let mut config = config(TransportKind::Ring, None);
    config.limits.invocation_timeout = Duration::from_millis(500);
    let host = TestHost::start(config, &[("faults", "faults")], &[("test", FAULTS, "faults")]).await;

    let err = host.call::<(), ()>(FAULTS, "trap", ()).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("unreachable") && msg.contains("faults"),
        "trap: {msg}"
    );
    let (ok,): (String,) = host.call(FAULTS, "ok", ()).await.unwrap();
    assert_eq!(ok, "ok");

    let err = host.call::<(), ()>(FAULTS, "spin", ()).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("interrupt") || msg.contains("timed out"),
        "spin: {msg}"
    );
    let (ok,): (String,) = host.call(FAULTS, "ok", ()).await.unwrap();
    assert_eq!(ok, "ok");

    let err = host
        .call::<(u32,), (u32,)>(FAULTS, "hog", (256,))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("memory") || msg.contains("unreachable"),
        "hog: {msg}"
    );
    let (mib,): (u32,) = host.call(FAULTS, "hog", (8,)).await.unwrap();
    assert_eq!(mib, 8);
    let (ok,): (String,) = host.call(FAULTS, "ok", ()).await.unwrap();
    assert_eq!(ok, "ok");
}

/// A trap reaches the caller as an abort carrying the trap message, not as an EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_an_abort_with_the_trap_message() {
    let host = TestHost::start(
        config(TransportKind::Ring, None),
        &[("faults", "faults")],
        &[("test", FAULTS, "faults")],
    )
    .await;
    let err = host.call::<(), ()>(FAULTS, "trap", ()).await.unwrap_err();
    let aborted = err
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .find(|e| e.kind() == std::io::ErrorKind::ConnectionAborted);
    let msg = format!("{err:#}");
    assert!(aborted.is_some(), "expected an abort, got: {msg}");
    assert!(msg.contains("wasm trap") || msg.contains("unreachable"), "{msg}");
}

/// `Component::call` directly: params from a transport's incoming stream, results to
/// its outgoing stream, over a ring served by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_call_streams_params_and_results_over_a_ring() {
    use futures::StreamExt as _;
    use wrpc_transport::Serve as _;

    let runtime = runtime(&config(TransportKind::Ring, None)).await;
    let greeter: std::sync::Arc<Component> = runtime.load_file("greeter", wasm("greeter")).unwrap();
    assert!(greeter.export(GREETER, "greet").is_ok());
    let err = greeter.export(GREETER, "shout").unwrap_err().to_string();
    assert!(err.contains("greeter") && err.contains("greet"), "{err}");

    let ring = wrpc_ring::Ring::new(wrpc_ring::RingPool::new(64 * 1024, 8)).with_prefix("manual");
    let mut calls = ring
        .serve(GREETER, "greet", Vec::<Box<[Option<usize>]>>::new())
        .await
        .unwrap();
    let server = tokio::spawn(async move {
        let (_cx, outgoing, incoming) = calls.next().await.unwrap().unwrap();
        greeter.call(GREETER, "greet", incoming, outgoing).await
    });
    let (greeting,): (String,) = ring
        .invoke_values_blocking(None, GREETER, "greet", ("manual".to_string(),), NO_RESULT_PATHS)
        .await
        .unwrap();
    assert_eq!(greeting, "Hello, manual!");
    server.await.unwrap().unwrap();
    assert_eq!(ring.rings_in_use(), 0);
}

/// A component whose instantiation runs wasm (a core `start` function) loads, has its
/// fast-path export probed, and serves: the probe's instance gets the call's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_a_start_function_loads_and_serves() {
    use futures::StreamExt as _;
    use wrpc_transport::Serve as _;

    const SCALAR: &str = "wrpc-ring:test/scalar";
    let wat = r#"(component
        (core module $m
            (global $seven (mut i32) (i32.const 0))
            (func $start (global.set $seven (i32.const 7)))
            (start $start)
            (func (export "seven") (result i32) (global.get $seven)))
        (core instance $i (instantiate $m))
        (func $seven (result u32) (canon lift (core func $i "seven")))
        (instance $scalar (export "seven" (func $seven)))
        (export "wrpc-ring:test/scalar" (instance $scalar)))"#;
    let runtime = runtime(&config(TransportKind::Ring, None)).await;
    let component = runtime.load("start", wat.as_bytes()).unwrap();

    let ring = wrpc_ring::Ring::new(wrpc_ring::RingPool::new(4096, 8));
    let mut calls = ring
        .serve(SCALAR, "seven", Vec::<Box<[Option<usize>]>>::new())
        .await
        .unwrap();
    let server = tokio::spawn(async move {
        let (_cx, outgoing, incoming) = calls.next().await.unwrap().unwrap();
        component.call(SCALAR, "seven", incoming, outgoing).await
    });
    let (seven,): (u32,) = within_for(
        Duration::from_secs(60),
        "the start component's call",
        ring.invoke_values_blocking(None, SCALAR, "seven", (), NO_RESULT_PATHS),
    )
    .await
    .unwrap();
    assert_eq!(seven, 7, "the start function ran before the call");
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bad_component_is_a_clear_error() {
    let runtime = runtime(&config(TransportKind::Ring, None)).await;
    let err = runtime.load("junk", b"not wasm").unwrap_err();
    assert!(
        format!("{err:#}").contains("`junk` is not a valid WebAssembly component"),
        "{err:#}"
    );
    let err = runtime.load_file("missing", "/nonexistent/x.wasm").unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/x.wasm"), "{err:#}");
}

/// Dropping the runtime while a guest still spins must not leave it spinning: the
/// guest's time limit still stops it, and the async runtime can shut down.
#[test]
fn a_spinning_guest_is_stopped_even_after_the_runtime_is_dropped() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut config = config(TransportKind::Ring, None);
            config.limits.invocation_timeout = Duration::from_millis(300);
            let host = TestHost::start(config, &[("faults", "faults")], &[("test", FAULTS, "faults")]).await;
            let dispatcher = host.runtime.dispatcher().clone();
            // The call is left running; the caller does not wait for it.
            tokio::spawn(async move {
                let _ = dispatcher
                    .invoke_values_blocking::<_, (), ()>(
                        CallContext::new("test"),
                        FAULTS,
                        "spin",
                        (),
                        NO_RESULT_PATHS,
                    )
                    .await;
            });
            tokio::time::sleep(Duration::from_millis(50)).await; // the guest is spinning now
            drop(host);
        });
        drop(rt); // waits for its workers: one of them runs the guest
        let _ = done.send(());
    });
    // Generous: the guest's own limit is 300 ms. A hang here means it was never stopped.
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the spinning guest was never stopped");
}

/// A host served over NATS can be dropped off the runtime that served it, as a program
/// does after `block_on` returns: its serve streams are dropped at once, and a NATS
/// subscription spawns its unsubscribe, which needs the runtime's context. This
/// panicked ("there is no reactor running") when `Serving` dropped its streams without
/// entering the runtime.
#[test]
fn a_host_served_over_nats_can_be_dropped_off_the_runtime() {
    let nats = NatsServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let host = rt.block_on(async {
        let host = TestHost::start(
            config(TransportKind::Nats, Some(&nats)),
            &[("greeter", "greeter")],
            &[("test", GREETER, "greeter")],
        )
        .await;
        let (greeting,): (String,) = host.call(GREETER, "greet", ("nats".to_string(),)).await.unwrap();
        assert_eq!(greeting, "Hello, nats!");
        host
    });
    let TestHost { runtime, serving, .. } = host;
    drop(serving); // off the runtime: no task context on this thread
    drop(runtime);
    drop(rt);
}

/// `max_instances` bounds the calls a component serves at once: with one instance
/// busy spinning, the next call to the same component cannot start until the first
/// one is stopped by its time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_applies_to_components() {
    let mut config = config(TransportKind::Ring, None);
    config.limits.max_instances = 1;
    config.limits.invocation_timeout = Duration::from_secs(3);
    let host = TestHost::start(config, &[("faults", "faults")], &[("test", FAULTS, "faults")]).await;
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
    // While the spin holds the only permit, `ok` cannot even start. (No upper bound on
    // time is asserted anywhere: only that it does not finish early.)
    let early = tokio::time::timeout(Duration::from_millis(500), &mut ok).await;
    assert!(
        early.is_err(),
        "a second call ran while the only instance was busy: {early:?}"
    );
    // The spin is stopped by its time limit, which frees the instance.
    assert!(spin.await.unwrap().is_err());
}

/// A caller that sends part of its parameters and then goes silent, without closing
/// anything: a caller host that died, over NATS, where nothing tells the callee; or a
/// stalled caller over the ring. The callee gives the call up at its own
/// `invocation_timeout`, counted from when it took the call up, and frees the
/// component's only instance for the next call. (Before that limit, such a call held
/// its permit for good, and every later call waited for it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_sending_its_parameters_does_not_hold_the_instance() {
    use wrpc_transport::Invoke as _;

    let nats = NatsServer::start();
    let rounds = [
        (TransportKind::Nats, true),
        (TransportKind::Ring, true),
        (TransportKind::Nats, false),
    ];
    for (kind, fast_path) in rounds {
        let mut config = config(kind, Some(&nats));
        config.runtime.fast_path = fast_path; // off: the `Val` path serves `greet`
        config.limits.max_instances = 1;
        config.limits.invocation_timeout = Duration::from_millis(500);
        let host = TestHost::start(config, &[("greeter", "greeter")], &[("test", GREETER, "greeter")]).await;
        let dispatcher = host.runtime.dispatcher();
        let client = async {
            let conn = async_nats::connect(nats.url()).await.unwrap();
            wrpc_transport_nats::Client::new(conn, dispatcher.prefix("greeter"), None)
                .await
                .unwrap()
        }
        .await;
        // `greet(name: string)` with a name said to be 100 bytes long, of which 3 are
        // sent; the writer is then kept open and never written to.
        let truncated = bytes::Bytes::from_static(b"\x64hel");
        let stalled: Box<dyn std::any::Any + Send> = match kind {
            TransportKind::Nats => Box::new(
                client
                    .invoke(None, GREETER, "greet", truncated, NO_RESULT_PATHS)
                    .await
                    .unwrap(),
            ),
            _ => Box::new(
                dispatcher
                    .invoke(
                        CallContext::new("test"),
                        GREETER,
                        "greet",
                        truncated,
                        NO_RESULT_PATHS,
                    )
                    .await
                    .unwrap(),
            ),
        };
        let in_use = || dispatcher.gauges().components[0].instances_in_use;
        let wait_for = |n: usize, what: &str| {
            let what = format!("{kind}, fast path {fast_path}: {what}");
            async move {
                within_for(Duration::from_secs(30), &what, async {
                    while in_use() != n {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await;
            }
        };
        wait_for(1, "the stalled call was never taken up").await;
        wait_for(0, "the stalled call still holds greeter's only instance").await;
        // The instance is free: a whole call goes through.
        let call = async {
            match kind {
                TransportKind::Nats => {
                    client
                        .invoke_values_blocking::<_, _, (String,)>(
                            None,
                            GREETER,
                            "greet",
                            ("world".to_string(),),
                            NO_RESULT_PATHS,
                        )
                        .await
                }
                _ => host.call(GREETER, "greet", ("world".to_string(),)).await,
            }
        };
        let what = format!("{kind}, fast path {fast_path}: the next call");
        let result = within_for(Duration::from_secs(30), &what, call).await;
        assert_eq!(
            result.unwrap().0,
            "Hello, world!",
            "{kind}, fast path {fast_path}"
        );
        drop(stalled);
    }
}

/// The hand-off from a caller to the callee's parked workers, under load: many pipeline
/// calls at once over the ring on 2 workers, with fewer instances than callers (so that
/// calls queue for permits and wait for busy workers) and some callers giving up
/// part-way, must all end:
/// every call that is not given up returns its own result, and a call made afterwards
/// goes through. A lost wake-up shows as the watchdog's message, naming how many calls
/// ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ring_calls_with_cancellations_all_end_on_two_workers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;

    const CLIENTS: usize = 8;
    const CALLS: usize = 150;

    /// Polls `fut` at most `polls` times (yielding in between), then drops it.
    async fn poll_at_most<F: Future>(fut: F, polls: u64) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        for _ in 0..polls {
            if let Poll::Ready(out) = futures::poll!(fut.as_mut()) {
                return Some(out);
            }
            tokio::task::yield_now().await;
        }
        None
    }

    let mut config = config(TransportKind::Ring, None);
    config.limits.max_instances = 2;
    let host = TestHost::start(
        config,
        &[
            ("pipeline-a", "pipeline-a"),
            ("pipeline-b", "pipeline-b"),
            ("pipeline-c", "pipeline-c"),
        ],
        &[
            ("test", STAGE, "pipeline-a"),
            ("pipeline-a", STAGE, "pipeline-b"),
            ("pipeline-b", STAGE, "pipeline-c"),
        ],
    )
    .await;
    let ended = Arc::new(AtomicUsize::new(0));
    let given_up = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let dispatcher = host.runtime.dispatcher().clone();
        let (ended, given_up) = (ended.clone(), given_up.clone());
        clients.spawn(async move {
            // xorshift, seeded per client: which calls are given up, and when.
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (client as u64 + 1);
            for i in 0..CALLS {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let input = format!("{client}-{i}");
                let call = dispatcher.invoke_values_blocking::<_, (String,), (String,)>(
                    CallContext::new("test"),
                    STAGE,
                    "run",
                    (input.clone(),),
                    NO_RESULT_PATHS,
                );
                if seed % 5 == 0 {
                    // Gives up after 0 to 15 polls: before routing, while queued for a
                    // permit, or while the stages run.
                    if let Some(result) = poll_at_most(call, (seed >> 8) % 16).await {
                        result.expect("a pipeline call that ended before it was given up");
                    } else {
                        given_up.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    let (chain,) = call.await.expect("a pipeline call");
                    assert_eq!(chain, format!("a(b(c({input})))"));
                }
                ended.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let all = async {
        while let Some(client) = clients.join_next().await {
            client.expect("a client task");
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), all).await.is_err() {
        panic!(
            "a hang: {} of {} pipeline calls ended within 120 s ({} given up)",
            ended.load(Ordering::Relaxed),
            CLIENTS * CALLS,
            given_up.load(Ordering::Relaxed),
        );
    }
    assert!(
        given_up.load(Ordering::Relaxed) > 0,
        "no call was given up: the test lost its point"
    );
    let (chain,): (String,) = host.call(STAGE, "run", ("after".to_string(),)).await.unwrap();
    assert_eq!(chain, "a(b(c(after)))");
}

/// A component set up while NATS was unreachable is served over NATS once NATS is up:
/// another host's calls reach it without a restart of the host that serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_served_while_nats_was_down_is_served_over_nats_once_it_is_up() {
    // Free now; the server starts on it once the callee is serving without it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut callee_config = config(TransportKind::Ring, None);
    callee_config.nats.url = Some(format!("nats://127.0.0.1:{port}"));
    callee_config.lattice = "late".into();
    let callee = TestHost::start(callee_config.clone(), &[("greeter", "greeter")], &[]).await;
    let nats = NatsServer::start_on(port);
    let mut caller_config = callee_config;
    caller_config.limits.invocation_timeout = Duration::from_secs(2);
    let caller = TestHost::start(caller_config, &[], &[("test", GREETER, "greeter")]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let greeting = loop {
        match caller.call::<_, (String,)>(GREETER, "greet", ("late",)).await {
            Ok((greeting,)) => break greeting,
            Err(err) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the callee was never served over NATS (60 s after it came up): {err:#}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(greeting.contains("late"), "{greeting}");
    let metrics = caller.runtime.dispatcher().metrics();
    assert!(metrics.transport(TransportKind::Nats).calls >= 1, "{metrics}");
    drop((caller, callee, nats));
}
