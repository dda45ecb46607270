//! A registration's inbox: the bounded queue of invocations routed to one `serve`
//! registration and not yet taken by its serve stream.
//!
//! It holds only `(ticket, call)` pairs; what the callee gets (context and parameters)
//! waits in the [`Call`] itself, so that a caller who gives up takes it back at once
//! (and removes its entry from here) instead of leaving it queued until the server
//! polls. The ticket tells a queued invocation from a later one on the same pooled
//! `Call`.
//!
//! # Hand-off
//!
//! A registration may have a [`Handoff`]: a server task parked and ready to run a call at
//! once (the runtime's workers). While nothing is queued, [`offer`](Inbox::offer) gives the
//! invocation to it directly, on the invoker's task, instead of queueing it for the serve
//! stream's task to pass on: one task wake-up per call instead of two. Whatever the
//! hand-off refuses (no task parked, no concurrency permit free) is queued as before, and
//! nothing queued is ever overtaken: the hand-off is tried only on an empty queue.
//!
//! # Bound
//!
//! [`push`](Inbox::push) refuses an invocation once `max` are queued: the caller fails at
//! once with [`TransportError::Overloaded`](super::TransportError::Overloaded) instead of
//! queueing without limit behind a server that does not keep up.

use std::collections::VecDeque;
use std::fmt;
use std::task::{Context, Poll, Waker};

use crate::sync::{Arc, Mutex, lock};

use super::call::Call;
use super::headers::Headers;
use super::incoming::Incoming;
use super::outgoing::Outgoing;

/// What a registration's serve stream yields for one invocation.
pub(crate) type Invocation = (Option<Headers>, Outgoing, Incoming);

/// A server task ready to take an invocation straight from its invoker (see the
/// [module docs](self)).
pub(crate) trait Handoff: Send + Sync {
    /// Takes the invocation that `take` builds, if a task can run it now; `take` is
    /// called at most once, and only when the invocation is taken. Called with the
    /// inbox's lock held: it must not call back into the inbox.
    fn offer(&self, take: &mut dyn FnMut() -> Invocation) -> bool;
}

/// Why [`Inbox::push`] refused an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max` invocations are already queued.
    Full,
    /// The serve stream is gone.
    Closed,
}

/// A queued invocation: its ticket and its call.
pub(crate) type Queued = (u64, Arc<Call>);

#[derive(Default)]
struct State {
    queued: VecDeque<Queued>,
    /// The serve stream's task, parked on an empty inbox.
    waker: Option<Waker>,
    closed: bool,
    /// Dropped when the inbox closes: a closed registration hands nothing over.
    handoff: Option<Arc<dyn Handoff>>,
}

/// See the [module docs](self).
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Whether the registration came with a [`Handoff`] (fixed at creation), so that
    /// an invoker skips [`offer`](Self::offer) for one without.
    handoff: bool,
}

impl Inbox {
    pub(crate) fn new(handoff: Option<Arc<dyn Handoff>>) -> Self {
        Self {
            handoff: handoff.is_some(),
            state: Mutex::new(State {
                handoff,
                ..State::default()
            }),
        }
    }

    /// Invocations queued now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).queued.len()
    }

    /// Queues invocation `ticket` unless `max` are queued or the serve stream is gone,
    /// and wakes the serve stream (outside the lock).
    pub(crate) fn push(&self, ticket: u64, call: Arc<Call>, max: usize) -> Result<(), Refused> {
        let waker = {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(Refused::Closed);
            }
            if state.queued.len() >= max {
                return Err(Refused::Full);
            }
            state.queued.push_back((ticket, call));
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether the registration came with a [`Handoff`] (it may have closed since).
    pub(crate) fn hands_off(&self) -> bool {
        self.handoff
    }

    /// Hands the invocation `take` builds to the registration's [`Handoff`], if it has one,
    /// the inbox is open and nothing is queued (so that no queued invocation is
    /// overtaken), and the hand-off takes it. Returns whether it was taken.
    pub(crate) fn offer(&self, take: &mut dyn FnMut() -> Invocation) -> bool {
        let state = lock(&self.state);
        match &state.handoff {
            Some(handoff) if !state.closed && state.queued.is_empty() => handoff.offer(take),
            _ => false,
        }
    }

    /// Takes invocation `ticket` out of the queue (its caller gave up); a no-op if the
    /// serve stream took it already.
    pub(crate) fn remove(&self, ticket: u64) {
        let removed = {
            let mut state = lock(&self.state);
            let at = state.queued.iter().position(|(queued, _)| *queued == ticket);
            at.and_then(|at| state.queued.remove(at))
        };
        // The call's last reference may go here: outside the lock.
        drop(removed);
    }

    /// The oldest queued invocation, or `Pending` with the task's waker stored.
    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Queued> {
        let mut state = lock(&self.state);
        if let Some(queued) = state.queued.pop_front() {
            return Poll::Ready(queued);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Refuses later invocations and returns the queued ones.
    pub(crate) fn close(&self) -> VecDeque<Queued> {
        let (queued, handoff) = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.waker = None;
            (std::mem::take(&mut state.queued), state.handoff.take())
        };
        // The hand-off's last reference may go here: outside the lock.
        drop(handoff);
        queued
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Inbox")
            .field("queued", &state.queued.len())
            .field("closed", &state.closed)
            .field("handoff", &state.handoff.is_some())
            .finish_non_exhaustive()
    }
}
