//! The state shared by the two halves of one ring: close bits, wait bits, wakers.
//!
//! # The protocol
//!
//! One atomic word holds both the close state and the "may be waiting" bits, so a close
//! and a wait are totally ordered with each other (they are read-modify-writes of the
//! same location). Data availability lives in the ring's head/tail (see `buffer`).
//!
//! A side that finds nothing to do (reader: ring empty; writer: ring full) and the stream
//! open:
//! 1. makes sure its [`WaitCell`] holds its task's waker (a waker stays there between
//!    waits, so this is a `will_wake` test on every wait but the first),
//! 2. sets its `*_WAITING` bit with an `AcqRel` read-modify-write of the word, which
//!    also returns the close bits as of that moment,
//! 3. re-checks the ring (`Acquire`), takes the close bits from (2), and only then
//!    returns `Pending`.
//!
//! The other side, after publishing (writer: tail; reader: head, both `Release`),
//! clears the peer's `*_WAITING` bit with an `AcqRel` read-modify-write of the same
//! word, and wakes the peer (`wake_by_ref` on the waker in its cell) if the bit was set.
//! The same bit says who may touch the cell: see `wait` for that half of the protocol.
//! Read-modify-writes of one location are totally ordered, which gives the lost-wake-up
//! guard without any fence:
//! - if the announcement (2) comes first, the publisher's clear sees the bit and wakes;
//! - if the clear comes first, the announcement reads the value it wrote (release
//!   sequences run through read-modify-writes), so the clear *synchronizes with* it:
//!   the publication happens before the re-check (3), which therefore sees the data.
//!
//! That costs one locked instruction per write or read and no `mfence`, the wake only
//! when the peer announced it may be parked (so steady streaming pays no wake per
//! write), and no waker clone at all once a side has waited once. Closing sets a close
//! bit, then claims the peer's announcement like a publication does: a peer that
//! announced before the close is woken, and one that announces after it reads the close
//! bit from its announcement and does not park.
//!
//! A close never overtakes data: the writer publishes its last bytes before it sets
//! `WRITER_CLOSED`/`WRITER_ABORTED` (`SeqCst`, which includes `Release`), and the
//! reader reads the word (`Acquire`: a load, or the announcement (2)) *before* it looks
//! at the ring to decide that the stream ended, so a reader that sees the close also
//! sees every byte written before it. A reader that finds bytes needs no close word at
//! all: bytes written before a close are delivered before it in any case. So a read
//! with data costs one look at the ring, and a read on an empty, open ring one load of
//! the word, the announcement and one re-check of the ring.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::task::Waker;

use crossbeam_utils::CachePadded;

use super::recycle::Parts;
use super::wait::{Announcements, WaitCell};
use crate::error::Aborted;
use crate::sync::{AtomicUsize, Mutex, Ordering, lock};

/// The writer closed its end cleanly (shutdown or drop).
const WRITER_CLOSED: usize = 1 << 0;
/// The writer aborted; the reason is in [`Shared::abort_reason`].
const WRITER_ABORTED: usize = 1 << 1;
/// The reader is gone.
const READER_CLOSED: usize = 1 << 2;
/// The reader found the ring empty and may be parked.
const READER_WAITING: usize = 1 << 3;
/// The writer found the ring full and may be parked.
const WRITER_WAITING: usize = 1 << 4;

/// How the writer ended the stream, as the reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    /// Still writing.
    Open,
    /// Closed cleanly: the reader sees EOF once the ring is drained.
    Closed,
    /// Aborted: the reader sees an error once the ring is drained.
    Aborted,
}

/// One value of the state word, as the reader sees it: one test while the stream is
/// open, decoded into a [`WriterEnd`] only once it has ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseBits(usize);

impl CloseBits {
    /// Whether the writer is still writing.
    #[inline]
    pub(crate) fn is_open(self) -> bool {
        self.0 & (WRITER_CLOSED | WRITER_ABORTED) == 0
    }

    /// How the writer ended the stream.
    pub(crate) fn end(self) -> WriterEnd {
        if self.is_open() {
            WriterEnd::Open
        } else if self.0 & WRITER_ABORTED != 0 {
            WriterEnd::Aborted
        } else {
            WriterEnd::Closed
        }
    }
}

