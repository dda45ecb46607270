//! The waker cell of one side of a ring, and the half of the wait protocol that moves
//! wakers: who may write the cell, who may read it, and when.
//!
//! # Why not `AtomicWaker`
//!
//! A ring's wait protocol already has a word that orders a wait against a wake: the
//! state word, in which a side sets its `*_WAITING` bit and the peer clears it (see
//! `shared`). An [`AtomicWaker`](https://docs.rs/atomic-waker) next to it kept a second
//! state machine for the cell: two `compare_exchange`s to register, a `fetch_or` and a
//! `fetch_and` to wake, and since its `wake` *takes* the waker, a clone (a reference
//! count increment) for every wait. Per direction of a ping-pong that was seven locked
//! instructions. Here the `*_WAITING` bit itself says who owns the cell, and the waker
//! stays in it between waits, so a wait costs the announcement alone and a wake the
//! claim alone (one locked instruction each) plus one plain store.
//!
//! # Ownership of the cell
//!
//! The cell of the reader (the writer's is the mirror image) is written only by the
//! reader, and read by the reader and, after a *claim*, by the writer:
//!
//! 1. **Announce.** The reader makes sure the cell holds a waker that wakes its task,
//!    then sets `READER_WAITING` with an `AcqRel` read-modify-write. The `Release`
//!    publishes the cell to whoever claims the announcement.
//! 2. **Claim.** The writer clears `READER_WAITING` with an `AcqRel` read-modify-write.
//!    If the bit was set, the claim *takes* that announcement: the writer may now read
//!    the cell (the `Acquire` pairs with the announcement's `Release`), calls
//!    `wake_by_ref` on the waker there, then adds one to [`WaitCell::woken`] with a
//!    `Release` store (it is the only writer of that counter).
//! 3. **Replace.** The cell holds a waker that would not wake the reader's task (or
//!    none). The reader first *retracts* any announcement still outstanding: it clears
//!    `READER_WAITING` itself, and if the bit was set, nobody took that announcement or
//!    ever will. Now every announcement it made is either retracted or taken, and no new
//!    one can be taken until it announces again. It counts the taken ones itself
//!    ([`Announcements`]): one for each announcement that found the bit clear, less one
//!    for each retraction that found it set. If `woken` (`Acquire`) equals that count,
//!    every taken announcement's wake has finished reading the cell, and the reader may
//!    write it. Otherwise the writer is still waking the old waker: the reader wakes its
//!    own task (so it is polled again) and does not announce; the replacement happens on
//!    a later poll. That is rare: a task's waker stays the same between polls, so the
//!    replacement happens on a half's first wait, or when a half moves to another task.
//!
//! Both counts wrap; only their equality matters.

use std::task::Waker;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// The waker of the one task that may be parked on one side of a ring.
pub(crate) struct WaitCell {
    /// Written by the waiting side only while it owns the cell (see the module docs); read
    /// by the waiting side at any time, and by the peer between a claim and its
    /// `woken` store.
    waker: UnsafeCell<Option<Waker>>,
    /// How many claims' wakes have finished reading [`waker`](Self::waker). Written by the
    /// peer only, after each of its claims.
    woken: AtomicUsize,
}

// SAFETY: the cell is shared between the two halves of a ring under the ownership
// protocol in the module docs: the waiting side writes it only when no claim can be
// reading it, and `Waker` is `Send + Sync`. loom checks the protocol (`loom-tests/`).
unsafe impl Sync for WaitCell {}

/// Held by the waiting half: how many of its announcements the peer has taken or may
/// still take (see the module docs, "Replace").
#[derive(Debug, Default)]
pub(crate) struct Announcements(usize);

impl WaitCell {
    pub(crate) fn new() -> Self {
        Self {
            waker: UnsafeCell::new(None),
            woken: AtomicUsize::new(0),
        }
    }

