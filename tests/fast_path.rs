//! The typed fast path for byte-shaped and scalar signatures: which exports take it,
//! identical results on every transport and in both instance modes, the same bytes on
//! the wire as the `Val` path (wrpc-runtime-wasmtime's encoder), hosts on different
//! paths talking over NATS, and clear errors for bad input.
#![cfg(feature = "wasmtime")]

mod common;

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wrpc_ring::host::{CallContext, ComponentConfig, HostConfig, InstanceMode, TransportKind};
use wrpc_transport::{Invoke as _, Serve as _};

use common::host::{TestHost, wasm};
use common::nats::NatsServer;

const BLOB: &str = "wrpc-ring:examples/blob";
const KV: &str = "wrpc-ring:examples/kv";
const GREETER: &str = "wrpc-ring:examples/greeter";
const NO_PATHS: &[&[Option<usize>]] = &[];

fn config(transport: TransportKind, nats: Option<&NatsServer>, fast_path: bool) -> HostConfig {
    let mut config = common::host::config(transport, nats);
    config.limits.max_instances = 1; // calls in a row meet the same warm instance
    config.runtime.fast_path = fast_path;
    config
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn uleb(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    uleb(s.len() as u64, out);
    out.extend_from_slice(s);
}

/// Which exports take the fast path: every byte-shaped and scalar signature of the
/// examples; `list<list<u8>>` keeps the `Val` path.
#[tokio::test]
async fn byte_and_scalar_signatures_take_the_fast_path() {
    let host = TestHost::start(
        config(TransportKind::Ring, None, true),
        &[
            ("blob", "blob"),
            ("kv", "kv"),
            ("greeter", "greeter"),
            ("faults", "faults"),
        ],
        &[],
    )
    .await;
    let shapes: Vec<(String, Option<String>)> = host
        .components
        .iter()
        .flat_map(|c| {
            c.exports()
                .iter()
                .map(|e| (format!("{}.{}", c.id(), e.name()), e.fast_path()))
        })
        .collect();
    let shape = |name: &str| {
        shapes
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}: {shapes:?}"))
            .1
            .clone()
    };
    assert_eq!(shape("blob.fetch").as_deref(), Some("(u32) -> list<u8>"));
    assert_eq!(shape("blob.put").as_deref(), Some("(list<u8>) -> u32"));
    assert_eq!(shape("blob.echo").as_deref(), Some("(list<u8>) -> list<u8>"));
    assert_eq!(
        shape("blob.fetch-chunks"),
        None,
        "list<list<u8>> takes the Val path"
    );
    assert_eq!(shape("kv.get").as_deref(), Some("(string) -> option<list<u8>>"));
    assert_eq!(
        shape("kv.set").as_deref(),
        Some("(string, list<u8>) -> result<_, string>")
    );
    assert_eq!(
        shape("kv.range").as_deref(),
        Some("(string, u64, u64) -> result<list<u8>, string>")
    );
    assert_eq!(shape("kv.delete").as_deref(), Some("(string) -> bool"));
    assert_eq!(shape("kv.count").as_deref(), Some("() -> u64"));
    assert_eq!(shape("greeter.greet").as_deref(), Some("(string) -> string"));
    assert_eq!(shape("faults.trap").as_deref(), Some("() -> nothing"));

    let off = TestHost::start(config(TransportKind::Ring, None, false), &[("kv", "kv")], &[]).await;
    assert!(
        off.components[0]
            .exports()
            .iter()
            .all(|e| e.fast_path().is_none()),
        "fast_path = false"
    );
}

/// The large payload of the round trips: twice the default ring (64 KiB), small
/// enough that the `Val` path (a `Val` per byte) stays quick in a debug build.
const LARGE: usize = 128 << 10;

