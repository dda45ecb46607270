//! Ring storage: single-producer single-consumer byte slots.
//!
//! The interface is deliberately small (contiguous free region, commit, contiguous
//! readable region, consume) so that two implementations can share it:
//!
//! * normally, [`rtrb`] does the work: its head and tail are published with
//!   `Release` stores and read with `Acquire` loads;
//! * under `--cfg loom`, a minimal stand-in with the *same publication protocol* built
//!   from loom's atomics and cells, so that loom explores the head/tail publication
//!   together with the wake and close protocol layered on top of it (rtrb's `std`
//!   atomics are invisible to loom).
//!
//! Positions are owned as in any SPSC ring: the slots from `tail` up to `head` (going
//! round) belong to the producer, the slots from `head` to `tail` to the consumer.

#[cfg(not(loom))]
pub(crate) use self::rtrb_backed::{Consumer, Producer, ring};

#[cfg(loom)]
pub(crate) use self::model::{Consumer, Producer, ring};
#[cfg(loom)]
pub use self::model::{Positions, set_positions};

#[cfg(not(loom))]
mod rtrb_backed {
    use std::fmt;
    use std::mem::MaybeUninit;

    use tokio::io::ReadBuf;

    /// The writing end of the storage.
    pub(crate) struct Producer {
        inner: rtrb::Producer<u8>,
    }

    /// The reading end of the storage.
    pub(crate) struct Consumer {
        inner: rtrb::Consumer<u8>,
    }

    /// Creates storage for `capacity` bytes.
    ///
    /// Every slot is written once here, so that all ring memory holds initialized bytes
    /// from then on. That is what lets [`Producer::write_buf`] hand out `&mut [u8]`
    /// instead of `MaybeUninit`, and so lets an encoder write straight into the ring.
    pub(crate) fn ring(capacity: usize) -> (Producer, Consumer) {
        let (mut producer, mut consumer) = rtrb::RingBuffer::<u8>::new(capacity);
        if let Ok(chunk) = producer.write_chunk(capacity) {
            // `write_chunk` fills every slot with `u8::default()` through rtrb's safe API.
            chunk.commit_all();
        }
        if let Ok(chunk) = consumer.read_chunk(capacity) {
            // Reading a `u8` slot drops it in place, which for `u8` does nothing: the
            // bytes stay initialized.
            chunk.commit_all();
        }
        (Producer { inner: producer }, Consumer { inner: consumer })
    }

    impl Producer {
        /// Total capacity in bytes.
        pub(crate) fn capacity(&self) -> usize {
            self.inner.buffer().capacity()
        }

        /// The largest contiguous free region (empty when the ring is full).
        ///
        /// Refreshes the consumer's position with an `Acquire` load.
        pub(crate) fn write_buf(&mut self) -> &mut [u8] {
            let free = self.inner.slots();
            if free == 0 {
                return &mut [];
            }
            // The chunk is left uncommitted (`WriteChunkUninit` has no `Drop`): it only
            // locates the free slots, which stay this producer's.
            let (ptr, len) = match self.inner.write_chunk_uninit(free) {
                Ok(mut chunk) => {
                    let (first, _) = chunk.as_mut_slices();
                    (first.as_mut_ptr().cast::<u8>(), first.len())
                }
                Err(_) => return &mut [],
            };
            // SAFETY: `ptr..ptr + len` are free slots, which only this producer may touch
            // until it commits them, and the returned borrow of `self` keeps the producer
            // (and the `Arc`ed storage it owns) alive and exclusive for that long. Every
            // slot was initialized in `ring()` and a `u8` slot is never de-initialized, so
            // viewing the `MaybeUninit<u8>` slots as `u8` is sound.
            unsafe { std::slice::from_raw_parts_mut(ptr, len) }
        }

        /// Publishes the first `n` bytes of the last [`write_buf`](Self::write_buf) to
        /// the consumer (`Release`).
        pub(crate) fn commit(&mut self, n: usize) {
            if n == 0 {
                return;
            }
            debug_assert!(n <= self.inner.slots(), "commit beyond the free region");
            if let Ok(chunk) = self.inner.write_chunk_uninit(n) {
                // SAFETY: every slot holds an initialized byte (see `ring()`); the caller
                // has written the ones it meant to write through `write_buf`.
                unsafe { chunk.commit_all() };
            }
        }

        /// Whether no byte can be written. The cached position is conservative (the
        /// consumer only ever frees more), so only when it shows a full ring is the
        /// consumer's position refreshed (`Acquire`).
        pub(crate) fn is_full(&self) -> bool {
            self.inner.cached_slots() == 0 && self.inner.slots() == 0
        }

