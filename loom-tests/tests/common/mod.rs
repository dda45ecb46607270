//! Shared helpers for the loom models: a bounded `model` runner and one-call wrappers
//! that drive the rings' `poll_*` methods with `loom::future::block_on`.
//!
//! Every helper polls the trait methods directly through `std::future::poll_fn`, so a
//! model sees exactly the wake-ups the ring arranges: a lost wake-up leaves
//! `block_on` parked forever, which loom reports as a deadlock.

#![allow(dead_code)] // each test binary uses a different subset

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Poll, ready};

use loom::future::block_on;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
pub use wrpc_ring::loom::Positions;
use wrpc_ring::{Aborted, RingReader, RingWriter};

std::thread_local! {
    /// How the rings of the models run on this test thread read positions (see
    /// [`with_positions`]).
    static POSITIONS: std::cell::Cell<Positions> = const { std::cell::Cell::new(Positions::Cached) };
}

/// Runs `f` (which calls [`model`]) with rings in `positions` mode: `Cached` reads the
/// peer's position only when it looks full/empty, as rtrb does; `Fresh` at every check.
pub fn with_positions(positions: Positions, f: impl FnOnce()) {
    POSITIONS.with(|cell| cell.set(positions));
    f();
    POSITIONS.with(|cell| cell.set(Positions::Cached));
}

/// The preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
///
/// Every model here has at most three threads and a handful of atomic operations, and
/// every planted bug in `docs/loom.md` is found with a bound of 2; 3 leaves a margin
/// while keeping the whole suite at about half a minute on two cores.
pub const DEFAULT_PREEMPTIONS: usize = 3;

/// Runs `f` under loom, with [`DEFAULT_PREEMPTIONS`] unless `LOOM_MAX_PREEMPTIONS` is set,
/// and prints how many executions loom explored (shown with `--nocapture`).
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    // A plain std counter: it lives outside the model, so loom neither explores nor
    // leak-checks it.
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = iterations.clone();
    let positions = POSITIONS.with(std::cell::Cell::get);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        wrpc_ring::loom::set_positions(positions);
        f();
    });
    println!(
        "loom explored {} executions (preemption bound {:?}, positions {positions:?})",
        iterations.load(std::sync::atomic::Ordering::Relaxed),
        builder.preemption_bound,
    );
}

/// Which side of a ring runs on the model's main thread; the other is spawned.
///
/// Every race model runs both ways round. Loom starts each model with the schedule
/// that runs the main thread as far as it can, and its DPOR search keeps only one "last
/// access" per atomic, so a plain load by one thread followed by a load *and then* a
/// read-modify-write by another is never reordered (tokio-rs/loom#166, #392): in
/// `wake_reader` the writer loads the state word just before `close_writer`
/// read-modify-writes it. Swapping the roles makes the other side run first in the
/// initial schedule, which is where such an interleaving is then explored (see
/// `docs/loom.md`, planted bug c3).
#[derive(Debug, Clone, Copy)]
pub enum Roles {
    /// The reader runs on the main thread, the writer on a spawned one.
    ReaderOnMain,
    /// The writer runs on the main thread, the reader on a spawned one.
    WriterOnMain,
}

/// Runs `writer_side` and `reader_side` concurrently, one on the main thread as `roles`
/// says, and returns both results once both are done (so whatever a side returns, such
/// as a still-open half, stays alive until the other side has finished).
pub fn race<W, R, WO, RO>(roles: Roles, writer_side: W, reader_side: R) -> (WO, RO)
where
    W: FnOnce() -> WO + Send + 'static,
    R: FnOnce() -> RO + Send + 'static,
    WO: Send + 'static,
    RO: Send + 'static,
{
    match roles {
        Roles::ReaderOnMain => {
            let writer = loom::thread::spawn(writer_side);
            let read = reader_side();
            (writer.join().unwrap(), read)
        }
        Roles::WriterOnMain => {
            let reader = loom::thread::spawn(reader_side);
            let written = writer_side();
            (written, reader.join().unwrap())
        }
    }
}

/// Declares a module with four `#[test]`s, `{cached,fresh}::{reader_on_main,writer_on_main}`,
/// that call `$model` with each [`Roles`] value, its rings in each [`Positions`] mode
/// (`cached_only`: the two `cached::` tests only).
#[macro_export]
macro_rules! both_roles {
    ($(#[$meta:meta])* $name:ident => $model:expr) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            $crate::both_roles!(@mode cached, Cached, $model);
            $crate::both_roles!(@mode fresh, Fresh, $model);
        }
    };
    // Only the mode that reads positions as rtrb does, for models too large to run twice.
    ($(#[$meta:meta])* cached_only $name:ident => $model:expr) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            $crate::both_roles!(@mode cached, Cached, $model);
        }
    };
    (@mode $mode:ident, $positions:ident, $model:expr) => {
        mod $mode {
            use super::*;

            #[test]
            fn reader_on_main() {
                $crate::common::with_positions($crate::common::Positions::$positions, || {
                    ($model)($crate::common::Roles::ReaderOnMain)
                });
            }

            #[test]
            fn writer_on_main() {
                $crate::common::with_positions($crate::common::Positions::$positions, || {
                    ($model)($crate::common::Roles::WriterOnMain)
                });
            }
        }
    };
}

