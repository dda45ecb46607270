//! Semantics of the `Ring` wRPC transport, exercised through wRPC's own typed helpers
//! (`InvokeExt::invoke_values`, `ServeExt::serve_values`) and through the raw
//! `Invoke`/`Serve`/`Index` traits where a test needs to misbehave on purpose.

use std::io;
use std::pin::{Pin, pin};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{Stream, StreamExt as _, stream};
use tokio::io::{AsyncBufReadExt as _, AsyncRead as _, AsyncReadExt as _, AsyncWriteExt as _};
use wrpc_ring::transport::{Incoming, Outgoing};
use wrpc_ring::{Aborted, Headers, Ring, RingPool, TransportError};
use wrpc_transport::{Index as _, Invoke, InvokeExt as _, Serve, ServeExt as _};

#[path = "common/ring.rs"]
mod ring_helpers;

use ring_helpers::{all_rings_returned, within};

const NO_PATHS: &[&[Option<usize>]] = &[];

type ByteStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;
type StringFuture = Pin<Box<dyn Future<Output = String> + Send>>;

fn ring() -> Ring {
    Ring::new(RingPool::new(64 * 1024, 1024))
}

fn serve_paths(paths: &[&[Option<usize>]]) -> Vec<Box<[Option<usize>]>> {
    paths.iter().map(|path| Box::from(*path)).collect()
}

/// `unwrap_err` for results whose value has no `Debug` (the typed helpers' I/O futures).
fn failed<T, E>(result: Result<T, E>) -> E {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(err) => err,
    }
}

fn aborted_reason(err: &io::Error) -> Option<&str> {
    err.get_ref()?.downcast_ref::<Aborted>().map(Aborted::reason)
}

/// A raw server: yields the root handles of the next invocation.
async fn next_raw(
    invocations: &mut (impl Stream<Item = anyhow::Result<(Option<Headers>, Outgoing, Incoming)>> + Unpin),
) -> (Option<Headers>, Outgoing, Incoming) {
    within("next invocation", invocations.next())
        .await
        .expect("serve stream ended")
        .expect("invocation failed")
}

#[tokio::test]
async fn plain_values_and_context_round_trip() -> anyhow::Result<()> {
    let ring = ring().with_prefix("default.comp-b");
    let invocations = ring
        .serve_values::<(String, u32), (String, u64)>("test:echo/echo", "shout", serve_paths(&[]))
        .await?;
    let server = tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some(invocation) = invocations.next().await {
            let (cx, (text, n), _, respond) = invocation?;
            let cx = cx.context("no context")?;
            let from = format!(
                "{}/{}",
                cx.get("source-id").unwrap_or("-"),
                cx.get("link-name").unwrap_or("-")
            );
            tokio::spawn(respond((
                format!("{} from {from}", text.to_uppercase()),
                u64::from(n) * 2,
            )));
        }
        anyhow::Ok(())
    });

    for i in 0..100_u32 {
        let cx: Headers = [("source-id", "comp-a"), ("link-name", "default")]
            .into_iter()
            .collect();
        let ((text, n), io) = within(
            "invoke",
            ring.invoke_values::<_, _, (String, u64)>(
                Some(cx),
                "test:echo/echo",
                "shout",
                ("hi".to_string(), i),
                NO_PATHS,
            ),
        )
        .await?;
        assert!(io.is_none(), "no async values, no I/O future");
        assert_eq!(text, "HI from comp-a/default");
        assert_eq!(n, u64::from(i) * 2);
    }
    all_rings_returned(&ring).await;
    let stats = ring.pool().stats();
    assert!(stats.misses <= 4, "a warm pool is reused: {stats:?}");
    server.abort();
    Ok(())
}

