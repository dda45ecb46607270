//! The tasks a served component's calls run on: long-lived, parked while idle, so that
//! accepting a call wakes a task instead of spawning one.
//!
//! Spawning a task per call allocates its cell (and, in a debug build, boxes the
//! future), and moves the call's future, a few KiB, several times on the way into the
//! cell; that was a third of the ring's overhead on a small call (docs/benchmarks.md,
//! "Where a greeter call's instructions go"). A worker builds each call's future in
//! place in its own state and parks between calls. Each call still runs on a task of
//! its own, never inside the caller's or the accept loop's future: caller and callee
//! make progress concurrently on any runtime.
//!
//! A call over the `ring` transport that finds a worker parked wakes it from the
//! caller's task ([`ExportTaker`]); every other call goes through its export's accept
//! loop, which hands it to a parked worker or starts one.
//!
//! Workers start on demand, when a call arrives and none is idle, so their number
//! follows the calls in flight; at most `max_idle` stay parked after a burst, and the
//! rest end. When the component stops being served ([`Workers`] dropped with the last
//! accept loop), idle workers end, and busy ones end after their call.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use tracing::Instrument as _;

use super::Component;
use crate::host::{AnyIncoming, ServeOutgoing, Takes, TransportKind};

/// One accepted call: the export it is for, and its streams.
pub(crate) struct Job {
    pub(crate) index: usize,
    pub(crate) transport: TransportKind,
    pub(crate) outgoing: ServeOutgoing,
    pub(crate) incoming: AnyIncoming,
}

/// A component's workers; dropping it (the last accept loop ends) dismisses them.
pub(crate) struct Workers {
    shared: Arc<Shared>,
}

struct Shared {
    component: Arc<Component>,
    idle: Mutex<Idle>,
    max_idle: usize,
}

struct Idle {
    closed: bool,
    /// Parked workers, the most recently parked last (it is woken first: its stack and
    /// state are the likeliest to be in cache).
    workers: Vec<Arc<Slot>>,
}

/// Where a parked worker receives its next call: one lock, taken once by the worker
/// as it parks and once by whoever hands it a call.
#[derive(Default)]
struct Slot(Mutex<SlotState>);

#[derive(Default)]
struct SlotState {
    /// The next call.
    job: Option<Job>,
    /// The worker is to end.
    dismissed: bool,
    /// The parked worker's waker, taken by the hand-over that wakes it.
    waker: Option<Waker>,
}

impl Slot {
    /// Hands the parked worker `job` and wakes it.
    fn hand(&self, job: Job) {
        let waker = {
            let mut state = lock(&self.0);
            state.job = Some(job);
            state.waker.take()
        };
        wake(waker);
    }

    /// Wakes the parked worker to end.
    fn dismiss(&self) {
        let waker = {
            let mut state = lock(&self.0);
            state.dismissed = true;
            state.waker.take()
        };
        wake(waker);
    }

    /// The worker's wait for its next call: `Ready(None)` once dismissed.
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Job>> {
        let mut state = lock(&self.0);
        if let Some(job) = state.job.take() {
            return Poll::Ready(Some(job));
        }
        if state.dismissed {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Workers {
    /// Workers for `component`'s calls, at most `max_idle` of them parked at a time.
    pub(crate) fn new(component: Arc<Component>, max_idle: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                component,
                idle: Mutex::new(Idle {
                    closed: false,
                    workers: Vec::with_capacity(max_idle),
                }),
                max_idle,
            }),
        }
    }

    /// Runs the job `take` builds on a parked worker, if one is parked; `take` is called
    /// only then. The `ring` transport calls this on the caller's task (through
    /// [`Takes`]), so that the call wakes its worker directly.
    pub(crate) fn try_run_parked(&self, take: impl FnOnce() -> Job) -> bool {
        let Some(slot) = lock(&self.shared.idle).workers.pop() else {
            return false;
        };
        slot.hand(take());
        true
    }

