//! The close contract, row by row, through tokio's io extension traits, and parity with
//! `tokio::io::duplex` where tokio defines the behaviour.

#[path = "../src/ring/watchdog.rs"]
mod watchdog;

use std::future::Future;
use std::io::ErrorKind;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wrpc_ring::{Aborted, duplex, pipe};

/// Runs `test` on a current_thread runtime (with timers) under the watchdog, so that a
/// lost wake-up fails as `stuck: {what}` instead of hanging.
fn watched(what: &str, test: impl Future<Output = ()> + Send + 'static) {
    watchdog::within(what, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("current_thread runtime")
            .block_on(test)
    });
}

#[test]
fn shutdown_then_reader_sees_all_bytes_then_eof_forever() {
    watched("shutdown then reader sees all bytes then eof forever", async {
        let (mut w, mut r) = pipe(16);
        let writer = tokio::spawn(async move {
            w.write_all(&[9; 100]).await.unwrap();
            w.shutdown().await.unwrap();
            let err = w.write_all(b"late").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [9; 100]);
        for _ in 0..3 {
            assert_eq!(r.read(&mut [0; 8]).await.unwrap(), 0);
        }
        writer.await.unwrap();
    });
}

#[test]
fn drop_without_shutdown_is_a_clean_close() {
    watched("drop without shutdown is a clean close", async {
        let (mut w, mut r) = pipe(16);
        w.write_all(b"bye").await.unwrap();
        drop(w);
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "bye");
    });
}

#[test]
fn abort_then_reader_sees_all_bytes_then_the_reason() {
    watched("abort then reader sees all bytes then the reason", async {
        let (mut w, mut r) = pipe(16);
        let writer = tokio::spawn(async move {
            w.write_all(&[1; 40]).await.unwrap();
            w.abort("callee trapped: unreachable");
            assert_eq!(w.write(b"x").await.unwrap_err().kind(), ErrorKind::BrokenPipe);
        });
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(got, [1; 40], "every byte before the abort arrives first");
        assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
        let aborted = err.get_ref().and_then(|e| e.downcast_ref::<Aborted>()).unwrap();
        assert_eq!(aborted.reason(), "callee trapped: unreachable");
        // The error repeats; it never turns into a clean EOF.
        assert_eq!(
            r.read(&mut [0; 1]).await.unwrap_err().kind(),
            ErrorKind::ConnectionAborted
        );
        assert_eq!(
            r.fill_buf().await.unwrap_err().kind(),
            ErrorKind::ConnectionAborted
        );
        writer.await.unwrap();
    });
}

#[test]
fn reader_drop_wakes_a_pending_writer_with_broken_pipe() {
    watched("reader drop wakes a pending writer with broken pipe", async {
        let (mut w, r) = pipe(8);
        let writer = tokio::spawn(async move { w.write_all(&[0; 1024]).await });
        tokio::time::sleep(Duration::from_millis(20)).await; // the writer is parked on a full ring
        drop(r);
        let err = tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    });
}

#[test]
fn close_wakes_a_pending_reader() {
    watched("close wakes a pending reader", async {
        let (w, mut r) = pipe(8);
        let reader = tokio::spawn(async move { r.read(&mut [0; 8]).await });
        tokio::time::sleep(Duration::from_millis(20)).await; // the reader is parked on an empty ring
        drop(w);
        let n = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    });
}

/// What a scenario observed, in a form both stream types can produce.
#[derive(Debug, PartialEq)]
enum Seen {
    Read(Vec<u8>),
    Eof,
    Wrote(usize),
    Err(ErrorKind),
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut R) -> Seen {
    let mut buf = [0; 64];
    match r.read(&mut buf).await {
        Ok(0) => Seen::Eof,
        Ok(n) => Seen::Read(buf[..n].to_vec()),
        Err(e) => Seen::Err(e.kind()),
    }
}

async fn write_some<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> Seen {
    match w.write(data).await {
        Ok(n) => Seen::Wrote(n),
        Err(e) => Seen::Err(e.kind()),
    }
}

/// The scenarios tokio documents for `DuplexStream`, run against a pair of streams.
async fn scenarios<S>(make: impl Fn() -> (S, S)) -> Vec<Seen>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut seen = Vec::new();

    // Data written before the peer is dropped is read, then EOF.
    let (mut a, mut b) = make();
    seen.push(write_some(&mut a, b"hello").await);
    drop(a);
    seen.push(read_some(&mut b).await);
    seen.push(read_some(&mut b).await);
    // Writes to a dropped peer fail.
    seen.push(write_some(&mut b, b"x").await);

    // Zero-length operations complete at once on an open stream.
    let (mut a, mut b) = make();
    seen.push(write_some(&mut a, b"").await);
    let mut empty = [0u8; 0];
    seen.push(Seen::Wrote(b.read(&mut empty).await.unwrap()));

    // A writer blocked on a full buffer is woken when the peer goes away.
    let (mut a, b) = make();
    let blocked = tokio::spawn(async move { a.write_all(&[0; 4096]).await.map_err(|e| e.kind()) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(b);
    seen.push(match blocked.await.unwrap() {
        Ok(()) => Seen::Wrote(4096),
        Err(kind) => Seen::Err(kind),
    });

    // A reader blocked on an empty buffer is woken by the peer's shutdown.
    let (mut a, mut b) = make();
    let blocked = tokio::spawn(async move { read_some(&mut b).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    a.shutdown().await.unwrap();
    seen.push(blocked.await.unwrap());
    seen
}

#[test]
fn duplex_matches_tokio_duplex() {
    watched("duplex matches tokio duplex", async {
        let tokio_seen = scenarios(|| tokio::io::duplex(64)).await;
        let ring_seen = scenarios(|| duplex(64)).await;
        assert_eq!(ring_seen, tokio_seen);
    });
}

#[test]
fn split_halves_close_their_own_direction_on_drop() {
    watched("split halves close their own direction on drop", async {
        let (a, mut b) = duplex(32);
        let (mut a_read, a_write) = a.into_split();
        drop(a_write); // closes a→b only
        assert_eq!(read_some(&mut b).await, Seen::Eof);
        b.write_all(b"still open").await.unwrap();
        assert_eq!(read_some(&mut a_read).await, Seen::Read(b"still open".to_vec()));
        drop(a_read); // now b→a is closed too
        assert_eq!(write_some(&mut b, b"x").await, Seen::Err(ErrorKind::BrokenPipe));
    });
}

#[test]
fn stream_abort_reaches_the_peer() {
    watched("stream abort reaches the peer", async {
        let (mut a, mut b) = duplex(32);
        a.write_all(b"part").await.unwrap();
        a.abort("gave up");
        let mut got = Vec::new();
        let err = b.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(got, b"part");
        assert!(err.to_string().contains("gave up"), "{err}");
    });
}