        /// Copies as much of `data` as fits, publishing it with one `Release` store.
        ///
        /// Asks rtrb for room for the whole of `data` at once: it loads the consumer's
        /// position (`Acquire`) only when the cached one shows too little room, and then
        /// says how much there is, so a partial write costs a second, load-free request.
        /// Copies into the second region only when the bytes wrap (rtrb's
        /// `push_partial_slice` always makes both copies, the second often empty).
        /// Returns the count copied: 0 only when the ring is full or `data` is empty.
        #[inline(always)]
        pub(crate) fn push(&mut self, data: &[u8]) -> usize {
            if data.is_empty() {
                return 0;
            }
            let free = match self.inner.write_chunk_uninit(data.len()) {
                Ok(chunk) => return fill(chunk, data),
                Err(rtrb::chunks::ChunkError::TooFewSlots(free)) => free,
            };
            if free == 0 {
                return 0;
            }
            match self.inner.write_chunk_uninit(free) {
                Ok(chunk) => fill(chunk, &data[..free]),
                Err(_) => 0,
            }
        }
    }

    /// Copies `data` into `chunk`, as long as `data`, and publishes it (`Release`).
    #[inline(always)]
    fn fill(mut chunk: rtrb::chunks::WriteChunkUninit<'_, u8>, data: &[u8]) -> usize {
        let (first, second) = chunk.as_mut_slices();
        let (head, rest) = data.split_at(first.len());
        copy_into(first, head);
        if !rest.is_empty() {
            // Only when the bytes wrap: no empty second copy.
            copy_into(second, rest);
        }
        // SAFETY: the chunk's two regions, `data.len()` slots in all, were written just
        // above (`copy_into` checks each length).
        unsafe { chunk.commit_all() };
        data.len()
    }

    /// Copies `src` into the free slots `dst`, which must be as long.
    #[inline]
    fn copy_into(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
        assert_eq!(
            dst.len(),
            src.len(),
            "a ring region and its bytes differ in length"
        );
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; both slices are `src.len()`
        // long (asserted above) and cannot overlap, since `dst` is ring memory borrowed
        // exclusively by the producer and `src` a shared borrow from elsewhere.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) }
    }

    impl Consumer {
        /// Whether a byte is readable. Uses the cached producer position when it shows
        /// bytes (no atomic access), and only otherwise refreshes it (`Acquire`).
        #[inline]
        pub(crate) fn has_readable(&self) -> bool {
            self.inner.cached_slots() > 0 || self.inner.slots() > 0
        }

        /// Whether a byte is readable, always refreshing the producer's position
        /// (`Acquire`): for a re-check after the cached position showed nothing.
        #[inline]
        pub(crate) fn has_readable_fresh(&self) -> bool {
            self.inner.slots() > 0
        }

        /// The largest contiguous readable region (empty when the ring is empty).
        ///
        /// Uses the cached producer position when it shows bytes (the caller has just
        /// refreshed it in the common case), refreshing it otherwise.
        pub(crate) fn read_buf(&mut self) -> &[u8] {
            let cached = self.inner.cached_slots();
            let available = if cached > 0 { cached } else { self.inner.slots() };
            if available == 0 {
                return &[];
            }
            // The chunk is left uncommitted (`ReadChunk` has no `Drop`), which releases
            // nothing: it only locates the readable slots.
            let (ptr, len) = match self.inner.read_chunk(available) {
                Ok(chunk) => {
                    let (first, _) = chunk.as_slices();
                    (first.as_ptr(), first.len())
                }
                Err(_) => return &[],
            };
            // SAFETY: `ptr..ptr + len` are published slots, which the producer does not
            // touch until this consumer releases them with `consume`; that needs
            // `&mut self`, which the returned borrow excludes. The storage is owned (via
            // `Arc`) by `self.inner`, alive for the borrow.
            unsafe { std::slice::from_raw_parts(ptr, len) }
        }

        /// Copies as many readable bytes as fit into `dst`, from both regions when they
        /// wrap, and releases them to the producer with one `Release` store: one pass
        /// through rtrb's chunk API. Loads the producer's position (`Acquire`) only when
        /// the cached one shows nothing. Returns the count copied.
        pub(crate) fn read_into(&mut self, dst: &mut ReadBuf<'_>) -> usize {
            let cached = self.inner.cached_slots();
            let available = if cached > 0 { cached } else { self.inner.slots() };
            let n = available.min(dst.remaining());
            if n == 0 {
                return 0;
            }
            // `n` is within the (refreshed) readable count, so the chunk never fails and
            // loads nothing more.
            let Ok(chunk) = self.inner.read_chunk(n) else {
                return 0;
            };
            let (first, second) = chunk.as_slices();
            dst.put_slice(first);
            if !second.is_empty() {
                // Only when the bytes wrap: no empty second copy.
                dst.put_slice(second);
            }
            chunk.commit_all();
            n
        }

