//! The baselines work, and are fixed where the earlier fork was broken: backpressure,
//! EOF on shutdown, and values far larger than the pipe buffer.

use std::task::{Context, Poll};

use futures::StreamExt as _;
use futures::task::noop_waker_ref;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wrpc_ring::baseline::{Duplex, Framed, MAX_CHUNK, Mpsc, PipeKind, mpsc_pipe};
use wrpc_transport::{InvokeExt as _, ServeExt as _};

const NO_PATHS: [Box<[Option<usize>]>; 0] = [];
const NO_RESULT_PATHS: &[&[Option<usize>]] = &[];

#[tokio::test]
async fn mpsc_pipe_applies_backpressure_instead_of_would_block() {
    let (mut tx, rx) = mpsc_pipe(MAX_CHUNK); // one message of room
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(matches!(
        std::pin::Pin::new(&mut tx).poll_write(&mut cx, b"a"),
        Poll::Ready(Ok(1))
    ));
    assert!(std::pin::Pin::new(&mut tx).poll_write(&mut cx, b"b").is_pending());
    drop(rx);
    match std::pin::Pin::new(&mut tx).poll_write(&mut cx, b"b") {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
        other => panic!("expected BrokenPipe, got {other:?}"),
    }
}

#[tokio::test]
async fn mpsc_pipe_shutdown_is_a_real_eof() {
    let (mut tx, mut rx) = mpsc_pipe(MAX_CHUNK);
    let writer = tokio::spawn(async move {
        tx.write_all(&[5; 100_000]).await.unwrap();
        tx.shutdown().await.unwrap();
        tx // kept alive: EOF must come from the shutdown, not from a drop
    });
    let mut got = Vec::new();
    rx.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, vec![5; 100_000]);
    drop(writer.await.unwrap());
}

async fn echo_roundtrip<K: PipeKind>() {
    let transport = Framed::<K>::new(1024).with_prefix("default.echo");
    let invocations = transport
        .serve_values::<(Vec<u8>,), (Vec<u8>,)>("test:echo/echo", "echo", NO_PATHS)
        .await
        .unwrap();
    let server = tokio::spawn(invocations.for_each_concurrent(None, |item| async move {
        let (_cx, (data,), _io, respond) = item.unwrap();
        respond((data,)).await.unwrap();
    }));
    // 1 MiB through 1 KiB pipes: the earlier fork deadlocked on anything over 1 KiB.
    for len in [0, 64, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let (echoed,) = transport
            .invoke_values_blocking::<_, _, (Vec<u8>,)>(
                None,
                "test:echo/echo",
                "echo",
                (data.clone(),),
                NO_RESULT_PATHS,
            )
            .await
            .unwrap();
        assert_eq!(echoed, data);
    }
    let err = transport
        .invoke_values_blocking::<_, _, (Vec<u8>,)>(
            None,
            "test:echo/echo",
            "missing",
            (Vec::<u8>::new(),),
            NO_RESULT_PATHS,
        )
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("missing") && msg.contains("default.echo"), "{msg}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplex_baseline_echoes_values_larger_than_its_buffer() {
    echo_roundtrip::<wrpc_ring::baseline::DuplexPipe>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpsc_baseline_echoes_values_larger_than_its_buffer() {
    echo_roundtrip::<wrpc_ring::baseline::MpscPipe>().await;
}

#[test]
fn baselines_are_send_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Duplex>();
    check::<Mpsc>();
}
