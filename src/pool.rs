//! A pool of rings, so that the per-invocation hot path allocates nothing.

use std::fmt;

use crate::ring::shared::{Parts, Shared};
use crate::ring::{self, MIN_CAPACITY, RingReader, RingStream, RingWriter};
use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering, lock};

/// The most idle slots reserved up front; a pool may still keep more (up to its
/// `max_idle`), growing its idle list on demand.
const MAX_PREALLOCATED_IDLE: usize = 4096;

/// Recycles rings, so that setting up a stream allocates nothing once the pool is warm.
///
/// [`acquire`](Self::acquire) hands out a connected writer/reader pair, taken from the
/// idle rings when there is one (a *hit*) and freshly allocated otherwise (a *miss*);
/// it never blocks. A ring goes back to the pool only once **both** of its halves have
/// been dropped, however the stream ended; it is then emptied and its close state reset,
/// so no byte or close from a previous user is ever visible to the next one. Rings
/// returned while `max_idle` rings are already idle are freed.
///
/// The pool is a cheap handle: clones share the same rings and counters.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use wrpc_ring::RingPool;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let pool = RingPool::new(64 * 1024, 16);
/// for _ in 0..3 {
///     let (mut writer, mut reader) = pool.acquire();
///     writer.write_all(b"hi").await?;
///     drop(writer);
///     let mut got = Vec::new();
///     reader.read_to_end(&mut got).await?;
///     assert_eq!(got, b"hi");
/// } // both halves dropped: the ring is idle again
///
/// let stats = pool.stats();
/// assert_eq!((stats.misses, stats.hits, stats.in_use, stats.idle), (1, 2, 0, 1));
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RingPool {
    inner: Arc<PoolInner>,
}

/// A snapshot of a [`RingPool`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Rings handed out from the idle list.
    pub hits: u64,
    /// Rings allocated because none was idle.
    pub misses: u64,
    /// Rings handed out and not yet returned (a duplex pair counts two).
    pub in_use: usize,
    /// Rings waiting in the pool.
    pub idle: usize,
}

pub(crate) struct PoolInner {
    ring_capacity: usize,
    max_idle: usize,
    idle: Mutex<Vec<Arc<Shared>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    in_use: AtomicUsize,
}

impl RingPool {
    /// Creates an empty pool of rings of `ring_capacity` bytes that keeps at most
    /// `max_idle` idle rings.
    ///
    /// # Panics
    ///
    /// If `ring_capacity` is zero.
    pub fn new(ring_capacity: usize, max_idle: usize) -> Self {
        assert!(
            ring_capacity >= MIN_CAPACITY,
            "ring capacity must be at least {MIN_CAPACITY} byte, got {ring_capacity}"
        );
        Self {
            inner: Arc::new(PoolInner {
                ring_capacity,
                max_idle,
                idle: Mutex::new(Vec::with_capacity(max_idle.min(MAX_PREALLOCATED_IDLE))),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                in_use: AtomicUsize::new(0),
            }),
        }
    }

    /// The capacity of every ring of this pool, in bytes.
    pub fn ring_capacity(&self) -> usize {
        self.inner.ring_capacity
    }

    /// The most idle rings this pool keeps.
    pub fn max_idle(&self) -> usize {
        self.inner.max_idle
    }

    /// Leases one ring and returns its two halves, as [`pipe`](crate::pipe) does.
    ///
    /// Reuses an idle ring without allocating when there is one, allocates otherwise;
    /// never blocks.
    pub fn acquire(&self) -> (RingWriter, RingReader) {
        let popped = lock(&self.inner.idle).pop();
        let leased = popped.and_then(|shared| {
            let mut parts = lock(&shared.parts);
            let (producer, consumer) = (parts.producer.take()?, parts.consumer.take()?);
            parts.home = Some(self.inner.clone());
            drop(parts);
            Some((shared, producer, consumer))
        });
        let (shared, producer, consumer) = match leased {
            Some(leased) => {
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                leased
            }
            None => {
                self.inner.misses.fetch_add(1, Ordering::Relaxed);
                let (shared, producer, consumer) = ring::fresh(self.inner.ring_capacity);
                lock(&shared.parts).home = Some(self.inner.clone());
                (shared, producer, consumer)
            }
        };
        self.inner.in_use.fetch_add(1, Ordering::Relaxed);
        ring::halves(shared, producer, consumer)
    }

    /// Leases two rings and returns a connected pair of bidirectional streams, as
    /// [`duplex`](crate::duplex) does.
    pub fn acquire_duplex(&self) -> (RingStream, RingStream) {
        let (a_writer, b_reader) = self.acquire();
        let (b_writer, a_reader) = self.acquire();
        (
            RingStream::new(a_reader, a_writer),
            RingStream::new(b_reader, b_writer),
        )
    }

    /// The pool's counters, read now.
    pub fn stats(&self) -> PoolStats {
        let idle = lock(&self.inner.idle).len();
        PoolStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            in_use: self.inner.in_use.load(Ordering::Relaxed),
            idle,
        }
    }
}

impl PoolInner {
    /// Takes back a ring whose halves are both gone.
    fn recycle(&self, shared: Arc<Shared>, producer: ring::Producer, mut consumer: ring::Consumer) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        // Empty the ring and forget its close state before anyone can lease it again.
        consumer.clear();
        shared.reset();
        {
            let mut parts = lock(&shared.parts);
            parts.producer = Some(producer);
            parts.consumer = Some(consumer);
        }
        let mut idle = lock(&self.idle);
        if idle.len() < self.max_idle {
            idle.push(shared);
        }
        // Otherwise `shared` (with its storage) is freed here.
    }
}

/// Called by each half as it is dropped: `deposit` stores the half's part of the ring.
/// The second half to arrive finds the ring whole and returns it to its pool (or frees
/// it, for a ring made by [`pipe`](crate::pipe)).
pub(crate) fn release(shared: &Arc<Shared>, deposit: impl FnOnce(&mut Parts)) {
    let mut parts = lock(&shared.parts);
    deposit(&mut parts);
    if parts.producer.is_none() || parts.consumer.is_none() {
        return; // the other half is still alive
    }
    let (Some(producer), Some(consumer)) = (parts.producer.take(), parts.consumer.take()) else {
        return;
    };
    let home = parts.home.take();
    drop(parts);
    if let Some(pool) = home {
        pool.recycle(shared.clone(), producer, consumer);
    }
}

impl fmt::Debug for RingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingPool")
            .field("ring_capacity", &self.inner.ring_capacity)
            .field("max_idle", &self.inner.max_idle)
            .field("stats", &self.stats())
            .finish()
    }
}

impl fmt::Debug for PoolInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolInner")
            .field("ring_capacity", &self.ring_capacity)
            .finish_non_exhaustive()
    }
}