        /// Releases the first `n` readable bytes to the producer (`Release`).
        pub(crate) fn consume(&mut self, n: usize) {
            // A caller may only consume what `read_buf` showed, which the cached
            // position covers: no atomic access then. Beyond it (a caller breaking the
            // `AsyncBufRead` contract), clamp to what is really there.
            let cached = self.inner.cached_slots();
            let n = if n <= cached { n } else { n.min(self.inner.slots()) };
            if n == 0 {
                return;
            }
            if let Ok(chunk) = self.inner.read_chunk(n) {
                chunk.commit_all();
            }
        }

        /// Discards every readable byte.
        pub(crate) fn clear(&mut self) {
            let available = self.inner.slots();
            self.consume(available);
        }
    }

    impl fmt::Debug for Producer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Producer")
                .field("capacity", &self.capacity())
                .finish()
        }
    }

    impl fmt::Debug for Consumer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Consumer")
                .field("available", &self.inner.slots())
                .finish()
        }
    }
}

#[cfg(loom)]
mod model {
    //! The loom stand-in: the same interface and publication protocol as rtrb
    //! (positions grow without bound; the owner stores its own position with `Release`
    //! and reads the peer's with `Acquire`), with one loom cell per byte so that loom
    //! also flags any access to a slot the other side still owns. Bytes move through a
    //! local scratch buffer, since loom cells cannot be viewed as one slice.
    //!
    //! # Positions: cached or fresh
    //!
    //! rtrb keeps a copy of the peer's position and loads the real one only when the
    //! copy shows too little (full for the producer, empty for the consumer); `slots()`
    //! always loads. In [`Positions::Cached`] mode (the default) the stand-in does the
    //! same, call for call with `rtrb_backed` above, so loom explores exactly the loads
    //! the real ring makes, the consumer's load-free fast path in `has_readable` included.
    //! In [`Positions::Fresh`] mode every check loads the peer's position (`has_readable`
    //! never trusts the cache): more loads, so loom sees every stale value a load could
    //! return at every step, which is what the models used before rtrb's caching was.

    use std::cell::Cell;
    use std::fmt;

    use tokio::io::ReadBuf;

    use crate::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