    /// Steps 1 (and, when needed, 3) for the waiting side: makes the cell hold a waker
    /// that wakes `waker`'s task, then sets `bit` in `state`. Returns the word as the
    /// announcement read it (`Acquire`), to be used as the re-check's close bits.
    ///
    /// If the cell cannot be written yet (the peer is still waking the previous waker),
    /// nothing is announced: `waker` is woken at once, so the caller's `Pending` is
    /// followed by another poll, and the returned word is a fresh `Acquire` load.
    ///
    /// Only the waiting half calls this, with the [`Announcements`] it holds.
    #[inline]
    pub(crate) fn announce(
        &self,
        state: &AtomicUsize,
        bit: usize,
        own: &mut Announcements,
        waker: &Waker,
    ) -> usize {
        // SAFETY: only the waiting side writes the cell, and this is the waiting side:
        // reading it never races a write (the peer only reads it too).
        let current = self
            .waker
            .with(|cell| unsafe { (*cell).as_ref().is_some_and(|w| w.will_wake(waker)) });
        if !current && !self.replace(state, bit, own, waker) {
            crate::sync::retry_later();
            waker.wake_by_ref();
            return state.load(Ordering::Acquire);
        }
        let word = state.fetch_or(bit, Ordering::AcqRel);
        if word & bit == 0 {
            // A new announcement, which the peer may take; one already outstanding
            // (set, and neither taken nor retracted) merges with this one.
            own.0 = own.0.wrapping_add(1);
        }
        word
    }

    /// Step 3: retracts an outstanding announcement and, if no claim is still reading the
    /// cell, stores a clone of `waker` in it. Returns whether it did.
    #[cold]
    #[inline(never)]
    fn replace(&self, state: &AtomicUsize, bit: usize, own: &mut Announcements, waker: &Waker) -> bool {
        if !self.retract(state, bit, own) {
            return false;
        }
        // SAFETY: `retract` returned true: no announcement is outstanding and every taken
        // one's wake has finished reading the cell (its `woken` store happened before
        // our `Acquire` load), and none can be taken before we announce again.
        let old = self
            .waker
            .with_mut(|cell| unsafe { (*cell).replace(waker.clone()) });
        drop(old);
        true
    }

    /// Clears `bit` if it is still set (the announcement then is ours again), and
    /// returns whether the cell is now the waiting side's to write: no claim can be
    /// reading it.
    fn retract(&self, state: &AtomicUsize, bit: usize, own: &mut Announcements) -> bool {
        if state.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
            own.0 = own.0.wrapping_sub(1);
        }
        self.woken.load(Ordering::Acquire) == own.0
    }

    /// The waiting half is going away: forgets its waker if it can do so now, so that it
    /// does not keep its task alive for as long as the ring lives. If a claim is still
    /// reading the cell, the waker stays until the ring is reset.
    pub(crate) fn forget(&self, state: &AtomicUsize, bit: usize, own: &mut Announcements) {
        if self.retract(state, bit, own) {
            // SAFETY: as in `replace`.
            let old = self.waker.with_mut(|cell| unsafe { (*cell).take() });
            drop(old);
        }
    }

    /// Step 2 for the peer: clears `bit` and, if it was set, wakes the waker in the cell.
    ///
    /// Only the peer half calls this (one thread at a time: it owns that half).
    #[inline]
    pub(crate) fn claim_and_wake(&self, state: &AtomicUsize, bit: usize) {
        if state.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
            self.wake_taken();
        }
    }

    /// The claim took an announcement: wake the waker it published, then say so.
    #[inline]
    fn wake_taken(&self) {
        // SAFETY: the claim took an announcement, whose `Release` published the cell;
        // the waiting side will not write it until it has seen the `woken` store below.
        self.waker.with(|cell| unsafe {
            if let Some(waker) = &*cell {
                waker.wake_by_ref();
            }
        });
        // `Relaxed` load: this side is the only writer of the counter.
        let woken = self.woken.load(Ordering::Relaxed);
        self.woken.store(woken.wrapping_add(1), Ordering::Release);
    }

    /// Forgets the waker and the count. Only called when neither half is alive (see
    /// `recycle`), so nothing else can touch the cell.
    pub(crate) fn reset(&self) {
        // SAFETY: no half is alive, so neither side can read or write the cell; the
        // lock that handed the last half's parts over ordered their accesses before.
        let old = self.waker.with_mut(|cell| unsafe { (*cell).take() });
        drop(old);
        self.woken.store(0, Ordering::Relaxed);
    }
}