#[tokio::test]
async fn registrations_of_one_target_are_balanced_round_robin() -> anyhow::Result<()> {
    let ring = ring().with_prefix("default.comp-b");
    let mut servers = Vec::new();
    for id in ["a", "b", "c"] {
        let invocations = ring
            .serve_values::<(), (String,)>("test:rr/rr", "who", serve_paths(&[]))
            .await?;
        servers.push(tokio::spawn(async move {
            let mut invocations = pin!(invocations);
            while let Some(invocation) = invocations.next().await {
                let (_, (), _, respond) = invocation?;
                tokio::spawn(respond((id.to_string(),)));
            }
            anyhow::Ok(())
        }));
    }
    let mut seen = String::new();
    for _ in 0..6 {
        let ((id,), _) = ring
            .invoke_values::<_, _, (String,)>(None, "test:rr/rr", "who", (), NO_PATHS)
            .await?;
        seen.push_str(&id);
    }
    assert_eq!(seen, "abcabc");
    for server in servers {
        server.abort();
    }
    Ok(())
}

#[tokio::test]
async fn no_server_fails_at_once_naming_prefix_instance_and_function() -> anyhow::Result<()> {
    let base = ring();
    let ring = base.with_prefix("default.comp-b");
    let _served = ring.serve("test:x/y", "f", serve_paths(&[])).await?;
    assert!(ring.serves("test:x/y", "f"));

    // Another prefix, instance or function: nothing serves it.
    let other = base.with_prefix("default.comp-c");
    assert!(!other.serves("test:x/y", "f"));
    for (ring, instance, func) in [
        (&other, "test:x/y", "f"),
        (&ring, "test:x/z", "f"),
        (&ring, "test:x/y", "g"),
    ] {
        let err = within(
            "invoke",
            ring.invoke(None, instance, func, Bytes::new(), NO_PATHS),
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(ring.prefix()) && message.contains(instance) && message.contains(func),
            "{message}"
        );
        assert_eq!(
            err.downcast_ref::<TransportError>(),
            Some(&TransportError::NoServer {
                prefix: ring.prefix().to_string(),
                instance: instance.to_string(),
                func: func.to_string(),
            })
        );
    }
    // Through the typed helper as well.
    let err = failed(
        other
            .invoke_values::<_, _, (String,)>(None, "test:x/y", "f", (), NO_PATHS)
            .await,
    );
    assert!(
        format!("{err:#}")
            .contains("no server for function `f` of instance `test:x/y` under prefix `default.comp-c`")
    );
    Ok(())
}