/// One round of kv and blob calls, host → component and component → component
/// (through blob-proxy), with large payloads; returns what it saw.
async fn exercise(host: &TestHost, mode: InstanceMode) -> Vec<String> {
    let mut seen = Vec::new();
    let big = pattern(LARGE);
    let (set,): (Result<(), String>,) = host
        .call(KV, "set", ("k".to_string(), big.clone()))
        .await
        .unwrap();
    seen.push(format!("set {set:?}"));
    let (bad,): (Result<(), String>,) = host.call(KV, "set", (String::new(), vec![1])).await.unwrap();
    seen.push(format!("set empty {bad:?}"));
    let (got,): (Option<Vec<u8>>,) = host.call(KV, "get", ("k".to_string(),)).await.unwrap();
    let (range,): (Result<Vec<u8>, String>,) = host
        .call(KV, "range", ("k".to_string(), 10u64, 20u64))
        .await
        .unwrap();
    let (outside,): (Result<Vec<u8>, String>,) = host
        .call(KV, "range", ("k".to_string(), 10u64, 1u64 << 40))
        .await
        .unwrap();
    let (count,): (u64,) = host.call(KV, "count", ()).await.unwrap();
    let (deleted,): (bool,) = host.call(KV, "delete", ("k".to_string(),)).await.unwrap();
    match mode {
        InstanceMode::Reuse => {
            assert!(
                got.as_deref() == Some(&big[..]),
                "reuse: get gives what set stored"
            );
            assert!(range.as_deref() == Ok(&big[10..20]), "reuse: range");
            assert_eq!(count, 1);
            assert!(deleted);
        }
        InstanceMode::Fresh => {
            assert!(got.is_none(), "fresh: get finds nothing");
            assert!(range.is_err());
            assert_eq!(count, 0);
            assert!(!deleted);
        }
    }
    seen.push(format!(
        "get {:?} range {range:?} outside {outside:?} count {count} deleted {deleted}",
        got.map(|v| v.len())
    ));

    // `test` is linked to blob itself, `test-proxy` to blob-proxy, which calls blob.
    for (call_as, via) in [("test", "host"), ("test-proxy", "component")] {
        let cx = CallContext::new(call_as);
        let dispatcher = host.runtime.dispatcher();
        let (fetched,): (Vec<u8>,) = wrpc_transport::InvokeExt::invoke_values_blocking(
            dispatcher,
            cx.clone(),
            BLOB,
            "fetch",
            (LARGE as u32,),
            NO_PATHS,
        )
        .await
        .unwrap();
        assert!(fetched == big, "{via}: fetch");
        let (offset,): (u32,) = wrpc_transport::InvokeExt::invoke_values_blocking(
            dispatcher,
            cx.clone(),
            BLOB,
            "put",
            (Bytes::from(big.clone()),),
            NO_PATHS,
        )
        .await
        .unwrap();
        assert_eq!(offset, LARGE as u32, "{via}: put checks every byte");
        let (echoed,): (Vec<u8>,) = wrpc_transport::InvokeExt::invoke_values_blocking(
            dispatcher,
            cx.clone(),
            BLOB,
            "echo",
            (Bytes::from(big.clone()),),
            NO_PATHS,
        )
        .await
        .unwrap();
        assert!(echoed == big, "{via}: echo");
        let (chunks,): (Vec<Vec<u8>>,) = wrpc_transport::InvokeExt::invoke_values_blocking(
            dispatcher,
            cx,
            BLOB,
            "fetch-chunks",
            (100_000u64, 30_000u32),
            NO_PATHS,
        )
        .await
        .unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [30_000, 30_000, 30_000, 10_000],
            "{via}"
        );
        seen.push(format!("{via}: blob ok"));
    }
    seen
}

/// kv (every fast shape) and blob (fast and `Val` exports, host → component and
/// component → component) give identical results over all four transports, in both
/// instance modes, with the fast path on and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_results_on_every_transport_mode_and_path() {
    let nats = NatsServer::start();
    let mut outcomes = Vec::new();
    for kind in TransportKind::ALL {
        for mode in [InstanceMode::Fresh, InstanceMode::Reuse] {
            for fast_path in [true, false] {
                let component = |id: &str| {
                    let c = ComponentConfig::new(id, wasm(id));
                    if mode == InstanceMode::Reuse {
                        c.reuse(1000)
                    } else {
                        c
                    }
                };
                let host = TestHost::start_with(
                    config(kind, Some(&nats), fast_path),
                    &[component("kv"), component("blob"), component("blob-proxy")],
                    &[
                        ("test", KV, "kv"),
                        ("test", BLOB, "blob"),
                        ("test-proxy", BLOB, "blob-proxy"),
                        ("blob-proxy", BLOB, "blob"),
                    ],
                )
                .await;
                let seen = exercise(&host, mode).await;
                let metrics = host.runtime.dispatcher().metrics();
                assert_eq!(
                    metrics.transport(kind).errors,
                    0,
                    "{kind} {mode:?} fast={fast_path}: {metrics}"
                );
                outcomes.push(((kind, mode, fast_path), seen));
            }
        }
    }
    for mode in [InstanceMode::Fresh, InstanceMode::Reuse] {
        let same: Vec<_> = outcomes.iter().filter(|((_, m, _), _)| *m == mode).collect();
        for pair in same.windows(2) {
            assert_eq!(pair[0].1, pair[1].1, "{:?} vs {:?}", pair[0].0, pair[1].0);
        }
    }
}