    /// Runs `job` on a parked worker, or on a new one if none is parked.
    pub(crate) fn run(&self, job: Job) {
        let parked = lock(&self.shared.idle).workers.pop();
        match parked {
            Some(slot) => slot.hand(job),
            None => {
                tokio::spawn(work(self.shared.clone(), Arc::new(Slot::default()), job));
            }
        }
    }
}

/// What the `ring` transport hands one export's calls to: a parked worker of the
/// component, when one is parked ([`ComponentServer::serve_handing_off`]).
pub(crate) struct ExportTaker {
    pub(crate) workers: Arc<Workers>,
    pub(crate) index: usize,
}

impl Takes for ExportTaker {
    fn try_take(&self, take: &mut dyn FnMut() -> (ServeOutgoing, AnyIncoming)) -> bool {
        self.workers.try_run_parked(|| {
            let (outgoing, incoming) = take();
            Job {
                index: self.index,
                transport: TransportKind::Ring,
                outgoing,
                incoming,
            }
        })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let parked = {
            let mut idle = lock(&self.shared.idle);
            idle.closed = true;
            std::mem::take(&mut idle.workers)
        };
        for slot in parked {
            slot.dismiss();
        }
    }
}

/// A worker: runs `job`, then parks until the next one, until dismissed.
async fn work(shared: Arc<Shared>, slot: Arc<Slot>, mut job: Job) {
    loop {
        serve(&shared.component, job).await;
        {
            let mut idle = lock(&shared.idle);
            if idle.closed || idle.workers.len() >= shared.max_idle {
                return;
            }
            idle.workers.push(slot.clone());
        }
        match poll_fn(|cx| slot.poll_next(cx)).await {
            Some(next) => job = next,
            None => return,
        }
    }
}

/// One call, in a span naming it (debug level).
async fn serve(component: &Component, job: Job) {
    let export = &component.exports()[job.index];
    let span = tracing::debug_span!(
        "serve",
        component = component.id(),
        interface = export.interface(),
        function = export.name(),
        transport = job.transport.as_str(),
    );
    // `serve_call` catches the call's panics, so a worker outlives a failed call.
    component
        .serve_call(job.index, job.outgoing, job.incoming)
        .instrument(span)
        .await;
}

/// Wakes a worker taken off its slot, outside the slot's lock, so that the woken
/// worker never waits for it.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = lock(&self.shared.idle);
        f.debug_struct("Workers")
            .field("component", &self.shared.component.id())
            .field("parked", &idle.workers.len())
            .field("max_idle", &self.shared.max_idle)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::Slot;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A parked worker is woken when it is dismissed, and then ends; one dismissed
    /// before it parks ends without parking. (Handing a call over is the same path
    /// with a job, which every served call takes: tests/runtime.rs.)
    #[test]
    fn a_parked_worker_is_woken_to_end() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);

        let slot = Slot::default();
        assert!(
            slot.poll_next(&mut cx).is_pending(),
            "a worker with no call did not park"
        );
        assert!(
            slot.poll_next(&mut cx).is_pending(),
            "a worker polled again did not park"
        );
        slot.dismiss();
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "the dismissal woke the worker {} times",
            count.0.load(Ordering::Relaxed)
        );
        assert!(
            matches!(slot.poll_next(&mut cx), Poll::Ready(None)),
            "a dismissed worker did not end"
        );

        let slot = Slot::default();
        slot.dismiss();
        assert!(
            matches!(slot.poll_next(&mut cx), Poll::Ready(None)),
            "a worker dismissed before it parked did not end"
        );
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "a dismissal with nobody parked woke someone"
        );
    }

    /// A job is moved several times on its way into a worker's call; at up to 256 bytes
    /// glibc's `memcpy` copies it without a loop (docs/benchmarks.md, "Session 16": it
    /// was 320 bytes).
    #[test]
    fn a_job_stays_within_256_bytes() {
        let size = std::mem::size_of::<super::Job>();
        assert!(size <= 256, "a Job takes {size} bytes");
    }
}