#[tokio::test]
async fn dropped_serve_stream_fails_later_and_queued_invocations() -> anyhow::Result<()> {
    let ring = ring();
    let invocations = ring.serve("test:s/s", "f", serve_paths(&[])).await?;

    // Queued: delivered to the registration, never taken by the server.
    let (_out, mut queued) = ring
        .invoke(None, "test:s/s", "f", Bytes::from_static(b"x"), NO_PATHS)
        .await?;
    let typed = tokio::spawn({
        let ring = ring.clone();
        async move {
            ring.invoke_values::<_, _, (String,)>(None, "test:s/s", "f", ("y".to_string(),), NO_PATHS)
                .await
                .map(|(results, _)| results)
        }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await; // let the typed caller deliver its invocation
    }
    drop(invocations);

    assert!(!ring.serves("test:s/s", "f"));
    let err = ring
        .invoke(None, "test:s/s", "f", Bytes::new(), NO_PATHS)
        .await
        .unwrap_err();
    assert!(
        matches!(err.downcast_ref(), Some(TransportError::NoServer { .. })),
        "{err}"
    );

    let mut buf = Vec::new();
    let err = within("queued read", queued.read_to_end(&mut buf))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    let reason = aborted_reason(&err).unwrap();
    assert!(
        reason.contains("stopped serving") && reason.contains("test:s/s.f"),
        "{reason}"
    );

    let err = failed(within("typed invoke", typed).await?);
    assert!(format!("{err:#}").contains("stopped serving"), "{err:#}");
    drop((_out, queued));
    all_rings_returned(&ring).await;
    Ok(())
}

#[tokio::test]
async fn handler_dropping_its_results_fails_the_caller() -> anyhow::Result<()> {
    let ring = ring();
    // Raw: the handler drops its `Outgoing` without writing.
    let mut invocations = Box::pin(ring.serve("test:h/h", "raw", serve_paths(&[])).await?);
    let (mut out, mut results) = ring
        .invoke(None, "test:h/h", "raw", Bytes::from_static(b"p"), NO_PATHS)
        .await?;
    out.shutdown().await?;
    let (_, outgoing, incoming) = next_raw(&mut invocations).await;
    drop((outgoing, incoming));
    let mut buf = Vec::new();
    let err = within("read", results.read_to_end(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    assert!(
        aborted_reason(&err)
            .unwrap()
            .contains("dropped its results without writing them")
    );

    // Typed: the handler drops the `respond` closure.
    let typed = ring
        .serve_values::<(String,), (String,)>("test:h/h", "typed", serve_paths(&[]))
        .await?;
    let server = tokio::spawn(async move {
        let mut typed = pin!(typed);
        while let Some(invocation) = typed.next().await {
            let (_, _, _, respond) = invocation?;
            drop(respond);
        }
        anyhow::Ok(())
    });
    let err = failed(
        within(
            "typed invoke",
            ring.invoke_values::<_, _, (String,)>(None, "test:h/h", "typed", ("x".to_string(),), NO_PATHS),
        )
        .await,
    );
    assert!(
        format!("{err:#}").contains("dropped its results without writing them"),
        "{err:#}"
    );
    server.abort();
    drop((out, results, invocations));
    all_rings_returned(&ring).await;
    Ok(())
}

#[tokio::test]
async fn caller_cancelling_breaks_the_callees_writes_and_returns_rings() -> anyhow::Result<()> {
    let ring = Ring::new(RingPool::new(1024, 64));
    let mut invocations = Box::pin(ring.serve("test:c/c", "f", serve_paths(&[])).await?);

    // The caller drops its handles; the callee writes a result larger than a ring.
    let (out, results) = ring
        .invoke(None, "test:c/c", "f", Bytes::new(), [[Some(0)].as_slice()])
        .await?;
    let (_, mut outgoing, _incoming) = next_raw(&mut invocations).await;
    outgoing.write_all(b"partial").await?;
    let mut stream = outgoing.index(&[0])?;
    drop((out, results));
    let err = within("write after cancel", outgoing.write_all(&[0; 4096]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    // A sub-stream the caller never indexed breaks too (it would otherwise fill up).
    let err = within("sub-stream write after cancel", stream.write_all(&[0; 4096]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    drop((outgoing, stream, _incoming));
    all_rings_returned(&ring).await;

    // The caller cancels while the callee is writing into a full ring.
    let (out, results) = ring.invoke(None, "test:c/c", "f", Bytes::new(), NO_PATHS).await?;
    let (_, mut outgoing, incoming) = next_raw(&mut invocations).await;
    let writer = tokio::spawn(async move { outgoing.write_all(&vec![1; 1 << 20]).await });
    tokio::task::yield_now().await;
    drop((out, results));
    let err = within("blocked write", writer).await?.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    drop(incoming);
    all_rings_returned(&ring).await;

    // Typed: the caller drops the invoke_values future while the handler works.
    let typed = ring
        .serve_values::<(), (Bytes,)>("test:c/c", "typed", serve_paths(&[]))
        .await?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let mut typed = pin!(typed);
        let (_, (), _, respond) = typed.next().await.context("no invocation")??;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = done_tx.send(respond((Bytes::from(vec![7; 1 << 20]),)).await);
        anyhow::Ok(())
    });
    let call = ring.invoke_values::<_, _, (Bytes,)>(None, "test:c/c", "typed", (), NO_PATHS);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), call)
            .await
            .is_err()
    );
    let err = within("typed respond", done_rx).await?.unwrap_err();
    let io = err.chain().find_map(|e| e.downcast_ref::<io::Error>()).unwrap();
    assert_eq!(io.kind(), io::ErrorKind::BrokenPipe, "{err:#}");
    server.await??;
    all_rings_returned(&ring).await;

    // Cancelled while still queued: the server never sees that invocation.
    let (out, results) = ring.invoke(None, "test:c/c", "f", Bytes::new(), NO_PATHS).await?;
    drop((out, results));
    let (_out, mut results) = ring.invoke(None, "test:c/c", "f", Bytes::new(), NO_PATHS).await?;
    let (_, mut outgoing, _incoming) = next_raw(&mut invocations).await;
    outgoing.write_all(b"live").await?; // the live one: its reader is there
    drop(outgoing);
    let mut got = String::new();
    results.read_to_string(&mut got).await?;
    assert_eq!(got, "live");
    drop((_out, results, _incoming));
    all_rings_returned(&ring).await;
    Ok(())
}

/// `stream<u8>` and `future<string>` both ways: the callee upper-cases a parameter
/// stream into a result stream and answers a future.
#[tokio::test]
async fn async_values_stream_and_future() -> anyhow::Result<()> {
    let ring = ring();
    let invocations = ring
        .serve_values::<(ByteStream, StringFuture), (ByteStream, StringFuture)>(
            "test:async/async",
            "upper",
            serve_paths(&[&[Some(0)], &[Some(1)]]),
        )
        .await?;
    let server = tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some(invocation) = invocations.next().await {
            let (_, (input, name), rx, respond) = invocation?;
            if let Some(rx) = rx {
                tokio::spawn(rx);
            }
            let output: ByteStream = Box::pin(input.map(|chunk| Bytes::from(chunk.to_ascii_uppercase())));
            let greeting: StringFuture = Box::pin(async move { format!("hello {}", name.await) });
            tokio::spawn(respond((output, greeting)));
        }
        anyhow::Ok(())
    });

    for round in 0..20 {
        let chunks: Vec<Bytes> = (0..50)
            .map(|i| Bytes::from(format!("chunk-{round}-{i};")))
            .collect();
        let expected: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect();
        let input: ByteStream = Box::pin(stream::iter(chunks));
        let name: StringFuture = Box::pin(async { "ring".to_string() });
        let ((output, greeting), io) = within(
            "invoke",
            ring.invoke_values::<_, _, (ByteStream, StringFuture)>(
                None,
                "test:async/async",
                "upper",
                (input, name),
                [[Some(0)].as_slice(), [Some(1)].as_slice()],
            ),
        )
        .await?;
        let io = tokio::spawn(io.context("async values need I/O")?);
        let got: Vec<Bytes> = within("output stream", output.collect()).await;
        assert_eq!(got.concat(), expected.as_bytes());
        assert_eq!(within("future", greeting).await, "hello ring");
        within("io", io).await??;
    }
    all_rings_returned(&ring).await;
    server.abort();
    Ok(())
}