    /// How a stand-in ring reads its peer's position (see the module docs).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Positions {
        /// Cache the peer's position and reload it only when it looks full/empty, as
        /// rtrb does.
        Cached,
        /// Load the peer's position at every check.
        Fresh,
    }

    std::thread_local! {
        // A plain std thread-local: loom runs a model's threads as coroutines on the
        // test's own OS thread, so this is per test, and loom does not see it.
        static POSITIONS: Cell<Positions> = const { Cell::new(Positions::Cached) };
    }

    /// Chooses how rings created from now on, on this OS thread, read positions.
    pub fn set_positions(positions: Positions) {
        POSITIONS.with(|cell| cell.set(positions));
    }

    struct Storage {
        head: AtomicUsize,
        tail: AtomicUsize,
        slots: Box<[UnsafeCell<u8>]>,
    }

    // SAFETY: each slot is accessed only by the side that owns it under the head/tail
    // protocol described in the module docs; loom checks exactly that.
    unsafe impl Sync for Storage {}
    // SAFETY: as above; the cells hold plain bytes.
    unsafe impl Send for Storage {}

    pub(crate) struct Producer {
        storage: Arc<Storage>,
        tail: usize,
        /// The consumer's position as last loaded (`Cell`: refreshed from `&self`).
        cached_head: Cell<usize>,
        cached: bool,
        scratch: Vec<u8>,
    }

    pub(crate) struct Consumer {
        storage: Arc<Storage>,
        head: usize,
        /// The producer's position as last loaded.
        cached_tail: Cell<usize>,
        cached: bool,
        scratch: Vec<u8>,
    }

    pub(crate) fn ring(capacity: usize) -> (Producer, Consumer) {
        let cached = POSITIONS.with(Cell::get) == Positions::Cached;
        let storage = Arc::new(Storage {
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            slots: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
        });
        let producer = Producer {
            storage: storage.clone(),
            tail: 0,
            cached_head: Cell::new(0),
            cached,
            scratch: vec![0; capacity],
        };
        let consumer = Consumer {
            storage,
            head: 0,
            cached_tail: Cell::new(0),
            cached,
            scratch: vec![0; capacity],
        };
        (producer, consumer)
    }

    impl Storage {
        fn capacity(&self) -> usize {
            self.slots.len()
        }
    }

    impl Producer {
        pub(crate) fn capacity(&self) -> usize {
            self.storage.capacity()
        }

        /// rtrb's `Producer::slots`: loads the consumer's position.
        fn slots(&self) -> usize {
            self.cached_head.set(self.storage.head.load(Ordering::Acquire));
            self.cached_slots()
        }

        /// rtrb's `Producer::cached_slots`: no atomic access.
        fn cached_slots(&self) -> usize {
            self.capacity() - (self.tail - self.cached_head.get())
        }

        pub(crate) fn is_full(&self) -> bool {
            if self.cached {
                self.cached_slots() == 0 && self.slots() == 0
            } else {
                self.slots() == 0
            }
        }

        pub(crate) fn write_buf(&mut self) -> &mut [u8] {
            // `rtrb_backed::write_buf` calls `slots()`, which always loads.
            let free = self.slots();
            let contiguous = self.capacity() - self.tail % self.capacity();
            &mut self.scratch[..free.min(contiguous)]
        }

        pub(crate) fn commit(&mut self, n: usize) {
            for i in 0..n {
                let slot = &self.storage.slots[(self.tail + i) % self.capacity()];
                let byte = self.scratch[i];
                // SAFETY: the slot is free, so owned by the producer (loom checks it).
                slot.with_mut(|p| unsafe { *p = byte });
            }
            self.tail += n;
            self.storage.tail.store(self.tail, Ordering::Release);
        }

        pub(crate) fn push(&mut self, data: &[u8]) -> usize {
            // rtrb's `push_partial_slice`: loads only when the cache shows too little.
            let n = if !self.cached || self.cached_slots() < data.len() {
                data.len().min(self.slots())
            } else {
                data.len()
            };
            for (i, byte) in data[..n].iter().enumerate() {
                let slot = &self.storage.slots[(self.tail + i) % self.capacity()];
                // SAFETY: the slot is free, so owned by the producer (loom checks it).
                slot.with_mut(|p| unsafe { *p = *byte });
            }
            if n > 0 {
                self.tail += n;
                self.storage.tail.store(self.tail, Ordering::Release);
            }
            n
        }
    }

    impl Consumer {
        /// rtrb's `Consumer::slots`: loads the producer's position.
        fn slots(&self) -> usize {
            self.cached_tail.set(self.storage.tail.load(Ordering::Acquire));
            self.cached_slots()
        }

        /// rtrb's `Consumer::cached_slots`: no atomic access.
        fn cached_slots(&self) -> usize {
            self.cached_tail.get() - self.head
        }

        pub(crate) fn has_readable(&self) -> bool {
            // As `rtrb_backed::has_readable`: the cache first, a load only when it shows
            // nothing (`Fresh` mode: always a load).
            (self.cached && self.cached_slots() > 0) || self.slots() > 0
        }

        pub(crate) fn has_readable_fresh(&self) -> bool {
            self.slots() > 0
        }

        pub(crate) fn read_buf(&mut self) -> &[u8] {
            let cached = if self.cached { self.cached_slots() } else { 0 };
            let available = if cached > 0 { cached } else { self.slots() };
            let capacity = self.storage.capacity();
            let contiguous = capacity - self.head % capacity;
            let len = available.min(contiguous);
            for i in 0..len {
                let slot = &self.storage.slots[(self.head + i) % capacity];
                // SAFETY: the slot is published, so owned by the consumer (loom checks it).
                self.scratch[i] = slot.with(|p| unsafe { *p });
            }
            &self.scratch[..len]
        }

        pub(crate) fn read_into(&mut self, dst: &mut ReadBuf<'_>) -> usize {
            // As `rtrb_backed::read_into`: the cache first, one `Release` store.
            let cached = if self.cached { self.cached_slots() } else { 0 };
            let available = if cached > 0 { cached } else { self.slots() };
            let n = available.min(dst.remaining());
            let capacity = self.storage.capacity();
            for i in 0..n {
                let slot = &self.storage.slots[(self.head + i) % capacity];
                // SAFETY: the slot is published, so owned by the consumer (loom checks it).
                let byte = slot.with(|p| unsafe { *p });
                dst.put_slice(&[byte]);
            }
            if n > 0 {
                self.head += n;
                self.storage.head.store(self.head, Ordering::Release);
            }
            n
        }

        pub(crate) fn consume(&mut self, n: usize) {
            let cached = if self.cached { self.cached_slots() } else { 0 };
            let n = if n <= cached { n } else { n.min(self.slots()) };
            if n > 0 {
                self.head += n;
                self.storage.head.store(self.head, Ordering::Release);
            }
        }

        pub(crate) fn clear(&mut self) {
            let n = self.slots();
            self.consume(n);
        }
    }

    impl fmt::Debug for Producer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Producer").finish_non_exhaustive()
        }
    }

    impl fmt::Debug for Consumer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Consumer").finish_non_exhaustive()
        }
    }
}