/// The raw result bytes of `interface#func` with raw `params`, read to the end.
async fn raw_call(host: &TestHost, interface: &str, func: &str, params: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let (outgoing, mut incoming) = host
        .runtime
        .dispatcher()
        .invoke(
            CallContext::new("test"),
            interface,
            func,
            Bytes::from(params),
            NO_PATHS,
        )
        .await
        .map_err(std::io::Error::other)?;
    drop(outgoing);
    let mut raw = Vec::new();
    incoming.read_to_end(&mut raw).await?;
    Ok(raw)
}

/// An export's results are the same bytes from the fast path as from the `Val` path
/// (whose encoder is wrpc-runtime-wasmtime's), for every kv shape and both arms of
/// each option and result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_results_are_byte_identical_on_both_paths() {
    let mut transcripts = Vec::new();
    for fast_path in [true, false] {
        let kv = ComponentConfig::new("kv", wasm("kv")).reuse(1000);
        let greeter = ComponentConfig::new("greeter", wasm("greeter"));
        let host = TestHost::start_with(
            config(TransportKind::Ring, None, fast_path),
            &[kv, greeter],
            &[("test", KV, "kv"), ("test", GREETER, "greeter")],
        )
        .await;
        let key = |k: &[u8]| {
            let mut p = Vec::new();
            string(k, &mut p);
            p
        };
        let set = |k: &[u8], v: &[u8]| {
            let mut p = key(k);
            string(v, &mut p);
            p
        };
        let range = |k: &[u8], a: u64, b: u64| {
            let mut p = key(k);
            uleb(a, &mut p);
            uleb(b, &mut p);
            p
        };
        let calls: Vec<(&str, &str, Vec<u8>)> = vec![
            (KV, "get", key(b"missing")),
            (KV, "set", set(b"k", &pattern(300))),
            (KV, "set", set(b"", b"x")),
            (KV, "get", key(b"k")),
            (KV, "range", range(b"k", 5, 200)),
            (KV, "range", range(b"k", 5, 1 << 40)),
            (KV, "range", range(b"nope", 0, 1)),
            (KV, "count", Vec::new()),
            (KV, "delete", key(b"k")),
            (KV, "delete", key(b"k")),
            (GREETER, "greet", key("wörld".as_bytes())),
        ];
        let mut transcript = Vec::new();
        for (interface, func, params) in calls {
            transcript.push((func, raw_call(&host, interface, func, params).await.unwrap()));
        }
        transcripts.push(transcript);
    }
    assert_eq!(
        transcripts[0], transcripts[1],
        "fast path (left) and Val path (right) differ"
    );
    // And they are what the wire format says: `get` of a missing key is `none`.
    assert_eq!(transcripts[0][0].1, [0]);
}