#[tokio::test]
async fn undeclared_paths_are_errors_naming_the_path() -> anyhow::Result<()> {
    let ring = ring().with_prefix("p");
    // The callee returns a stream, but the caller declares no result paths.
    let invocations = ring
        .serve_values::<(), (ByteStream,)>("test:u/u", "f", serve_paths(&[]))
        .await?;
    let server = tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        let (_, (), _, respond) = invocations.next().await.context("no invocation")??;
        let output: ByteStream = Box::pin(stream::iter([Bytes::from_static(b"data")]));
        respond((output,)).await
    });
    let ((output,), io) = within(
        "invoke",
        ring.invoke_values::<_, _, (ByteStream,)>(None, "test:u/u", "f", (), NO_PATHS),
    )
    .await?;
    let err = within("client io", io.context("io")?).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message
            .contains("async value path [0] of the results of `p.test:u/u.f` was not declared by the caller"),
        "{message}"
    );
    drop(output);
    let err = within("server", server).await?.unwrap_err();
    assert!(format!("{err:#}").contains("path [0]"), "{err:#}");

    // Raw: prefixes of declared paths can be indexed, other paths cannot, and only
    // declared paths carry data.
    let mut invocations = Box::pin(
        ring.serve("test:u/u", "g", serve_paths(&[&[Some(1), None, Some(2)]]))
            .await?,
    );
    let (out, _results) = ring.invoke(None, "test:u/u", "g", Bytes::new(), NO_PATHS).await?;
    let (_, _outgoing, incoming) = next_raw(&mut invocations).await;
    let err = out.index(&[0]).unwrap_err();
    assert!(err.to_string().contains("path [0] of the parameters of `p.test:u/u.g` was not declared by the callee in `serve` (declared: [[1, *, 2]])"), "{err}");
    let mut node = out.index(&[1])?.index(&[5])?;
    let err = node.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("[1, 5]"), "{err}");
    let mut leaf = node.index(&[2])?;
    leaf.write_all(b"leaf").await?;
    drop(leaf);
    let mut got = String::new();
    incoming.index(&[1, 5, 2])?.read_to_string(&mut got).await?;
    assert_eq!(got, "leaf");
    assert!(out.index(&[]).is_err());
    Ok(())
}