/// Shared by a [`RingWriter`](crate::RingWriter) and its [`RingReader`](crate::RingReader).
pub(crate) struct Shared {
    state: CachePadded<AtomicUsize>,
    reader: WaitCell,
    writer: WaitCell,
    abort_reason: Mutex<Option<Cow<'static, str>>>,
    /// Off the data path: touched when a half is dropped and when the ring is leased
    /// (see `recycle`).
    pub(super) parts: Mutex<Parts>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            state: CachePadded::new(AtomicUsize::new(0)),
            reader: WaitCell::new(),
            writer: WaitCell::new(),
            abort_reason: Mutex::new(None),
            parts: Mutex::new(Parts::default()),
        }
    }

    /// Loads the word; `Acquire` pairs with the close read-modify-writes.
    fn load(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }

    // ----- reader side -----

    /// The writer's close bits. Load them *before* looking at the ring.
    #[inline]
    pub(crate) fn close_bits(&self) -> CloseBits {
        CloseBits(self.load())
    }

    /// Steps 1–2 of the wait protocol for the reader; the caller re-checks afterwards.
    ///
    /// Returns the writer's close bits as of the announcement: the read-modify-write
    /// reads the word (`Acquire`), so it serves as the re-check's load of the close bits,
    /// and the ring is to be looked at after it.
    #[inline]
    pub(crate) fn reader_wait(&self, waker: &Waker, own: &mut Announcements) -> CloseBits {
        CloseBits(self.reader.announce(&self.state, READER_WAITING, own, waker))
    }

    /// After the writer published bytes: wake the reader if it may be waiting.
    #[inline]
    pub(crate) fn wake_reader(&self) {
        self.reader.claim_and_wake(&self.state, READER_WAITING);
    }

    /// The reader is gone: later writes fail, a pending writer is woken.
    pub(crate) fn close_reader(&self, own: &mut Announcements) {
        self.reader.forget(&self.state, READER_WAITING, own);
        self.state.fetch_or(READER_CLOSED, Ordering::SeqCst);
        self.writer.claim_and_wake(&self.state, WRITER_WAITING);
    }

    /// The error a reader returns after an abort, carrying the reason.
    pub(crate) fn abort_error(&self) -> io::Error {
        let reason = lock(&self.abort_reason)
            .clone()
            .unwrap_or(Cow::Borrowed("aborted"));
        io::Error::new(io::ErrorKind::ConnectionAborted, Aborted::new(reason))
    }

    // ----- writer side -----

    /// Whether the reader is gone.
    pub(crate) fn reader_closed(&self) -> bool {
        self.load() & READER_CLOSED != 0
    }

    /// Steps 1–2 of the wait protocol for the writer; the caller re-checks afterwards.
    ///
    /// Returns whether the reader is gone as of the announcement: the read-modify-write
    /// reads the word (`Acquire`), so it serves as the re-check's load of the close bits.
    pub(crate) fn writer_wait(&self, waker: &Waker, own: &mut Announcements) -> bool {
        self.writer.announce(&self.state, WRITER_WAITING, own, waker) & READER_CLOSED != 0
    }

    /// After the reader released space: wake the writer if it may be waiting.
    #[inline]
    pub(crate) fn wake_writer(&self) {
        self.writer.claim_and_wake(&self.state, WRITER_WAITING);
    }

    /// Ends the stream cleanly; the reader drains, then sees EOF.
    pub(crate) fn close_writer(&self, own: &mut Announcements) {
        self.writer.forget(&self.state, WRITER_WAITING, own);
        self.state.fetch_or(WRITER_CLOSED, Ordering::SeqCst);
        self.reader.claim_and_wake(&self.state, READER_WAITING);
    }

    /// Ends the stream with an error carrying `reason`, seen by the reader after it has
    /// drained the bytes written before.
    pub(crate) fn abort_writer(&self, reason: Cow<'static, str>, own: &mut Announcements) {
        self.writer.forget(&self.state, WRITER_WAITING, own);
        // The reason is stored before the bit is set, and the reader takes the lock
        // after it saw the bit, so the reader always finds it.
        *lock(&self.abort_reason) = Some(reason);
        self.state.fetch_or(WRITER_ABORTED, Ordering::SeqCst);
        self.reader.claim_and_wake(&self.state, READER_WAITING);
    }

    // ----- recycling -----

    /// Forgets the close state, the wait bits and the wakers. Only called when no half is
    /// alive (see `recycle`).
    pub(super) fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
        *lock(&self.abort_reason) = None;
        // Drop stale wakers so a recycled ring keeps no task alive.
        self.reader.reset();
        self.writer.reset();
    }
}

/// Prints every bit of the state word: the close state and the two "may be waiting"
/// bits, which are what a lost wake-up leaves behind (a side parked with its bit clear,
/// or a bit set that nobody clears).
impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Relaxed`: a snapshot for humans; it orders nothing.
        let state = self.state.load(Ordering::Relaxed);
        f.debug_struct("Shared")
            .field("writer_closed", &(state & WRITER_CLOSED != 0))
            .field("writer_aborted", &(state & WRITER_ABORTED != 0))
            .field("reader_closed", &(state & READER_CLOSED != 0))
            .field("reader_waiting", &(state & READER_WAITING != 0))
            .field("writer_waiting", &(state & WRITER_WAITING != 0))
            .finish_non_exhaustive()
    }
}
