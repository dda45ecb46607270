//! A pool of rings, so that the per-invocation hot path allocates nothing.

use std::fmt;

use crate::ring::{Detached, Home, MIN_CAPACITY, Recycle, RingReader, RingStream, RingWriter};
use crate::sync::{self, Arc, AtomicU64, AtomicUsize, Mutex, Ordering, lock};

/// The most idle slots reserved up front; a pool may still keep more (up to its
/// `max_idle`), growing its idle list on demand.
const MAX_PREALLOCATED_IDLE: usize = 4096;

/// Recycles rings, so that setting up a stream allocates nothing once the pool is warm.
///
/// [`acquire`](Self::acquire) hands out a connected writer/reader pair, taken from the
/// idle rings when there is one (a *hit*) and freshly allocated otherwise (a *miss*);
/// it never blocks. A ring goes back to the pool only once **both** of its halves have
/// been dropped, however the stream ended; the ring core empties it and resets its close
/// state and wakers before the pool sees it, so no byte, close or task of a previous
/// user is ever visible to the next one. Rings returned while `max_idle` rings are
/// already idle are freed.
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
    /// What every leased ring goes back to: [`Returns`] of `inner`, made once per pool so
    /// that a lease only clones an `Arc`.
    home: Home,
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

struct PoolInner {
    ring_capacity: usize,
    max_idle: usize,
    idle: Mutex<Vec<Detached>>,
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
        let inner = Arc::new(PoolInner {
            ring_capacity,
            max_idle,
            idle: Mutex::new(Vec::with_capacity(max_idle.min(MAX_PREALLOCATED_IDLE))),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            in_use: AtomicUsize::new(0),
        });
        let home =
            sync::arc_from_std(std::sync::Arc::new(Returns(inner.clone())) as std::sync::Arc<dyn Recycle>);
        Self { inner, home }
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
        let ring = match popped {
            Some(ring) => {
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                ring
            }
            None => {
                self.inner.misses.fetch_add(1, Ordering::Relaxed);
                Detached::new(self.inner.ring_capacity)
            }
        };
        self.inner.in_use.fetch_add(1, Ordering::Relaxed);
        ring.lease(Some(self.home.clone()))
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

/// The pool's [`Recycle`] hook: what a leased ring holds to find its way back.
///
/// A ring holds it only while leased (the ring core drops it before the ring is handed
/// back), so an idle ring never keeps its pool alive.
struct Returns(Arc<PoolInner>);

impl Recycle for Returns {
    fn recycle(&self, ring: Detached) {
        let pool = &self.0;
        pool.in_use.fetch_sub(1, Ordering::Relaxed);
        let mut idle = lock(&pool.idle);
        if idle.len() < pool.max_idle {
            idle.push(ring);
        }
        // Otherwise `ring` (with its storage) is freed here, after the lock is released.
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
