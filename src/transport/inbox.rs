//! A registration's inbox: the bounded queue of invocations routed to one `serve`
//! registration and not yet taken by its serve stream.
//!
//! It holds only `(ticket, call)` pairs; what the callee gets (context and parameters)
//! waits in the [`Call`] itself, so that a caller who gives up takes it back at once
//! (and removes its entry from here) instead of leaving it queued until the server
//! polls. The ticket tells a queued invocation from a later one on the same pooled
//! `Call`.
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
}

/// See the [module docs](self).
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Self::default()
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
        let mut state = lock(&self.state);
        state.closed = true;
        state.waker = None;
        std::mem::take(&mut state.queued)
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Inbox")
            .field("queued", &state.queued.len())
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}
