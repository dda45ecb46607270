//! Model 5: recycling races the drop of the last half.
//!
//! Loom tracks every `loom::sync::Arc` the crate allocates (ring state, storage, the
//! pool itself) and fails a model whose execution ends with one still alive, so each
//! model also checks that recycling neither leaks a ring nor keeps the pool alive
//! through a reference cycle. Nothing here lives in a static.

#![cfg(loom)]

mod common;

use std::pin::Pin;
use std::task::{Context, Waker};

use common::{End, Via, model, read, read_to_end, task, try_read, write};
use loom::thread;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wrpc_ring::{PoolStats, RingPool};

fn stats(pool: &RingPool) -> (u64, u64, usize, usize) {
    let PoolStats {
        hits,
        misses,
        in_use,
        idle,
        ..
    } = pool.stats();
    (hits, misses, in_use, idle)
}

/// Checks that a freshly leased ring is as good as new: empty, open both ways, and that
/// it carries a stream again. Returns the halves' verdict through assertions only.
fn assert_fresh(pool: &RingPool) {
    let (mut writer, mut reader) = pool.acquire();
    assert!(!writer.is_closed(), "a recycled ring kept its close state");
    match try_read(&mut reader, 4) {
        None => {} // empty and open: the read waits
        Some(Ok(stale)) if !stale.is_empty() => panic!("a recycled ring kept bytes: {stale:?}"),
        Some(Ok(_)) => panic!("a recycled ring reads EOF"),
        Some(Err(err)) => panic!("a recycled ring reads an error: {err}"),
    }
    assert_eq!(write(&mut writer, b"z").unwrap(), 1);
    assert_eq!(read(&mut reader, 4).unwrap(), b"z");
    drop(writer);
    assert_eq!(read_to_end(&mut reader, Via::Read(4)), (Vec::new(), End::Eof));
}

/// Model 5: one ring, its writer (write, abort, drop) and its reader (one read attempt,
/// which may leave a waker registered, then drop) on two threads. Whichever half goes
/// last recycles the ring; the next lease gets it back empty and open.
#[test]
fn recycle_races_drop_of_last_half() {
    model(|| {
        let pool = RingPool::new(2, 1);
        let (mut writer, mut reader) = pool.acquire();
        assert_eq!(stats(&pool), (0, 1, 1, 0));

        let writing = thread::spawn(move || {
            // `BrokenPipe` if the reader is already gone.
            let _ = write(&mut writer, b"q");
            writer.abort("gone");
            drop(writer);
        });
        let reading = thread::spawn(move || {
            // Pending (waker left registered), the byte, or the abort: all fine.
            let _ = try_read(&mut reader, 1);
            drop(reader);
        });
        writing.join().unwrap();
        reading.join().unwrap();

        // (hits, misses, in_use, idle)
        assert_eq!(stats(&pool), (0, 1, 0, 1));
        assert_fresh(&pool);
        assert_eq!(stats(&pool), (1, 1, 0, 1));
    });
}

/// Model 5b: a lease races the return of the only ring: one thread drops both halves
/// of a used, aborted ring while the main thread leases. Whether the lease hits the
/// recycled ring or allocates a new one, it is as good as new: a ring must be emptied
/// and reset before it becomes visible in the idle list.
#[test]
fn acquire_races_recycle() {
    model(|| {
        let pool = RingPool::new(2, 1);
        let (mut writer, reader) = pool.acquire();
        assert_eq!(write(&mut writer, b"q").unwrap(), 1);
        writer.abort("gone");
        let returning = thread::spawn(move || {
            drop(writer);
            drop(reader);
        });
        assert_fresh(&pool);
        returning.join().unwrap();

        let (hits, misses, in_use, idle) = stats(&pool);
        assert_eq!(hits + misses, 2, "every lease counts once");
        assert_eq!((in_use, idle), (0, 1));
    });
}

/// The pool handle is dropped while a ring is leased and its halves are dropped on two
/// threads: the last half returns the ring to a pool that only the ring itself still
/// holds, and everything is freed (loom's leak check fails the model otherwise).
#[test]
fn pool_dropped_while_leased() {
    model(|| {
        let pool = RingPool::new(1, 1);
        let (writer, reader) = pool.acquire();
        drop(pool);
        let a = thread::spawn(move || drop(writer));
        let b = thread::spawn(move || drop(reader));
        a.join().unwrap();
        b.join().unwrap();
    });
}

/// Two rings returned at once to a pool that keeps one: one is kept, the other freed
/// (loom's leak check fails the model if it is not).
#[test]
fn concurrent_returns_respect_max_idle() {
    model(|| {
        let pool = RingPool::new(1, 1);
        let first = pool.acquire();
        let second = pool.acquire();
        assert_eq!(stats(&pool), (0, 2, 2, 0));
        let a = thread::spawn(move || drop(first));
        let b = thread::spawn(move || drop(second));
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(stats(&pool), (0, 2, 0, 1));
        assert_fresh(&pool);
        assert_eq!(stats(&pool), (1, 2, 0, 1));
    });
}

/// Model 5e: a recycled ring keeps no waker of its previous user. On two threads, the
/// writer writes one byte into a 1-byte ring, polls a second write once (it may park,
/// leaving its waker) and is dropped; the reader polls one read once (it may park) and
/// is dropped. A side registers its waker only after it found the stream open, so a
/// close that lands between that check and the registration leaves the waker in the
/// ring even though the poll returns `Ready` (the peer's close wake came before it).
/// Once the ring is idle in the pool, neither task may still be referenced by it: a
/// stale waker would keep the previous user's task alive, and the next user's close
/// would wake it.
#[test]
fn recycled_ring_keeps_no_waker() {
    model(|| {
        let pool = RingPool::new(1, 1);
        let (mut writer, mut reader) = pool.acquire();
        let writer_task = task();
        let reader_task = task();

        let waker = Waker::from(writer_task.clone());
        let writing = thread::spawn(move || {
            let mut cx = Context::from_waker(&waker);
            // `BrokenPipe` if the reader is already gone; either way one poll each.
            let _ = Pin::new(&mut writer).poll_write(&mut cx, b"a");
            let _ = Pin::new(&mut writer).poll_write(&mut cx, b"b");
            drop(writer);
        });
        let waker = Waker::from(reader_task.clone());
        let reading = thread::spawn(move || {
            let mut cx = Context::from_waker(&waker);
            let _ = Pin::new(&mut reader).poll_read(&mut cx, &mut ReadBuf::new(&mut [0; 1]));
            drop(reader);
        });
        writing.join().unwrap();
        reading.join().unwrap();

        assert_eq!(stats(&pool), (0, 1, 0, 1));
        assert_eq!(
            std::sync::Arc::strong_count(&writer_task),
            1,
            "a recycled ring kept its previous writer's waker"
        );
        assert_eq!(
            std::sync::Arc::strong_count(&reader_task),
            1,
            "a recycled ring kept its previous reader's waker"
        );
        assert_fresh(&pool);
    });
}
