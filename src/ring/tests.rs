//! Unit tests of the ring and its close protocol, small enough for Miri.
//!
//! They use `futures`' executor and plain threads rather than a tokio runtime, so that
//! Miri checks the crate's own unsafe code and atomics with little else in the way.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread;

use futures::executor::block_on;
use futures::task::noop_waker_ref;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::watchdog::{watch_for, within};
use crate::{Aborted, RingPool, pipe};

/// Bytes moved by the cross-thread tests; Miri is ~1000× slower.
const TRANSFER: usize = if cfg!(miri) { 2_000 } else { 1 << 20 };

async fn write_all(w: &mut crate::RingWriter, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *w).poll_write(cx, data)).await?;
        data = &data[n..];
    }
    Ok(())
}

async fn read(r: &mut crate::RingReader, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn read_to_end(r: &mut crate::RingReader) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0; 13];
    loop {
        match read(r, &mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn shutdown(w: &mut crate::RingWriter) {
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(matches!(Pin::new(w).poll_shutdown(&mut cx), Poll::Ready(Ok(()))));
}

#[test]
fn shutdown_delivers_every_byte_then_eof_forever() {
    let (mut w, mut r) = pipe(8);
    block_on(async {
        write_all(&mut w, b"abcdef").await.unwrap();
        shutdown(&mut w);
        assert_eq!(read_to_end(&mut r).await.unwrap(), b"abcdef");
        assert_eq!(read(&mut r, &mut [0; 4]).await.unwrap(), 0);
        assert_eq!(read(&mut r, &mut [0; 4]).await.unwrap(), 0);
        let err = write_all(&mut w, b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn drop_is_a_clean_close() {
    let (mut w, mut r) = pipe(8);
    block_on(async {
        write_all(&mut w, b"abc").await.unwrap();
        drop(w);
        assert_eq!(read_to_end(&mut r).await.unwrap(), b"abc");
    });
}

#[test]
fn abort_delivers_bytes_then_the_reason() {
    let (mut w, mut r) = pipe(8);
    block_on(async {
        write_all(&mut w, b"abc").await.unwrap();
        w.abort(format!("code {}", 42));
        let mut buf = [0; 8];
        assert_eq!(read(&mut r, &mut buf).await.unwrap(), 3);
        for _ in 0..2 {
            let err = read(&mut r, &mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<Aborted>()).unwrap();
            assert_eq!(inner.reason(), "code 42");
            assert!(err.to_string().contains("code 42"), "{err}");
        }
        assert_eq!(
            write_all(&mut w, b"x").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    });
}

#[test]
fn writer_dropped_while_panicking_aborts() {
    let (w, mut r) = pipe(8);
    let result = thread::spawn(move || {
        let _w = w;
        panic!("boom");
    })
    .join();
    assert!(result.is_err());
    let err = block_on(read(&mut r, &mut [0; 4])).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    assert!(err.to_string().contains("panicking"), "{err}");
}

#[test]
fn reader_drop_fails_pending_and_later_writes() {
    let (mut w, r) = pipe(4);
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(matches!(
        Pin::new(&mut w).poll_write(&mut cx, b"abcd"),
        Poll::Ready(Ok(4))
    ));
    // Full: the write is pending until the reader goes away.
    assert!(Pin::new(&mut w).poll_write(&mut cx, b"e").is_pending());
    drop(r);
    assert!(w.is_closed());
    match Pin::new(&mut w).poll_write(&mut cx, b"e") {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("expected BrokenPipe, got {other:?}"),
    }
    match Pin::new(&mut w).poll_write(&mut cx, b"") {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("expected BrokenPipe, got {other:?}"),
    }
}

#[test]
fn reader_drop_wakes_a_parked_writer() {
    let (mut w, r) = pipe(2);
    let writer = thread::spawn(move || block_on(write_all(&mut w, &[1; 64])));
    // Let the writer fill the ring and park, then go away.
    thread::sleep(std::time::Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
    drop(r);
    let err = within(
        "a writer parked on a full ring whose reader was dropped",
        move || writer.join().unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn zero_length_operations_complete_at_once() {
    let (mut w, mut r) = pipe(4);
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(matches!(
        Pin::new(&mut w).poll_write(&mut cx, b""),
        Poll::Ready(Ok(0))
    ));
    let mut empty = ReadBuf::new(&mut []);
    assert!(matches!(
        Pin::new(&mut r).poll_read(&mut cx, &mut empty),
        Poll::Ready(Ok(()))
    ));
    // Nothing written yet: a non-empty read is pending.
    let mut buf = [0; 1];
    assert!(
        Pin::new(&mut r)
            .poll_read(&mut cx, &mut ReadBuf::new(&mut buf))
            .is_pending()
    );
}

#[test]
fn flush_completes_at_once() {
    let (mut w, _r) = pipe(4);
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(matches!(
        Pin::new(&mut w).poll_flush(&mut cx),
        Poll::Ready(Ok(()))
    ));
}

#[test]
fn fill_buf_reads_ring_memory_in_place_across_the_wrap() {
    let (mut w, mut r) = pipe(5);
    let mut cx = Context::from_waker(noop_waker_ref());
    block_on(async {
        write_all(&mut w, b"abc").await.unwrap();
        assert_eq!(read(&mut r, &mut [0; 3]).await.unwrap(), 3);
        // Head is now at 3 of 5: this write wraps.
        write_all(&mut w, b"defgh").await.unwrap();
    });
    let mut got = Vec::new();
    while got.len() < 5 {
        let Poll::Ready(Ok(chunk)) = Pin::new(&mut r).poll_fill_buf(&mut cx) else {
            panic!("no data")
        };
        assert!(!chunk.is_empty());
        let n = chunk.len().min(1 + got.len() % 2);
        got.extend_from_slice(&chunk[..n]);
        Pin::new(&mut r).consume(n);
    }
    assert_eq!(got, b"defgh");
    drop(w);
    let Poll::Ready(Ok(chunk)) = Pin::new(&mut r).poll_fill_buf(&mut cx) else {
        panic!("no eof")
    };
    assert!(chunk.is_empty());
}

#[test]
fn consuming_more_than_available_is_clamped() {
    let (mut w, mut r) = pipe(8);
    block_on(write_all(&mut w, b"ab")).unwrap();
    Pin::new(&mut r).consume(100);
    block_on(write_all(&mut w, b"cd")).unwrap();
    drop(w);
    assert_eq!(block_on(read_to_end(&mut r)).unwrap(), b"cd");
}

#[test]
fn write_with_fills_ring_memory_directly() {
    let (mut w, mut r) = pipe(6);
    let mut cx = Context::from_waker(noop_waker_ref());
    let n = w.poll_write_with(&mut cx, |buf| {
        assert_eq!((buf.capacity(), buf.remaining()), (6, 6));
        buf.put_slice(b"wx");
        buf.unfilled_mut(2).copy_from_slice(b"yz");
        buf.advance(2);
        assert_eq!(buf.filled(), b"wxyz");
    });
    assert!(matches!(n, Poll::Ready(Ok(4))));
    // `io::Write` takes what fits.
    let n = w.poll_write_with(&mut cx, |buf| {
        assert_eq!(io::Write::write(buf, b"!!!").unwrap(), 2);
        assert_eq!(io::Write::write(buf, b"!").unwrap(), 0);
    });
    assert!(matches!(n, Poll::Ready(Ok(2))));
    // Full now: pending, and `fill` is not called.
    assert!(w.poll_write_with(&mut cx, |_| unreachable!()).is_pending());
    drop(w);
    assert_eq!(block_on(read_to_end(&mut r)).unwrap(), b"wxyz!!");
}

#[test]
fn write_with_publishes_nothing_unwritten() {
    let (mut w, mut r) = pipe(4);
    let mut cx = Context::from_waker(noop_waker_ref());
    let n = w.poll_write_with(&mut cx, |_| {});
    assert!(matches!(n, Poll::Ready(Ok(0))));
    let n = w.poll_write_with(&mut cx, |buf| {
        bytes::BufMut::put_u16_le(buf, 0x0201);
        buf.filled_mut()[1] = 9; // patch in place
    });
    assert!(matches!(n, Poll::Ready(Ok(2))));
    drop(w);
    assert_eq!(block_on(read_to_end(&mut r)).unwrap(), [1, 9]);
}

#[test]
#[should_panic(expected = "only 0 were handed out")]
fn write_with_cannot_count_bytes_it_did_not_write() {
    let (mut w, _r) = pipe(4);
    let mut cx = Context::from_waker(noop_waker_ref());
    let _ = w.poll_write_with(&mut cx, |buf| buf.advance(1));
}

/// The pool's promise through `poll_write_with`: a ring's previous user's bytes are
/// never shown to the next user nor published by it, however its `fill` behaves.
#[test]
fn write_with_never_shows_a_previous_users_bytes() {
    let pool = RingPool::new(8, 1);
    let (mut w, mut r) = pool.acquire();
    // Fill every slot, so that the next lease's free region starts over them.
    block_on(write_all(&mut w, b"secret!!")).unwrap();
    drop(w);
    assert_eq!(block_on(read_to_end(&mut r)).unwrap(), b"secret!!");
    drop(r);

    let (mut w, mut r) = pool.acquire();
    assert_eq!(pool.stats().hits, 1, "the same ring again");
    let mut cx = Context::from_waker(noop_waker_ref());
    let n = w.poll_write_with(&mut cx, |buf| {
        assert_eq!(buf.capacity(), 8);
        assert!(buf.filled().is_empty());
        let region = buf.unfilled_mut(8);
        assert_eq!(region, [0; 8], "ring memory shown with a previous user's bytes");
        region[..2].copy_from_slice(b"ok");
        buf.advance(8); // counts the zeros too: they were shown, so that is allowed
    });
    assert!(matches!(n, Poll::Ready(Ok(8))));
    drop(w);
    assert_eq!(block_on(read_to_end(&mut r)).unwrap(), b"ok\0\0\0\0\0\0");
}

#[test]
fn bytes_cross_threads_in_order_through_a_small_ring() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let data = pattern(TRANSFER);
    let (mut w, mut r) = pipe(61);
    let expected = data.clone();
    // Progress for the watchdog: bytes written and read so far (`Relaxed`: a report).
    let (sent, received) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (sent_by_writer, received_by_reader) = (sent.clone(), received.clone());
    let report = move || {
        let (sent, received) = (sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed));
        format!("writer sent {sent} of {TRANSFER} bytes, reader received {received}")
    };
    let got = watch_for(
        super::watchdog::STUCK_AFTER,
        "a transfer through a 61-byte ring across two threads",
        report,
        move || {
            let writer = thread::spawn(move || {
                block_on(async {
                    // Uneven write sizes exercise the wrap at every offset.
                    for chunk in data.chunks(97) {
                        write_all(&mut w, chunk).await.unwrap();
                        sent_by_writer.fetch_add(chunk.len(), Ordering::Relaxed);
                    }
                })
            });
            let got = block_on(async {
                let mut out = Vec::new();
                let mut buf = [0; 13];
                loop {
                    match read(&mut r, &mut buf).await.unwrap() {
                        0 => return out,
                        n => out.extend_from_slice(&buf[..n]),
                    }
                    received_by_reader.store(out.len(), Ordering::Relaxed);
                }
            });
            writer.join().unwrap();
            got
        },
    );
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "bytes reordered or corrupted");
}

#[test]
fn pool_recycles_an_empty_ring_with_fresh_close_state() {
    let pool = RingPool::new(8, 2);
    let (mut w, r) = pool.acquire();
    block_on(write_all(&mut w, b"secret")).unwrap();
    w.abort("old user");
    drop((w, r)); // unread bytes and an abort left behind
    let stats = pool.stats();
    assert_eq!((stats.misses, stats.hits, stats.in_use, stats.idle), (1, 0, 0, 1));

    let (mut w, mut r) = pool.acquire();
    assert_eq!(pool.stats().hits, 1);
    assert!(!w.is_closed());
    let mut cx = Context::from_waker(noop_waker_ref());
    // Empty and open: a read is pending, not the old bytes, EOF or abort.
    assert!(
        Pin::new(&mut r)
            .poll_read(&mut cx, &mut ReadBuf::new(&mut [0; 8]))
            .is_pending()
    );
    block_on(write_all(&mut w, b"new")).unwrap();
    drop(w);
    assert_eq!(block_on(read_to_end(&mut r)).unwrap(), b"new");
}

#[test]
fn pool_returns_a_ring_only_after_both_halves_drop() {
    let pool = RingPool::new(8, 4);
    let (w, r) = pool.acquire();
    drop(w);
    assert_eq!((pool.stats().in_use, pool.stats().idle), (1, 0));
    drop(r);
    assert_eq!((pool.stats().in_use, pool.stats().idle), (0, 1));
}

#[test]
fn pool_frees_rings_beyond_max_idle() {
    let pool = RingPool::new(8, 1);
    let a = pool.acquire();
    let b = pool.acquire();
    let (c, d) = pool.acquire_duplex();
    assert_eq!(pool.stats().in_use, 4);
    drop((a, b, c, d));
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.idle, stats.misses), (0, 1, 4));
}

#[test]
fn pool_halves_dropped_on_two_threads_recycle_once() {
    let pool = RingPool::new(16, 8);
    let watched = pool.clone();
    within("ring halves dropped on two threads", move || {
        for _ in 0..if cfg!(miri) { 5 } else { 200 } {
            let (w, r) = watched.acquire();
            let t = thread::spawn(move || drop(w));
            drop(r);
            t.join().unwrap();
        }
    });
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.idle), (0, 1));
}

#[test]
#[should_panic(expected = "stuck: a reader nobody writes to (no progress for")]
#[cfg_attr(miri, ignore = "leaves the parked thread behind, which Miri reports")]
fn the_watchdog_fails_a_hang_naming_what_was_stuck() {
    let (w, mut r) = pipe(4);
    watch_for(
        std::time::Duration::from_millis(300),
        "a reader nobody writes to",
        || "no progress report".to_owned(),
        move || {
            let _w = w; // open, silent: the read waits forever
            block_on(read(&mut r, &mut [0; 1]))
        },
    )
    .unwrap();
}

#[test]
#[should_panic(expected = "ring capacity must be at least 1 byte")]
fn zero_capacity_is_rejected() {
    let _ = pipe(0);
}

#[test]
fn debug_shows_the_waiting_bits() {
    let (mut w, mut r) = pipe(1);
    let mut cx = Context::from_waker(noop_waker_ref());
    let idle = format!("{r:?}");
    assert!(idle.contains("reader_waiting: false"), "{idle}");
    assert!(idle.contains("writer_waiting: false"), "{idle}");
    // An empty ring: the read announces that the reader may be parked.
    assert!(
        Pin::new(&mut r)
            .poll_read(&mut cx, &mut ReadBuf::new(&mut [0; 1]))
            .is_pending()
    );
    let waiting = format!("{w:?}");
    assert!(waiting.contains("reader_waiting: true"), "{waiting}");
    assert!(waiting.contains("writer_waiting: false"), "{waiting}");
    // Fill the ring (which wakes the reader and clears its bit), then wait for space.
    assert!(matches!(
        Pin::new(&mut w).poll_write(&mut cx, b"a"),
        Poll::Ready(Ok(1))
    ));
    assert!(Pin::new(&mut w).poll_write(&mut cx, b"b").is_pending());
    let full = format!("{r:?}");
    assert!(full.contains("reader_waiting: false"), "{full}");
    assert!(full.contains("writer_waiting: true"), "{full}");
    assert!(full.contains("writer_closed: false"), "{full}");
    w.abort("x");
    assert!(format!("{r:?}").contains("writer_aborted: true"));
}

/// A waker that counts its wakes; `Arc::strong_count` of it counts the clones alive.
/// `on_wake` runs inside every wake (the tests use it to hold a wake in progress).
struct Counted {
    wakes: std::sync::atomic::AtomicUsize,
    on_wake: Box<dyn Fn() + Send + Sync>,
}

impl Counted {
    fn new() -> std::sync::Arc<Self> {
        Self::with(|| {})
    }

    fn with(on_wake: impl Fn() + Send + Sync + 'static) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            wakes: std::sync::atomic::AtomicUsize::new(0),
            on_wake: Box::new(on_wake),
        })
    }

    fn wakes(&self) -> usize {
        self.wakes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl std::task::Wake for Counted {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        (self.on_wake)();
        self.wakes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn poll_read_once(r: &mut crate::RingReader, waker: &std::sync::Arc<Counted>) -> Poll<io::Result<()>> {
    let waker = std::task::Waker::from(waker.clone());
    let mut buf = [0; 1];
    Pin::new(r).poll_read(&mut Context::from_waker(&waker), &mut ReadBuf::new(&mut buf))
}

fn poll_write_once(w: &mut crate::RingWriter, waker: &std::sync::Arc<Counted>) -> Poll<io::Result<usize>> {
    let waker = std::task::Waker::from(waker.clone());
    Pin::new(w).poll_write(&mut Context::from_waker(&waker), b"z")
}

/// A side keeps one clone of its waker between waits (no clone per wait), and drops it
/// when the half goes.
#[test]
fn a_waiting_reader_keeps_one_waker_between_waits() {
    let (mut w, mut r) = pipe(4);
    let task = Counted::new();
    for round in 1..=3 {
        assert!(poll_read_once(&mut r, &task).is_pending());
        assert_eq!(
            std::sync::Arc::strong_count(&task),
            2,
            "round {round}: one clone in the cell"
        );
        assert!(poll_write_once(&mut w, &task).is_ready());
        assert_eq!(
            task.wakes(),
            round,
            "round {round}: the write woke the reader once"
        );
        assert!(matches!(poll_read_once(&mut r, &task), Poll::Ready(Ok(()))));
    }
    drop(r);
    assert_eq!(
        std::sync::Arc::strong_count(&task),
        1,
        "the dropped reader forgot its waker"
    );
    drop(w);
}

/// A half polled by another task than before is woken through the new task's waker,
/// and the old task is neither woken nor kept alive.
#[test]
fn a_half_moved_to_another_task_is_woken_through_its_new_waker() {
    let (mut w, mut r) = pipe(1);
    let (old, new) = (Counted::new(), Counted::new());
    assert!(poll_read_once(&mut r, &old).is_pending());
    assert!(poll_read_once(&mut r, &new).is_pending());
    assert_eq!(std::sync::Arc::strong_count(&old), 1, "the old waker was dropped");
    assert!(poll_write_once(&mut w, &old).is_ready());
    assert_eq!((old.wakes(), new.wakes()), (0, 1));

    // The writer's side: wait for space on the full ring, then move.
    let (old, new) = (Counted::new(), Counted::new());
    assert!(poll_write_once(&mut w, &old).is_pending());
    assert!(poll_write_once(&mut w, &new).is_pending());
    assert_eq!(std::sync::Arc::strong_count(&old), 1, "the old waker was dropped");
    assert!(matches!(poll_read_once(&mut r, &old), Poll::Ready(Ok(()))));
    assert_eq!((old.wakes(), new.wakes()), (0, 1));
}

/// A half that moves to another task while the peer is still inside a wake of its old
/// waker must not overwrite that waker under the peer: it wakes its new task at once
/// instead (so it is polled again), and takes the cell on a later poll.
#[test]
fn a_waker_being_woken_is_not_replaced_under_the_peer() {
    let (mut w, mut r) = pipe(4);
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let old = Counted::with(move || {
        entered_tx.send(()).unwrap();
        // Holds the wake (and so the peer's read of the cell) until the test says so.
        release_rx.lock().unwrap().recv().unwrap();
    });
    assert!(poll_read_once(&mut r, &old).is_pending());
    let writer = thread::spawn(move || {
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(Pin::new(&mut w).poll_write(&mut cx, b"a").is_ready()); // wakes `old`
        w
    });
    within("the writer to start waking the reader's old waker", move || {
        entered.recv().unwrap()
    });

    let new = Counted::new();
    // The ring holds a byte: take it, then wait again with the new task's waker.
    assert!(matches!(poll_read_once(&mut r, &new), Poll::Ready(Ok(()))));
    assert!(poll_read_once(&mut r, &new).is_pending());
    assert_eq!(
        new.wakes(),
        1,
        "the new task was woken at once: the cell was busy"
    );
    assert_eq!(
        std::sync::Arc::strong_count(&new),
        1,
        "and its waker was not stored"
    );

    release.send(()).unwrap();
    let mut w = within("the writer to finish its wake", move || writer.join().unwrap());
    assert_eq!(old.wakes(), 1);
    // The peer is done with the cell: the next wait stores the new waker.
    assert!(poll_read_once(&mut r, &new).is_pending());
    assert_eq!(std::sync::Arc::strong_count(&new), 2);
    assert_eq!(std::sync::Arc::strong_count(&old), 1);
    assert!(poll_write_once(&mut w, &new).is_ready());
    assert_eq!((old.wakes(), new.wakes()), (1, 2));
}

/// The layering rule: the pool plugs into the ring (`recycle::Recycle`), the ring never
/// names the pool.
#[test]
fn the_ring_core_does_not_name_the_pool() {
    let sources = [
        ("mod.rs", include_str!("mod.rs")),
        ("buffer.rs", include_str!("buffer.rs")),
        ("coop.rs", include_str!("coop.rs")),
        ("reader.rs", include_str!("reader.rs")),
        ("recycle.rs", include_str!("recycle.rs")),
        ("shared.rs", include_str!("shared.rs")),
        ("stream.rs", include_str!("stream.rs")),
        ("wait.rs", include_str!("wait.rs")),
        ("writer.rs", include_str!("writer.rs")),
    ];
    for (file, text) in sources {
        for line in text.lines().filter(|line| line.trim_start().starts_with("use ")) {
            assert!(!line.contains("pool"), "src/ring/{file} imports the pool: {line}");
        }
        assert!(
            !text.contains("PoolInner"),
            "src/ring/{file} names the pool's internals"
        );
    }
}
