//! The dispatcher against a real `nats-server`: local targets over the configured local
//! transport, remote ones over NATS, the same results either way, and the faults.
#![cfg(feature = "host")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::Notify;
use wrpc_ring::host::{CallContext, Dispatcher, HostConfig, TransportKind};
use wrpc_transport::{InvokeExt as _, ServeExt as _};

use common::nats::{NatsServer, dead_port};

const ECHO: &str = "test:echo/echo@0.1.0";
const STAGE: &str = "test:pipeline/stage";
const NO_PATHS: [Box<[Option<usize>]>; 0] = [];
const NO_RESULT_PATHS: &[&[Option<usize>]] = &[];

fn config(transport: TransportKind, nats: Option<&NatsServer>) -> HostConfig {
    let mut config = HostConfig {
        transport,
        ..HostConfig::default()
    };
    config.nats.url = nats.map(NatsServer::url);
    config.limits.invocation_timeout = Duration::from_secs(5);
    config
}

async fn host(transport: TransportKind, nats: Option<&NatsServer>) -> Dispatcher {
    Dispatcher::new(&config(transport, nats)).await.unwrap()
}

/// Serves `echo(s) -> "{component} got {s} from {source-id} via {link-name}"` for
/// `component` on every server the host gives it.
async fn serve_echo(host: &Dispatcher, component: &'static str) {
    host.add_component(component);
    for server in host.servers(component).await.unwrap() {
        let calls = server
            .serve_values::<(String,), (String,)>(ECHO, "echo", NO_PATHS)
            .await
            .unwrap();
        tokio::spawn(calls.for_each_concurrent(None, move |call| async move {
            let (headers, (input,), _io, respond) = call.unwrap();
            let headers = headers.unwrap_or_default();
            let from = headers.get("source-id").unwrap_or("?").to_string();
            let link = headers.get("link-name").unwrap_or("?").to_string();
            respond((format!("{component} got {input} from {from} via {link}"),))
                .await
                .unwrap();
        }));
    }
}

async fn echo(host: &Dispatcher, cx: CallContext, input: &str) -> anyhow::Result<String> {
    let (out,) = host
        .invoke_values_blocking::<_, _, (String,)>(cx, ECHO, "echo", (input.to_string(),), NO_RESULT_PATHS)
        .await?;
    Ok(out)
}

/// Two hosts on one `nats-server`: a caller on host 1 reaches a target on host 1 over
/// the local path and a target on host 2 over NATS, with identical results under every
/// transport setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_targets_take_the_local_path_and_remote_ones_nats() {
    let nats = NatsServer::start();
    let mut results = Vec::new();
    for kind in TransportKind::ALL {
        let host1 = host(kind, Some(&nats)).await;
        let host2 = host(kind, Some(&nats)).await;
        // Component ids are unique per round so that rounds cannot answer each other.
        let (here, there): (&'static str, &'static str) = match kind {
            TransportKind::Ring => ("here-ring", "there-ring"),
            TransportKind::Duplex => ("here-duplex", "there-duplex"),
            TransportKind::Mpsc => ("here-mpsc", "there-mpsc"),
            TransportKind::Nats => ("here-nats", "there-nats"),
        };
        serve_echo(&host1, here).await;
        serve_echo(&host2, there).await;
        host1.link("caller", ECHO, "default", here);
        host1.link("caller", ECHO, "remote", there);

        let local = echo(&host1, CallContext::new("caller"), "x").await.unwrap();
        let remote = echo(&host1, CallContext::new("caller").with_link_name("remote"), "x")
            .await
            .unwrap();
        assert_eq!(local, format!("{here} got x from caller via default"));
        assert_eq!(remote, format!("{there} got x from caller via remote"));
        results.push((local.replace(here, "target"), remote.replace(there, "target")));

        let metrics = host1.metrics();
        let (local_path, nats_path) = (metrics.transport(kind), metrics.transport(TransportKind::Nats));
        if kind == TransportKind::Nats {
            assert_eq!((nats_path.calls, nats_path.errors), (2, 0), "{metrics}");
        } else {
            assert_eq!((local_path.calls, local_path.errors), (1, 0), "{kind}: {metrics}");
            assert_eq!((nats_path.calls, nats_path.errors), (1, 0), "{kind}: {metrics}");
        }
        assert_eq!(
            host1.route(&CallContext::new("caller"), ECHO).unwrap(),
            (here.to_string(), kind)
        );
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
}