/// An import's parameters are the same bytes from the fast path as from the `Val`
/// path: blob-proxy forwards `put`/`echo` to a raw server that records what arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_parameters_are_byte_identical_on_both_paths() {
    let mut received = Vec::new();
    for fast_path in [true, false] {
        let host = TestHost::start(
            config(TransportKind::Ring, None, fast_path),
            &[("blob-proxy", "blob-proxy")],
            &[("test", BLOB, "blob-proxy"), ("blob-proxy", BLOB, "recorder")],
        )
        .await;
        let dispatcher = host.runtime.dispatcher().clone();
        dispatcher.add_component("recorder");
        let server = dispatcher.servers("recorder").await.unwrap().remove(0);
        let mut calls = server
            .serve(BLOB, "put", Vec::<Box<[Option<usize>]>>::new())
            .await
            .unwrap();
        let recorder = tokio::spawn(async move {
            let (_cx, mut outgoing, mut incoming) = calls.next().await.unwrap().unwrap();
            let mut params = vec![0u8; 5 + 70_000];
            incoming.read_exact(&mut params[..3]).await.unwrap(); // LEB128 of 70 000: 3 bytes
            incoming.read_exact(&mut params[3..3 + 70_000]).await.unwrap();
            params.truncate(3 + 70_000);
            outgoing.write_all(&[42]).await.unwrap(); // u32 42
            outgoing.shutdown().await.unwrap();
            params
        });
        let (offset,): (u32,) = host
            .call(BLOB, "put", (Bytes::from(pattern(70_000)),))
            .await
            .unwrap();
        assert_eq!(offset, 42);
        received.push(recorder.await.unwrap());
    }
    assert!(
        received[0] == received[1],
        "fast path and Val path sent different parameters"
    );
    let mut expected = Vec::new();
    string(&pattern(70_000), &mut expected);
    assert!(received[0] == expected);
}

/// A host on the `Val` path and a host on the fast path call each other over NATS:
/// blob-proxy on one, blob on the other, both directions, same results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_on_different_paths_interoperate_over_nats() {
    let nats = NatsServer::start();
    for proxy_fast in [true, false] {
        let mut proxy_config = config(TransportKind::Ring, Some(&nats), proxy_fast);
        proxy_config.lattice = format!("mixed{proxy_fast}");
        let mut blob_config = proxy_config.clone();
        blob_config.runtime.fast_path = !proxy_fast;
        let blob_host = TestHost::start(blob_config, &[("blob", "blob")], &[]).await;
        let proxy_host = TestHost::start(
            proxy_config,
            &[("blob-proxy", "blob-proxy")],
            &[("test", BLOB, "blob-proxy"), ("blob-proxy", BLOB, "blob")],
        )
        .await;
        let big = pattern(LARGE);
        let (fetched,): (Vec<u8>,) = proxy_host.call(BLOB, "fetch", (LARGE as u32,)).await.unwrap();
        assert!(fetched == big, "proxy fast={proxy_fast}: fetch");
        let (offset,): (u32,) = proxy_host
            .call(BLOB, "put", (Bytes::from(big.clone()),))
            .await
            .unwrap();
        assert_eq!(offset, LARGE as u32, "proxy fast={proxy_fast}: put");
        let metrics = proxy_host.runtime.dispatcher().metrics();
        assert_eq!(metrics.transport(TransportKind::Nats).calls, 2, "{metrics}");
        assert_eq!(metrics.transport(TransportKind::Nats).errors, 0, "{metrics}");
        drop(blob_host);
    }
}

/// Malformed parameters are a clear error for the caller, never a panic: a string
/// that is not UTF-8, a length past the end of the parameters, a bad option tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_parameters_are_clear_errors() {
    let host = TestHost::start(
        config(TransportKind::Ring, None, true),
        &[("kv", "kv")],
        &[("test", KV, "kv")],
    )
    .await;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("get", vec![2, 0xff, 0xfe], "not UTF-8"),
        ("get", vec![10, b'a'], "ended inside the parameters"),
        (
            "range",
            vec![
                1, b'k', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0,
            ],
            "overflows",
        ),
    ];
    for (func, params, want) in cases {
        let err = raw_call(&host, KV, func, params).await.unwrap_err();
        assert!(err.to_string().contains(want), "{func}: {err}");
    }
    // And the component still serves.
    let (count,): (u64,) = host.call(KV, "count", ()).await.unwrap();
    assert_eq!(count, 0);
}

/// What `Ring`'s serve streams yield.
type RingInvocation = (
    <wrpc_ring::Ring as wrpc_transport::Serve>::Context,
    <wrpc_ring::Ring as wrpc_transport::Serve>::Outgoing,
    <wrpc_ring::Ring as wrpc_transport::Serve>::Incoming,
);

