//! Participation in tokio's cooperative scheduling budget.
//!
//! Like `tokio::io::DuplexStream`, every read and write that makes progress spends one
//! unit of the task's budget, so a pipe that is always ready cannot starve the other
//! tasks of its worker. Under loom there is no tokio runtime, and the budget is skipped.

use std::task::{Context, Poll};

#[cfg(not(loom))]
pub(crate) use tokio::task::coop::RestoreOnPending as Budget;

/// A budget token that does nothing (loom builds).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Budget;

#[cfg(loom)]
impl Budget {
    pub(crate) fn made_progress(&self) {}
}

/// Takes one unit of budget, or returns `Pending` (after arranging a wake-up) when the
/// task has used up its budget and should yield.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<Budget> {
    #[cfg(not(loom))]
    return tokio::task::coop::poll_proceed(cx);
    #[cfg(loom)]
    {
        let _ = cx;
        Poll::Ready(Budget)
    }
}