/// Wildcard paths: every element gets a ring of its own, and both ends meet on it
/// whichever indexes first.
#[tokio::test]
async fn wildcard_paths_get_separate_rings_met_in_any_order() -> anyhow::Result<()> {
    let ring = Ring::new(RingPool::new(64, 64));
    let mut invocations = Box::pin(
        ring.serve("test:w/w", "f", serve_paths(&[&[Some(0), None]]))
            .await?,
    );
    let (out, _results) = ring.invoke(None, "test:w/w", "f", Bytes::new(), NO_PATHS).await?;
    let (_, _outgoing, incoming) = next_raw(&mut invocations).await;

    // Element 2 is read before anyone writes it: the reader leases the ring.
    let reader2 = tokio::spawn({
        let mut r = incoming.index(&[0, 2])?;
        async move {
            let mut s = String::new();
            r.read_to_string(&mut s).await.map(|_| s)
        }
    });
    tokio::task::yield_now().await;
    // Elements 0 and 1 are written (more than a 64-byte ring each) concurrently.
    let writers: Vec<_> = (0..3)
        .map(|i| {
            let mut w = out.index(&[0, i]).unwrap();
            tokio::spawn(async move { w.write_all(format!("{i}").repeat(1000).as_bytes()).await })
        })
        .collect();
    let mut first = None;
    for i in [1, 0] {
        let mut s = String::new();
        let mut reader = incoming.index(&[0, i])?;
        within("read", reader.read_to_string(&mut s)).await?;
        assert_eq!(s, format!("{i}").repeat(1000));
        first.get_or_insert(reader);
    }
    assert_eq!(within("reader 2", reader2).await??, "2".repeat(1000));
    for w in writers {
        w.await??;
    }
    // A second reader of an element whose reader is still held is refused.
    let err = incoming.index(&[0, 1])?.read(&mut [0; 1]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    drop(first);
    Ok(())
}

/// The `params` bytes reach the callee by reference count: `fill_buf` on the callee's
/// `Incoming` returns the caller's very buffer, then what the caller writes later.
#[tokio::test]
async fn params_reach_the_callee_by_reference_then_the_ring() -> anyhow::Result<()> {
    let ring = ring();
    let mut invocations = Box::pin(ring.serve("test:z/z", "f", serve_paths(&[])).await?);
    let params = Bytes::from(vec![5; 100_000]);
    let (mut out, mut results) = ring
        .invoke(None, "test:z/z", "f", params.clone(), NO_PATHS)
        .await?;
    let (_, mut outgoing, mut incoming) = next_raw(&mut invocations).await;

    let head = incoming.fill_buf().await?;
    assert_eq!(head.as_ptr(), params.as_ptr(), "no copy");
    assert_eq!(head.len(), params.len());
    incoming.consume(params.len());

    out.write_all(b" and more").await?;
    out.shutdown().await?;
    let mut rest = String::new();
    incoming.read_to_string(&mut rest).await?;
    assert_eq!(rest, " and more");

    outgoing.write_all(b"done").await?;
    drop(outgoing);
    let mut got = String::new();
    results.read_to_string(&mut got).await?;
    assert_eq!(got, "done");
    drop((out, results, incoming));
    all_rings_returned(&ring).await;
    Ok(())
}

/// 10,000 invocations in flight at once on a two-worker runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_invocations() -> anyhow::Result<()> {
    const N: u32 = 10_000;
    // All 10,000 may be queued at once: the bound is raised to match.
    let ring = Ring::new(RingPool::new(4 * 1024, 16 * 1024)).with_max_queued(N as usize);
    let invocations = ring
        .serve_values::<(u32, String), (u64, String)>("test:many/many", "f", serve_paths(&[]))
        .await?;
    let server = tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some(invocation) = invocations.next().await {
            let (_, (n, s), _, respond) = invocation?;
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                respond((u64::from(n) * 3, format!("{s}!"))).await
            });
        }
        anyhow::Ok(())
    });
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N as usize));
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let ring = ring.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await; // all 10,000 start together
                let ((n, s), _) = ring
                    .invoke_values::<_, _, (u64, String)>(
                        None,
                        "test:many/many",
                        "f",
                        (i, i.to_string()),
                        NO_PATHS,
                    )
                    .await?;
                anyhow::ensure!(
                    n == u64::from(i) * 3 && s == format!("{i}!"),
                    "wrong result for {i}: {n} {s}"
                );
                anyhow::Ok(())
            })
        })
        .collect();
    within("10,000 invocations", async {
        for call in calls {
            call.await??;
        }
        anyhow::Ok(())
    })
    .await?;
    all_rings_returned(&ring).await;
    server.abort();
    Ok(())
}

