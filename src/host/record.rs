//! What the host tracks of one call in flight — its one deadline, what its errors
//! name, how it ended — in records that are pooled, so that a call's tracking
//! allocates nothing once the pool is warm.
//!
//! A [`CallRecord`] is shared by the caller's streams of one call (the root results
//! reader, sub-stream handles, the parameter writer) and the invoke future. Each
//! holder is a [`RecordRef`]; the last one to go records the call's outcome in the
//! [`Metrics`] and puts the record back in its [`RecordPool`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::time::Sleep;

use super::config::TransportKind;
use super::metrics::{Metrics, Outcome, TargetCounters};
use super::nats::ClientLease;

/// Records kept for reuse; more calls than this at once still work, their records are
/// freed when they end.
const POOLED_RECORDS: usize = 1024;

/// Where a call is (`CallRecord::state`).
const INVOKING: u8 = 0;
const STARTED: u8 = 1;
const ANSWERED: u8 = 2;
const FAILED: u8 = 3;

/// What a call's errors name, and its limits; set when the record is lent out.
#[derive(Debug)]
struct Details {
    kind: TransportKind,
    start: Instant,
    /// `None` when `timeout` is too far away to represent.
    deadline: Option<tokio::time::Instant>,
    timeout: Duration,
    target: Arc<str>,
    interface: Arc<str>,
    /// The counts of calls to `target`.
    counters: Arc<TargetCounters>,
    /// Over NATS: the wRPC client lent to this call, given back when it ends.
    lease: Option<ClientLease>,
}

/// One call's tracking; see the module docs.
#[derive(Debug)]
pub(crate) struct CallRecord {
    pool: Arc<PoolShared>,
    /// Holders ([`RecordRef`]s) of this record in its current call.
    users: AtomicUsize,
    state: AtomicU8,
    details: Mutex<Details>,
    /// The root reader's deadline timer, allocated once per record and moved only when
    /// it would fire too late ([`RecordRef::poll_deadline`]). Only the root results
    /// reader polls it (a timer keeps one waker).
    timer: Mutex<Option<Pin<Box<Sleep>>>>,
}

#[derive(Debug)]
struct PoolShared {
    metrics: Arc<Metrics>,
    free: Mutex<Vec<Arc<CallRecord>>>,
}

/// The records of one dispatcher.
#[derive(Debug, Clone)]
pub(crate) struct RecordPool {
    shared: Arc<PoolShared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RecordPool {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(PoolShared {
                metrics,
                free: Mutex::default(),
            }),
        }
    }

    /// A record for a call to `interface` on `target` over `kind`, starting now, whose
    /// deadline is `timeout` from now; its outcome counts in `counters` too.
    pub(crate) fn start(
        &self,
        kind: TransportKind,
        timeout: Duration,
        target: &Arc<str>,
        interface: &Arc<str>,
        counters: &Arc<TargetCounters>,
    ) -> RecordRef {
        let start = Instant::now();
        let details = Details {
            kind,
            start,
            deadline: tokio::time::Instant::from_std(start).checked_add(timeout),
            timeout,
            target: target.clone(),
            interface: interface.clone(),
            counters: counters.clone(),
            lease: None,
        };
        let record = match lock(&self.shared.free).pop() {
            Some(record) => {
                *lock(&record.details) = details;
                record.state.store(INVOKING, Ordering::Relaxed);
                record
            }
            None => Arc::new(CallRecord {
                pool: self.shared.clone(),
                users: AtomicUsize::new(0),
                state: AtomicU8::new(INVOKING),
                details: Mutex::new(details),
                timer: Mutex::new(None),
            }),
        };
        // Relaxed: the record reaches other threads only inside the streams, whose
        // hand-over synchronizes.
        record.users.store(1, Ordering::Relaxed);
        RecordRef(record)
    }
}

/// One holder of a [`CallRecord`].
#[derive(Debug)]
pub(crate) struct RecordRef(Arc<CallRecord>);

impl Clone for RecordRef {
    fn clone(&self) -> Self {
        self.0.users.fetch_add(1, Ordering::Relaxed);
        Self(self.0.clone())
    }
}

impl Drop for RecordRef {
    fn drop(&mut self) {
        // AcqRel: the last holder must see every state change the others made.
        if self.0.users.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let record = &self.0;
        let outcome = match record.state.load(Ordering::Relaxed) {
            ANSWERED => Outcome::Ok,
            FAILED => Outcome::Failed,
            _ => Outcome::Cancelled,
        };
        let lease = {
            let mut details = lock(&record.details);
            let elapsed = details.start.elapsed();
            record
                .pool
                .metrics
                .record(details.kind, &details.counters, elapsed, outcome);
            details.lease.take()
        };
        drop(lease); // outside the lock: it locks the client pool
        let mut free = lock(&record.pool.free);
        if free.len() < POOLED_RECORDS {
            free.push(record.clone());
        }
    }
}

