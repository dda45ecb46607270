//! Model 6: the waker cell when a half moves to another task (`src/ring/wait.rs`,
//! "Replace").
//!
//! A half keeps its waker in its cell between waits. When it is polled with a waker of
//! another task, it must retract its outstanding announcement and store the new waker,
//! but never while the peer may be reading the cell inside a wake. The other models
//! replace wakers too (every `block_on` of `common` has a waker of its own), so they catch
//! a replacement that races a wake; this one checks what they cannot see: that the new
//! task is the one woken, that a free cell is taken at once (no needless self-wake), and
//! that the old task is not kept alive.

#![cfg(loom)]

mod common;

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use common::{Task, model, task, wakes};
use loom::thread;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wrpc_ring::{RingReader, RingWriter};

fn poll_read(reader: &mut RingReader, task: &std::sync::Arc<Task>) -> Poll<Vec<u8>> {
    let waker = Waker::from(task.clone());
    let mut storage = [0; 1];
    let mut buf = ReadBuf::new(&mut storage);
    match Pin::new(reader).poll_read(&mut Context::from_waker(&waker), &mut buf) {
        Poll::Ready(result) => {
            result.expect("the writer is open");
            Poll::Ready(buf.filled().to_vec())
        }
        Poll::Pending => Poll::Pending,
    }
}

fn poll_write(writer: &mut RingWriter, task: &std::sync::Arc<Task>, byte: u8) -> Poll<usize> {
    let waker = Waker::from(task.clone());
    match Pin::new(writer).poll_write(&mut Context::from_waker(&waker), &[byte]) {
        Poll::Ready(result) => Poll::Ready(result.expect("the reader is alive")),
        Poll::Pending => Poll::Pending,
    }
}

/// After a `side` that waited with task `old` was polled with task `new` while nothing
/// else ran: the cell was free, so `new`'s waker is stored (and not woken) and `old`'s
/// is let go.
fn assert_took_free_cell(side: &str, old: &std::sync::Arc<Task>, new: &std::sync::Arc<Task>) {
    assert_eq!(
        wakes(new),
        0,
        "a free cell was not taken at once: the {side} woke itself"
    );
    assert_eq!(
        std::sync::Arc::strong_count(old),
        1,
        "the cell kept the old task's waker"
    );
    assert_eq!(
        std::sync::Arc::strong_count(new),
        2,
        "the cell does not hold the new waker"
    );
}

/// Once the ring is gone, no task may still be referenced.
fn assert_released(tasks: &[(&str, &std::sync::Arc<Task>)]) {
    for (name, task) in tasks {
        assert_eq!(
            std::sync::Arc::strong_count(task),
            1,
            "task {name} is still referenced"
        );
    }
}

/// Model 6a: the reader waits with task `a` (polled twice, so its second announcement
/// merges with the first), moves to `b` (nothing else running: the cell is free, so `b`
/// is stored at once and not woken, and `a` is let go), then moves to `c`
/// while the writer writes a byte. Whatever the interleaving, a final `Pending` has
/// arranged a wake of `c`: the write's claim woke it, or the cell was busy and the
/// reader woke `c` itself.
#[test]
fn a_moved_reader_is_woken_through_its_new_waker() {
    model(|| {
        let (mut writer, mut reader) = wrpc_ring::pipe(1);
        let (a, b, c) = (task(), task(), task());
        assert!(poll_read(&mut reader, &a).is_pending());
        // Polled again with nothing new: the second announcement merges with the first.
        assert!(poll_read(&mut reader, &a).is_pending());
        assert!(poll_read(&mut reader, &b).is_pending());
        assert_took_free_cell("reader", &a, &b);

        let writing = thread::spawn(move || {
            assert_eq!(poll_write(&mut writer, &task(), b'x'), Poll::Ready(1));
            writer
        });
        let last = poll_read(&mut reader, &c);
        let writer = writing.join().unwrap();
        match last {
            Poll::Ready(got) => assert_eq!(got, b"x"),
            Poll::Pending => {
                assert!(
                    wakes(&c) >= 1,
                    "the reader parked with `c` and nobody will wake it"
                );
                assert_eq!(poll_read(&mut reader, &c), Poll::Ready(b"x".to_vec()));
            }
        }
        assert_eq!(wakes(&a), 0, "the old task was woken after the reader moved");
        drop((writer, reader));
        assert_released(&[("a", &a), ("b", &b), ("c", &c)]);
    });
}

/// Model 6b: the mirror image for the writer: it waits for space on a full 1-byte ring
/// with task `a`, moves to `b`, then moves to `c` while the reader reads the byte.
#[test]
fn a_moved_writer_is_woken_through_its_new_waker() {
    model(|| {
        let (mut writer, mut reader) = wrpc_ring::pipe(1);
        let (a, b, c) = (task(), task(), task());
        assert_eq!(poll_write(&mut writer, &a, b'x'), Poll::Ready(1));
        assert!(poll_write(&mut writer, &a, b'y').is_pending());
        assert!(poll_write(&mut writer, &a, b'y').is_pending());
        assert!(poll_write(&mut writer, &b, b'y').is_pending());
        assert_took_free_cell("writer", &a, &b);

        let reading = thread::spawn(move || {
            assert_eq!(poll_read(&mut reader, &task()), Poll::Ready(b"x".to_vec()));
            reader
        });
        let last = poll_write(&mut writer, &c, b'y');
        let reader = reading.join().unwrap();
        match last {
            Poll::Ready(n) => assert_eq!(n, 1),
            Poll::Pending => {
                assert!(
                    wakes(&c) >= 1,
                    "the writer parked with `c` and nobody will wake it"
                );
                assert_eq!(poll_write(&mut writer, &c, b'y'), Poll::Ready(1));
            }
        }
        assert_eq!(wakes(&a), 0, "the old task was woken after the writer moved");
        drop((writer, reader));
        assert_released(&[("a", &a), ("b", &b), ("c", &c)]);
    });
}