/// Defect 8: a handler writes its root results, indexes a result sub-stream and panics
/// before writing to it. Whether the caller's reader binds before the panic or after it,
/// it gets the abort of a writer dropped while panicking, never a clean (empty) end.
#[tokio::test]
async fn an_unwritten_sub_stream_of_a_panicking_handler_aborts_every_reader() -> anyhow::Result<()> {
    for reader_first in [true, false] {
        let ring = ring();
        let mut invocations = Box::pin(ring.serve("test:panic/panic", "f", serve_paths(&[])).await?);
        let (out, mut results) = ring
            .invoke(
                None,
                "test:panic/panic",
                "f",
                Bytes::new(),
                [[Some(0)].as_slice()],
            )
            .await?;
        drop(out);
        let (_, mut outgoing, _incoming) = next_raw(&mut invocations).await;
        let early = if reader_first {
            let mut stream = results.index(&[0])?;
            let (bound, bound_rx) = tokio::sync::oneshot::channel();
            let early = tokio::spawn(async move {
                let mut got = Vec::new();
                let mut first = [0; 1];
                // Binds the reader (nothing is written yet), then reads to the end.
                let read = std::future::poll_fn(|cx| {
                    let mut buf = tokio::io::ReadBuf::new(&mut first);
                    let poll = Pin::new(&mut stream).poll_read(cx, &mut buf);
                    std::task::Poll::Ready(poll)
                })
                .await;
                let _ = bound.send(());
                if let std::task::Poll::Ready(read) = read {
                    read?;
                    return Ok(first.to_vec());
                }
                stream.read_to_end(&mut got).await.map(|_| got)
            });
            bound_rx.await?;
            Some(early)
        } else {
            None
        };
        let handler = tokio::spawn(async move {
            outgoing.write_all(&[0]).await.unwrap();
            let _data = outgoing.index(&[0]).unwrap();
            drop(outgoing);
            panic!("the handler fails before writing its stream");
        });
        assert!(handler.await.unwrap_err().is_panic());
        within("root results", results.read_exact(&mut [0; 1])).await?;
        let read = match early {
            Some(early) => within("early reader", early).await?,
            None => {
                let mut stream = results.index(&[0])?;
                let mut got = Vec::new();
                within("late reader", stream.read_to_end(&mut got))
                    .await
                    .map(|_| got)
            }
        };
        let err = match read {
            Ok(got) => panic!(
                "reader first: {reader_first}: a clean end after {} bytes",
                got.len()
            ),
            Err(err) => err,
        };
        assert_eq!(
            err.kind(),
            io::ErrorKind::ConnectionAborted,
            "reader first: {reader_first}: {err}"
        );
        let reason = aborted_reason(&err).unwrap_or_default();
        assert!(
            reason.contains("panicking"),
            "reader first: {reader_first}: {reason}"
        );
        drop(results);
        all_rings_returned(&ring).await;
    }
    Ok(())
}