impl RecordRef {
    /// The invoke returned the call's streams.
    pub(crate) fn started(&self) {
        let _ = self
            .0
            .state
            .compare_exchange(INVOKING, STARTED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A result (or the end of the results) arrived.
    pub(crate) fn answered(&self) {
        let _ = self
            .0
            .state
            .compare_exchange(STARTED, ANSWERED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The call failed: an I/O error, a timeout, an invoke that did not go through.
    pub(crate) fn failed(&self) {
        self.0.state.store(FAILED, Ordering::Relaxed);
    }

    /// Keeps `lease` until the call ends.
    pub(crate) fn hold(&self, lease: ClientLease) {
        lock(&self.0.details).lease = Some(lease);
    }

    /// The transport the call takes.
    pub(crate) fn kind(&self) -> TransportKind {
        lock(&self.0.details).kind
    }

    /// The call's deadline. Read once per call (the dispatcher hands it to the call's
    /// results reader), not on every poll: it locks the details.
    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        lock(&self.0.details).deadline
    }

    /// What the call's errors name: the interface and the target component.
    pub(crate) fn describe(&self) -> String {
        let details = lock(&self.0.details);
        format!(
            "call of `{}` on component `{}`",
            details.interface, details.target
        )
    }

    /// The error of a call past its deadline (and marks it failed).
    pub(crate) fn timed_out(&self) -> std::io::Error {
        self.failed();
        let timeout = lock(&self.0.details).timeout;
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "{} over {} timed out after {timeout:?} (limits.invocation_timeout)",
                self.describe(),
                self.kind(),
            ),
        )
    }

    /// Polls the call's deadline `at` (its [`deadline`](Self::deadline), which the
    /// caller keeps, so that a pending poll does not lock the details) on the record's
    /// own timer (for the root results reader): `Ready` once it has passed.
    ///
    /// The timer is moved only when it would fire too late. A record's calls come one
    /// after another, each with a later deadline than the one before, so the timer stays
    /// armed for an earlier call's deadline. When that fires it is reset to `at`, once
    /// per `invocation_timeout` instead of once per call: a reset takes the entry out of
    /// tokio's timer wheel and puts it back. It never fires late: a deadline earlier
    /// than the armed one (a smaller timeout after a reload) resets it at once.
    pub(crate) fn poll_deadline(&self, at: tokio::time::Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut timer = lock(&self.0.timer);
        let timer = match &mut *timer {
            Some(timer) => {
                if timer.deadline() > at {
                    timer.as_mut().reset(at);
                }
                timer
            }
            None => timer.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        // At most twice round: after a reset the timer's deadline is `at`.
        loop {
            ready!(timer.as_mut().poll(cx));
            if timer.deadline() >= at {
                return Poll::Ready(());
            }
            timer.as_mut().reset(at);
        }
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use super::{RecordPool, RecordRef};
    use crate::host::config::TransportKind;
    use crate::host::metrics::Metrics;

    fn start(pool: &RecordPool, timeout: Duration) -> RecordRef {
        let target: Arc<str> = Arc::from("target");
        let interface: Arc<str> = Arc::from("wrpc-ring:test/iface");
        let counters = Arc::default();
        pool.start(TransportKind::Ring, timeout, &target, &interface, &counters)
    }

    /// Polls `record`'s deadline once, so that its timer is armed for it.
    fn arm(record: &RecordRef) {
        let at = record.deadline().expect("a representable deadline");
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            record.poll_deadline(at, &mut cx).is_pending(),
            "the deadline passed at once"
        );
    }

    /// Waits for `record`'s deadline on its timer, and checks that it did not fire early.
    async fn expire(record: &RecordRef, what: &str) {
        let at = record.deadline().expect("a representable deadline");
        tokio::time::timeout(
            Duration::from_secs(30),
            poll_fn(|cx| record.poll_deadline(at, cx)),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: the deadline did not fire within 30 s"));
        assert!(
            tokio::time::Instant::now() >= at,
            "{what}: the timer fired before the deadline"
        );
    }

    /// The record's timer stays armed for an earlier call's deadline (it is moved only
    /// when it would fire too late): a later call still times out at its own deadline,
    /// neither at the earlier one nor later than its own.
    #[tokio::test]
    async fn a_pooled_records_timer_fires_at_each_calls_own_deadline() {
        let pool = RecordPool::new(Arc::new(Metrics::default()));

        // The timer armed for a deadline in 10 ms; the call ends before it.
        let first = start(&pool, Duration::from_millis(10));
        arm(&first);
        let record = Arc::as_ptr(&first.0);
        drop(first);
        // The next call gets the same record, and a later deadline.
        let second = start(&pool, Duration::from_millis(150));
        assert_eq!(Arc::as_ptr(&second.0), record, "the pool lent another record");
        expire(&second, "a later deadline than the armed one").await;
        drop(second);

        // Armed an hour away; the next call's deadline is 10 ms away.
        let third = start(&pool, Duration::from_secs(3600));
        arm(&third);
        drop(third);
        let fourth = start(&pool, Duration::from_millis(10));
        assert_eq!(Arc::as_ptr(&fourth.0), record, "the pool lent another record");
        expire(&fourth, "an earlier deadline than the armed one").await;
    }
}