/// Calls `func` of `interface` on `component` over `ring` (served through `calls`),
/// writing the parameters as `prefix` and then `body` in 64 KiB pieces, so that the
/// callee has to gather them; returns how the callee's call, the caller's writes and
/// its read of the results ended, and the result bytes.
async fn call_in_pieces(
    ring: &wrpc_ring::Ring,
    calls: &mut (impl futures::Stream<Item = anyhow::Result<RingInvocation>> + Unpin),
    component: std::sync::Arc<wrpc_ring::runtime::Component>,
    (interface, func): (&'static str, &'static str),
    prefix: Vec<u8>,
    body: Vec<u8>,
) -> (
    anyhow::Result<()>,
    std::io::Result<()>,
    std::io::Result<()>,
    Vec<u8>,
) {
    let (mut out, mut results) = ring
        .invoke(None, interface, func, Bytes::new(), NO_PATHS)
        .await
        .unwrap();
    let (_cx, outgoing, incoming) = calls.next().await.unwrap().unwrap();
    let server = tokio::spawn(async move { component.call(interface, func, incoming, outgoing).await });
    let writer = async move {
        out.write_all(&prefix).await?;
        for piece in body.chunks(64 * 1024) {
            out.write_all(piece).await?;
        }
        out.shutdown().await
    };
    let mut raw = Vec::new();
    let (written, read) = tokio::join!(writer, results.read_to_end(&mut raw));
    (server.await.unwrap(), written, read.map(drop), raw)
}

/// Parameters that arrive in pieces (as over NATS) are gathered only up to the callee's
/// memory limit, which the guest could not exceed anyway: a larger `list<u8>` fails
/// the call with a clear error as soon as the gathered bytes pass the limit, instead of
/// growing the host's buffer to whatever length the peer announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gathered_parameters_stop_at_the_memory_limit() {
    let mut config = config(TransportKind::Ring, None, true);
    config.limits.max_memory = wrpc_ring::host::ByteSize(4 << 20);
    let runtime = common::host::runtime(&config).await;
    let blob = runtime.load_file("blob", wasm("blob")).unwrap();
    let ring = wrpc_ring::Ring::new(wrpc_ring::RingPool::new(64 * 1024, 8));
    let mut calls = ring
        .serve(BLOB, "put", Vec::<Box<[Option<usize>]>>::new())
        .await
        .unwrap();
    for (len, fits) in [(256 << 10, true), (8 << 20, false)] {
        // The length first, then the bytes in pieces: the callee has to gather them.
        let mut prefix = Vec::new();
        uleb(len as u64, &mut prefix);
        let (served, written, read, raw) = call_in_pieces(
            &ring,
            &mut calls,
            blob.clone(),
            (BLOB, "put"),
            prefix,
            pattern(len),
        )
        .await;
        if fits {
            served.unwrap();
            written.unwrap();
            read.unwrap();
            assert_eq!(raw, [0x80, 0x80, 0x10], "put's offset: 256 KiB as a u32 LEB128");
        } else {
            let err = format!("{:#}", served.unwrap_err());
            assert!(
                err.contains("larger than the component's memory limit (4194304 bytes)"),
                "{err}"
            );
            assert!(read.is_err(), "the caller's results end with the callee's abort");
        }
    }
    assert_eq!(ring.rings_in_use(), 0);
}