/// Defect 8 through wRPC's typed helpers: a `-> stream<u8>` whose producer panics before
/// its first chunk surfaces as an I/O error, not as an empty stream with `Ok` I/O.
#[tokio::test]
async fn a_typed_stream_result_whose_producer_panics_is_an_io_error() -> anyhow::Result<()> {
    let ring = ring();
    let invocations = ring
        .serve_values::<(), (ByteStream,)>("test:panic/typed", "f", serve_paths(&[]))
        .await?;
    let server = tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some(invocation) = invocations.next().await {
            let (_, (), _, respond) = invocation?;
            let producer: ByteStream = Box::pin(stream::poll_fn(|_| -> std::task::Poll<Option<Bytes>> {
                panic!("the producer fails before its first chunk")
            }));
            tokio::spawn(respond((producer,)));
        }
        anyhow::Ok(())
    });
    let ((chunks,), io) = within(
        "invoke",
        ring.invoke_values::<_, _, (ByteStream,)>(None, "test:panic/typed", "f", (), [[Some(0)].as_slice()]),
    )
    .await?;
    let io = io.context("a stream result has I/O")?;
    let (received, io) = within(
        "stream and I/O",
        futures::future::join(chunks.collect::<Vec<Bytes>>(), io),
    )
    .await;
    assert!(
        received.iter().all(Bytes::is_empty),
        "no data from a producer that panicked"
    );
    let err = failed(io);
    assert!(format!("{err:#}").contains("panicking"), "{err:#}");
    all_rings_returned(&ring).await;
    server.abort();
    Ok(())
}

/// `with_max_call_streams` bounds the table even for handles indexed and dropped
/// without I/O (each leaves a mark for its peer): the one past the bound is refused at
/// `index`, naming target, path and bound, and a settled path makes room again.
#[tokio::test]
async fn the_per_call_stream_bound_holds_for_handles_dropped_unused() -> anyhow::Result<()> {
    let ring = ring().with_max_call_streams(8);
    let mut invocations = Box::pin(
        ring.serve("test:b/b", "f", serve_paths(&[&[Some(0), None]]))
            .await?,
    );
    let (out, results) = ring.invoke(None, "test:b/b", "f", Bytes::new(), NO_PATHS).await?;
    let (_, callee_out, callee_in) = next_raw(&mut invocations).await;

    let mut refused = None;
    for i in 0..1000 {
        match out.index(&[0, i]) {
            Ok(unused) => drop(unused),
            Err(err) => {
                refused = Some((i, err));
                break;
            }
        }
    }
    let (at, err) = refused.context("1000 sub-streams opened and dropped on a call bound to 8")?;
    assert_eq!(at, 8, "refused at the first one past the bound");
    match err.downcast_ref::<TransportError>() {
        Some(TransportError::TooManyStreams {
            target, path, limit, ..
        }) => {
            assert_eq!(
                (target.as_str(), path.as_slice(), *limit),
                ("test:b/b.f", &[0, 8][..], 8)
            );
        }
        other => panic!("expected TooManyStreams, got {other:?}: {err:#}"),
    }
    // The eight marks still say how their writers ended: a clean end, each.
    for i in 0..8 {
        let mut reader = callee_in.index(&[0, i])?;
        let mut got = Vec::new();
        within("a marked sub-stream", reader.read_to_end(&mut got)).await?;
        assert!(got.is_empty());
    }
    // Read, so settled and gone: there is room again.
    let mut late = out.index(&[0, 100])?;
    let mut reader = callee_in.index(&[0, 100])?;
    late.write_all(b"room").await?;
    late.shutdown().await?;
    let mut got = Vec::new();
    within(
        "a sub-stream after the marks settled",
        reader.read_to_end(&mut got),
    )
    .await?;
    assert_eq!(got, b"room");
    drop((late, reader, out, results, callee_out, callee_in));
    all_rings_returned(&ring).await;
    Ok(())
}