/// One `poll_read` into a buffer of `len` bytes: the bytes read (empty at EOF).
pub fn read(reader: &mut RingReader, len: usize) -> io::Result<Vec<u8>> {
    let mut storage = vec![0; len];
    let n = block_on(poll_fn(|cx| {
        let mut buf = ReadBuf::new(&mut storage);
        ready!(Pin::new(&mut *reader).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok::<_, io::Error>(buf.filled().len()))
    }))?;
    storage.truncate(n);
    Ok(storage)
}

/// One `poll_fill_buf`, then `consume` of everything it returned: the bytes (empty at EOF).
pub fn fill_and_consume(reader: &mut RingReader) -> io::Result<Vec<u8>> {
    let got = block_on(poll_fn(|cx| {
        let chunk = ready!(Pin::new(&mut *reader).poll_fill_buf(cx))?;
        Poll::Ready(Ok::<_, io::Error>(chunk.to_vec()))
    }))?;
    Pin::new(&mut *reader).consume(got.len());
    Ok(got)
}

/// How a stream ended, as its reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `Ok(0)`: a clean close.
    Eof,
    /// `ConnectionAborted` carrying this reason.
    Aborted(String),
}

/// How the reader reads in a model.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// `AsyncRead::poll_read` with a buffer of this many bytes.
    Read(usize),
    /// `AsyncBufRead::poll_fill_buf` + `consume`.
    BufRead,
}

/// Reads until the stream ends: every byte, then how it ended.
///
/// Panics on any error other than an abort, and on an abort whose error does not carry
/// an [`Aborted`].
pub fn read_to_end(reader: &mut RingReader, via: Via) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    loop {
        let chunk = match via {
            Via::Read(len) => read(reader, len),
            Via::BufRead => fill_and_consume(reader),
        };
        match chunk {
            Ok(chunk) if chunk.is_empty() => return (got, End::Eof),
            Ok(chunk) => got.extend_from_slice(&chunk),
            Err(err) => {
                assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted, "{err}");
                let aborted = err
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<Aborted>())
                    .unwrap_or_else(|| panic!("abort error without a reason: {err}"));
                return (got, End::Aborted(aborted.reason().to_owned()));
            }
        }
    }
}

/// One `poll_write`: how many bytes of `data` went in.
pub fn write(writer: &mut RingWriter, data: &[u8]) -> io::Result<usize> {
    block_on(poll_fn(|cx| Pin::new(&mut *writer).poll_write(cx, data)))
}

/// `poll_write` until all of `data` is in the ring.
pub fn write_all(writer: &mut RingWriter, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = write(writer, data)?;
        assert!(n > 0, "poll_write returned Ok(0) for a non-empty buffer");
        data = &data[n..];
    }
    Ok(())
}

/// `poll_shutdown`: a clean close frame.
pub fn shutdown(writer: &mut RingWriter) -> io::Result<()> {
    block_on(poll_fn(|cx| Pin::new(&mut *writer).poll_shutdown(cx)))
}

/// Polls a read exactly once: `None` if it is pending, the bytes (or error) otherwise.
pub fn try_read(reader: &mut RingReader, len: usize) -> Option<io::Result<Vec<u8>>> {
    let mut storage = vec![0; len];
    let polled = block_on(poll_fn(|cx| {
        let mut buf = ReadBuf::new(&mut storage);
        Poll::Ready(match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            Poll::Pending => None,
            Poll::Ready(Ok(())) => Some(Ok(buf.filled().len())),
            Poll::Ready(Err(err)) => Some(Err(err)),
        })
    }));
    polled.map(|result| {
        result.map(|n| {
            storage.truncate(n);
            storage
        })
    })
}

/// A task that counts its wakes; `Arc::strong_count` counts its wakers alive. A plain std
/// `Arc` outside the model (loom neither explores nor leak-checks it); it is read only
/// after the threads that wake it have been joined.
#[derive(Default)]
pub struct Task(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Task {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A new [`Task`] with no wakes and no waker alive.
pub fn task() -> std::sync::Arc<Task> {
    std::sync::Arc::default()
}

/// How many times `task` has been woken.
pub fn wakes(task: &std::sync::Arc<Task>) -> usize {
    task.0.load(std::sync::atomic::Ordering::SeqCst)
}