/// Serves `stage.run(s)` for `component`: calls `next` (if any) through the host's
/// dispatcher as `component`, and wraps its answer: `a(b(c(x)))`.
async fn serve_stage(host: &Dispatcher, component: &'static str, next: bool) {
    host.add_component(component);
    for server in host.servers(component).await.unwrap() {
        let calls = server
            .serve_values::<(String,), (String,)>(STAGE, "run", NO_PATHS)
            .await
            .unwrap();
        let host = host.clone();
        tokio::spawn(calls.for_each_concurrent(None, move |call| {
            let host = host.clone();
            async move {
                let (_headers, (input,), _io, respond) = call.unwrap();
                let inner = if next {
                    match host
                        .invoke_values_blocking::<_, _, (String,)>(
                            CallContext::new(component),
                            STAGE,
                            "run",
                            (input,),
                            NO_RESULT_PATHS,
                        )
                        .await
                    {
                        Ok((inner,)) => inner,
                        Err(err) => format!("error: {err:#}"),
                    }
                } else {
                    input
                };
                respond((format!("{component}({inner})"),)).await.unwrap();
            }
        }));
    }
}

async fn run_stage(host: &Dispatcher, caller: &str) -> String {
    host.invoke_values_blocking::<_, _, (String,)>(
        CallContext::new(caller),
        STAGE,
        "run",
        ("x".to_string(),),
        NO_RESULT_PATHS,
    )
    .await
    .unwrap()
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_local_chain_completes() {
    let host = host(TransportKind::Ring, None).await;
    serve_stage(&host, "a", true).await;
    serve_stage(&host, "b", true).await;
    serve_stage(&host, "c", false).await;
    host.link("main", STAGE, "default", "a");
    host.link("a", STAGE, "default", "b");
    host.link("b", STAGE, "default", "c");
    // Many nested calls at once: no lock is held across a call, so none can deadlock.
    let calls: Vec<_> = (0..200).map(|_| run_stage(&host, "main")).collect();
    for out in futures::future::join_all(calls).await {
        assert_eq!(out, "a(b(c(x)))");
    }
    assert_eq!(host.metrics().transport(TransportKind::Ring).calls, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_can_leave_the_host_and_come_back() {
    let nats = NatsServer::start();
    let host1 = host(TransportKind::Ring, Some(&nats)).await;
    let host2 = host(TransportKind::Ring, Some(&nats)).await;
    serve_stage(&host1, "hop-a", true).await;
    serve_stage(&host2, "hop-b", true).await;
    serve_stage(&host1, "hop-c", false).await;
    host1.link("main", STAGE, "default", "hop-a");
    host1.link("hop-a", STAGE, "default", "hop-b");
    host2.link("hop-b", STAGE, "default", "hop-c");
    assert_eq!(run_stage(&host1, "main").await, "hop-a(hop-b(hop-c(x)))");
    let (m1, m2) = (host1.metrics(), host2.metrics());
    // host 1: main → a over the ring, a → b over NATS; host 2: b → c over NATS.
    assert_eq!(m1.transport(TransportKind::Ring).calls, 1, "{m1}");
    assert_eq!(m1.transport(TransportKind::Nats).calls, 1, "{m1}");
    assert_eq!(m2.transport(TransportKind::Nats).calls, 1, "{m2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relinking_does_not_disturb_calls_in_flight() {
    let host = host(TransportKind::Ring, None).await;
    let release = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    host.add_component("slow");
    for server in host.servers("slow").await.unwrap() {
        let calls = server
            .serve_values::<(String,), (String,)>(ECHO, "echo", NO_PATHS)
            .await
            .unwrap();
        let (release, started) = (release.clone(), started.clone());
        tokio::spawn(calls.for_each_concurrent(None, move |call| {
            let (release, started) = (release.clone(), started.clone());
            async move {
                let (_, (input,), _, respond) = call.unwrap();
                started.notify_one();
                release.notified().await;
                respond((format!("slow got {input}"),)).await.unwrap();
            }
        }));
    }
    serve_echo(&host, "fast").await;
    host.link("caller", ECHO, "default", "slow");
    let in_flight = tokio::spawn({
        let host = host.clone();
        async move { echo(&host, CallContext::new("caller"), "1").await }
    });
    started.notified().await; // the first call is in the slow handler now
    host.link("caller", ECHO, "default", "fast");
    assert_eq!(
        echo(&host, CallContext::new("caller"), "2").await.unwrap(),
        "fast got 2 from caller via default"
    );
    release.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), "slow got 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_path_applies_the_invocation_timeout() {
    let mut config = config(TransportKind::Ring, None);
    config.limits.invocation_timeout = Duration::from_millis(200);
    let host = Dispatcher::new(&config).await.unwrap();
    host.add_component("stuck");
    for server in host.servers("stuck").await.unwrap() {
        let calls = server
            .serve_values::<(String,), (String,)>(ECHO, "echo", NO_PATHS)
            .await
            .unwrap();
        tokio::spawn(calls.for_each_concurrent(None, |call| async move {
            let (_, _, _, respond) = call.unwrap();
            std::future::pending::<()>().await; // never answers
            drop(respond);
        }));
    }
    host.link("caller", ECHO, "default", "stuck");
    let err = echo(&host, CallContext::new("caller"), "x").await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("timed out") && msg.contains("stuck"), "{msg}");
    assert_eq!(host.metrics().transport(TransportKind::Ring).errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_path_applies_max_instances() {
    let mut config = config(TransportKind::Ring, None);
    config.limits.max_instances = 2;
    let host = Dispatcher::new(&config).await.unwrap();
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    host.add_component("limited");
    for server in host.servers("limited").await.unwrap() {
        let calls = server
            .serve_values::<(String,), (String,)>(ECHO, "echo", NO_PATHS)
            .await
            .unwrap();
        let (running, peak) = (running.clone(), peak.clone());
        tokio::spawn(calls.for_each_concurrent(None, move |call| {
            let (running, peak) = (running.clone(), peak.clone());
            async move {
                let (_, (input,), _, respond) = call.unwrap();
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                respond((input,)).await.unwrap();
            }
        }));
    }
    host.link("caller", ECHO, "default", "limited");
    let calls: Vec<_> = (0..20)
        .map(|i| {
            echo(
                &host,
                CallContext::new("caller"),
                Box::leak(i.to_string().into_boxed_str()),
            )
        })
        .collect();
    for (i, out) in futures::future::join_all(calls).await.into_iter().enumerate() {
        assert_eq!(out.unwrap(), i.to_string());
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {} > max_instances",
        peak.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_at_start_local_calls_work_remote_calls_fail_fast() {
    let (_reserved, port) = dead_port(); // accepted by the kernel, never answered
    let mut config = config(TransportKind::Ring, None);
    config.nats.url = Some(format!("nats://127.0.0.1:{port}"));
    let host = Dispatcher::new(&config).await.unwrap();
    serve_echo(&host, "local").await;
    host.link("caller", ECHO, "default", "local");
    host.link("caller", ECHO, "remote", "elsewhere");
    assert_eq!(
        echo(&host, CallContext::new("caller"), "x").await.unwrap(),
        "local got x from caller via default"
    );
    let err = echo(&host, CallContext::new("caller").with_link_name("remote"), "x")
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("unreachable") && msg.contains(&port.to_string()),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_mid_run_then_restarted() {
    let mut nats = NatsServer::start();
    let port = nats.port();
    let host1 = host(TransportKind::Ring, Some(&nats)).await;
    let host2 = host(TransportKind::Ring, Some(&nats)).await;
    serve_echo(&host1, "near").await;
    serve_echo(&host2, "far").await;
    host1.link("caller", ECHO, "default", "near");
    host1.link("caller", ECHO, "remote", "far");
    let remote = || echo(&host1, CallContext::new("caller").with_link_name("remote"), "x");
    assert_eq!(remote().await.unwrap(), "far got x from caller via remote");

    nats.stop();
    // Local calls are unaffected; remote ones fail with a clear error, not a hang.
    assert_eq!(
        echo(&host1, CallContext::new("caller"), "y").await.unwrap(),
        "near got y from caller via default"
    );
    let mut failed = None;
    for _ in 0..50 {
        match remote().await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await, // not noticed yet
            Err(err) => {
                failed = Some(format!("{err:#}"));
                break;
            }
        }
    }
    let msg = failed.expect("remote calls kept succeeding with NATS down");
    assert!(msg.contains("unreachable") || msg.contains("timed out"), "{msg}");

    let _nats = NatsServer::start_on(port);
    // The host reconnects by itself; poll (bounded) until remote calls work again.
    let mut last = String::new();
    for _ in 0..150 {
        match remote().await {
            Ok(out) => {
                assert_eq!(out, "far got x from caller via remote");
                return;
            }
            Err(err) => last = format!("{err:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("remote calls did not recover after NATS restarted: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_without_responders_is_named() {
    let nats = NatsServer::start();
    let host = host(TransportKind::Ring, Some(&nats)).await;
    host.link("caller", ECHO, "default", "ghost");
    let err = echo(&host, CallContext::new("caller"), "x").await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("ghost"), "{msg}");
}

#[tokio::test]
async fn an_unlinked_call_names_caller_interface_and_link() {
    let host = host(TransportKind::Ring, None).await;
    let err = echo(&host, CallContext::new("lonely").with_link_name("blue"), "x")
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("lonely") && msg.contains("test:echo/echo") && msg.contains("blue"),
        "{msg}"
    );
    host.link("lonely", ECHO, "blue", "nowhere");
    let err = echo(&host, CallContext::new("lonely").with_link_name("blue"), "x")
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("nowhere") && msg.contains("no NATS url"), "{msg}");
}

/// A remote target that takes the invocation but never answers it (a stuck host, or a
/// peer on the subject that is not a wRPC server): the call fails with `TimedOut` at
/// the invocation timeout, naming the target, instead of waiting forever. The caller's
/// parameter writer keeps to the call's deadline as its results reader does: over
/// NATS, `invoke_values` shuts the parameters down first, and that waits for the
/// callee's handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_that_never_answers_times_out() {
    let nats = NatsServer::start();
    let mut config = config(TransportKind::Ring, Some(&nats));
    config.limits.invocation_timeout = Duration::from_millis(500);
    let host = Dispatcher::new(&config).await.unwrap();
    // A plain NATS client on the target's invocation subject, which never replies.
    let silent = async_nats::connect(nats.url()).await.unwrap();
    let subject = wrpc_transport_nats::invocation_subject(&host.prefix("silent"), ECHO, "echo");
    let mut invocations = silent.subscribe(subject).await.unwrap();
    common::nats::confirm_subscriptions(&silent).await;
    host.link("test", ECHO, "default", "silent");

    let call = echo(&host, CallContext::new("test"), "hello");
    let Ok(result) = tokio::time::timeout(Duration::from_secs(30), call).await else {
        panic!("a hang: a call with a 500 ms invocation timeout still waits after 30 s");
    };
    let err = result.expect_err("nobody answered the call");
    let timed_out = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    let message = format!("{err:#}");
    assert!(timed_out, "not a timeout: {message}");
    assert!(
        message.contains("`silent`") && message.contains("invocation_timeout"),
        "{message}"
    );
    // The invocation did reach the silent peer: the wait was for its answer.
    let reached = tokio::time::timeout(Duration::from_secs(5), invocations.next()).await;
    assert!(
        matches!(reached, Ok(Some(_))),
        "the invocation never reached NATS"
    );
}