/// A writer whose first write a per-call bound refuses never writes: its reader gets
/// the bound's reason as an abort, whether it was already waiting or comes later,
/// instead of waiting for the whole writing side to go.
#[tokio::test]
async fn a_write_refused_by_a_per_call_bound_aborts_its_reader() -> anyhow::Result<()> {
    let ring = ring().with_max_call_bytes(1024);
    let mut invocations = Box::pin(
        ring.serve("test:q/q", "f", serve_paths(&[&[Some(0)], &[Some(1)]]))
            .await?,
    );
    let (out, results) = ring.invoke(None, "test:q/q", "f", Bytes::new(), NO_PATHS).await?;
    let (_, callee_out, callee_in) = next_raw(&mut invocations).await;

    let mut waiting = callee_in.index(&[0])?;
    let waiting = tokio::spawn(async move {
        let mut got = Vec::new();
        waiting.read_to_end(&mut got).await
    });
    tokio::task::yield_now().await;
    for path in [0, 1] {
        let mut writer = out.index(&[path])?;
        let err = writer.write_all(&[7; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::QuotaExceeded, "{err}");
        drop(writer);
    }
    let early = within("the reader waiting before the refusal", waiting)
        .await?
        .unwrap_err();
    let mut late = callee_in.index(&[1])?;
    let late = within("the reader coming after it", late.read_to_end(&mut Vec::new()))
        .await
        .unwrap_err();
    for err in [early, late] {
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted, "{err}");
        let reason = aborted_reason(&err).unwrap_or_default();
        assert!(reason.contains("test:q/q.f") && reason.contains("1024"), "{err}");
    }
    drop((out, results, callee_out, callee_in));
    all_rings_returned(&ring).await;
    Ok(())
}

/// A callee that answers without reading a stream parameter to its end (an HTTP-style
/// handler that ignores the body) does not fail the call: the caller's writes into a
/// parameter stream whose reader is gone are discarded, as over NATS, and the caller's
/// outcome is its results'. The callee's results still fail fast when the caller goes
/// (`caller_cancelling_breaks_the_callees_writes_and_returns_rings`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_parameter_the_callee_does_not_read_does_not_fail_the_call() -> anyhow::Result<()> {
    let ring = ring();
    let calls = ring
        .serve_values::<(ByteStream,), (u32,)>("test:body/body", "ignore", serve_paths(&[&[Some(0)]]))
        .await?;
    let server = tokio::spawn(async move {
        let mut calls = pin!(calls);
        while let Some(call) = calls.next().await {
            let (_, (body,), rx, respond) = call?;
            if let Some(rx) = rx {
                tokio::spawn(rx); // as generated bindings do
            }
            drop(body);
            respond((1,)).await?;
        }
        anyhow::Ok(())
    });
    for round in 0..20 {
        // A body that is still being produced after the callee answered and left.
        let body: ByteStream = Box::pin(stream::iter(0..64u8).then(|i| async move {
            tokio::time::sleep(Duration::from_micros(200)).await;
            Bytes::from(vec![i; 4096])
        }));
        let (answer,) = within(
            "a call whose body the callee ignores",
            ring.invoke_values_blocking::<_, _, (u32,)>(None, "test:body/body", "ignore", (body,), NO_PATHS),
        )
        .await
        .with_context(|| format!("round {round}"))?;
        assert_eq!(answer, 1);
    }
    all_rings_returned(&ring).await;
    server.abort();
    Ok(())
}

/// A stream that ends because its writing side dropped the invocation says so, naming
/// the target and the path.
#[tokio::test]
async fn a_stream_whose_writing_side_is_gone_names_target_and_path() -> anyhow::Result<()> {
    let ring = ring();
    let mut invocations = Box::pin(ring.serve("test:g/g", "f", serve_paths(&[])).await?);
    let (out, results) = ring
        .invoke(None, "test:g/g", "f", Bytes::new(), [[Some(0)].as_slice()])
        .await?;
    let (_, callee_out, callee_in) = next_raw(&mut invocations).await;
    let mut stream = results.index(&[0])?;
    drop((callee_out, callee_in));
    let err = within(
        "a result stream of a gone callee",
        stream.read_to_end(&mut Vec::new()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted, "{err}");
    let reason = aborted_reason(&err).unwrap_or_default();
    assert!(
        reason.contains("the callee of `test:g/g.f` dropped the invocation") && reason.contains("[0]"),
        "{err}"
    );
    drop((stream, out, results));
    all_rings_returned(&ring).await;
    Ok(())
}