/// On the `Val` path (here: every export, `fast_path = false`), wrpc-runtime-wasmtime's
/// decoder reserves room for a list's announced element count before any element
/// arrives, and a failed allocation aborts the process. The host walks the parameters
/// first: a list that announces more elements than the callee's memory could hold is
/// a clear error naming the limit, for the caller and for the server; the component
/// goes on serving; and parameters that arrive in pieces still decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn val_path_lists_are_bounded_before_they_are_decoded() {
    let mut config = config(TransportKind::Ring, None, false);
    config.limits.max_memory = wrpc_ring::host::ByteSize(4 << 20);
    let runtime = common::host::runtime(&config).await;
    let blob = runtime.load_file("blob", wasm("blob")).unwrap();
    let kv = runtime.load_file("kv", wasm("kv")).unwrap();
    let ring = wrpc_ring::Ring::new(wrpc_ring::RingPool::new(64 * 1024, 8));
    let mut puts = ring
        .serve(BLOB, "put", Vec::<Box<[Option<usize>]>>::new())
        .await
        .unwrap();
    let mut sets = ring
        .serve(KV, "set", Vec::<Box<[Option<usize>]>>::new())
        .await
        .unwrap();
    let huge = |key: Option<&[u8]>| {
        let mut params = Vec::new();
        if let Some(key) = key {
            string(key, &mut params);
        }
        uleb(u64::from(u32::MAX), &mut params);
        (params, Vec::new())
    };
    let piecewise = |len: usize| {
        let mut prefix = Vec::new();
        uleb(len as u64, &mut prefix);
        (prefix, pattern(len))
    };
    // (function, (the parameters' first bytes, the rest, sent in pieces), result or error)
    type Case<'a> = (&'a str, (Vec<u8>, Vec<u8>), Result<&'a [u8], &'a str>);
    let cases: [Case; 4] = [
        (
            "put",
            huge(None),
            Err(
                "parameter 0 announces a list of 4294967295 elements, which cannot fit in the component's memory limit (4194304 bytes)",
            ),
        ),
        (
            "set",
            huge(Some(b"key")),
            Err("parameter 1 announces a list of 4294967295 elements"),
        ),
        ("put", piecewise(256 << 10), Ok(&[0x80, 0x80, 0x10])),
        (
            "put",
            piecewise(8 << 20),
            Err("the component's memory limit (4194304 bytes)"),
        ),
    ];
    for (func, (prefix, body), want) in cases {
        let (interface, component, calls) = match func {
            "put" => (BLOB, blob.clone(), &mut puts),
            _ => (KV, kv.clone(), &mut sets),
        };
        let (served, _written, read, raw) =
            call_in_pieces(&ring, calls, component, (interface, func), prefix, body).await;
        match want {
            Ok(want) => {
                served.unwrap();
                read.unwrap();
                assert_eq!(raw, want, "{func}'s result");
            }
            Err(want) => {
                let err = format!("{:#}", served.unwrap_err());
                assert!(err.contains(want), "{func}: {err}");
                assert!(
                    read.is_err(),
                    "the caller's results end with the callee's failure"
                );
            }
        }
    }
    assert_eq!(ring.rings_in_use(), 0);

    // Served by a host, the caller reads the reason, and the component goes on serving.
    let host = TestHost::start(config, &[("kv", "kv")], &[("test", KV, "kv")]).await;
    let (params, _) = huge(Some(b"key"));
    let err = raw_call(&host, KV, "set", params).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot fit in the component's memory limit"),
        "{err}"
    );
    let (count,): (u64,) = host.call(KV, "count", ()).await.unwrap();
    assert_eq!(count, 0);
}

/// The same bound on an import's results, which the `Val` polyfill decodes: a callee
/// (a raw server here, a NATS peer in general) that answers blob-proxy's forwarded
/// call with a list of ~4 billion elements fails that call with a clear error instead
/// of aborting the host. `fetch-chunks` (`list<list<u8>>`) takes the `Val` path even
/// with the fast path on; `fetch` (`list<u8>`) with it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn val_path_import_results_are_bounded_before_they_are_decoded() {
    for (fast_path, func) in [(true, "fetch-chunks"), (false, "fetch")] {
        let host = TestHost::start(
            config(TransportKind::Ring, None, fast_path),
            &[("blob-proxy", "blob-proxy")],
            &[("test", BLOB, "blob-proxy"), ("blob-proxy", BLOB, "liar")],
        )
        .await;
        let dispatcher = host.runtime.dispatcher().clone();
        dispatcher.add_component("liar");
        let server = dispatcher.servers("liar").await.unwrap().remove(0);
        let mut calls = server
            .serve(BLOB, func, Vec::<Box<[Option<usize>]>>::new())
            .await
            .unwrap();
        let liar = tokio::spawn(async move {
            for _ in 0..2 {
                let (_cx, mut outgoing, _incoming) = calls.next().await.unwrap().unwrap();
                let mut results = Vec::new();
                uleb(u64::from(u32::MAX), &mut results);
                outgoing.write_all(&results).await.unwrap();
                outgoing.shutdown().await.unwrap();
            }
        });
        for _ in 0..2 {
            let err = match func {
                "fetch" => host.call::<_, (Bytes,)>(BLOB, func, (16u32,)).await.map(drop),
                _ => host
                    .call::<_, (Vec<Bytes>,)>(BLOB, func, (16u64, 4u32))
                    .await
                    .map(drop),
            }
            .unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains("result 0 announces a list of 4294967295 elements, which cannot fit in the component's memory limit"),
                "{func}: {err}"
            );
        }
        liar.await.unwrap();
    }
}
