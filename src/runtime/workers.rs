//! The tasks a served component's calls run on: long-lived, parked while idle, and, for
//! calls over the ring, the ones that accept them, so that a call reaches the task that
//! runs it with one wake-up and no spawn.
//!
//! # Why workers accept ring calls
//!
//! Spawning a task per call allocates its cell (and, in a debug build, boxes the
//! future), and moves the call's future, a few KiB, several times on the way into the
//! cell; that was a third of the ring's overhead on a small call (docs/benchmarks.md,
//! "Where a greeter call's instructions go"). So each call's future is built in place
//! in a worker's state, and workers park between calls.
//!
//! An accept loop of its own per serve stream adds a task hop per call: caller → accept
//! loop → worker. Besides its cost on one thread, each hop uses up one of the three
//! wake-ups that tokio's multi-thread scheduler runs in a row on the waking worker (its
//! LIFO slot); the next one is queued for the other worker, which is woken to steal it
//! (docs/benchmarks.md, "Session 5"). A pipeline A → B → C made four hops per call, so
//! every call crossed workers. So the ring's serve streams are polled with a waker of
//! this module: a new call makes the stream wake a parked worker (or spawn one if none
//! is parked), and that worker takes the call from the stream and runs it. Caller →
//! worker is one hop.
//!
//! The other transports' serve streams (NATS, and the `duplex` and `mpsc` baselines)
//! keep an accept loop task each, which hands its calls to the same workers
//! ([`Workers::runner`]). Their streams are third-party code whose `poll_next` does
//! network round trips (a NATS subscription's handshake), and with NATS streams polled
//! by the workers a call was once lost to a missing wake-up whose cause was not found
//! (docs/benchmarks.md, "Session 5" and "Session 6"). The ring's stream is this
//! crate's own inbox, whose waker protocol is short and tested here.
//!
//! Each call still runs on a task of its own, never inside the caller's future: caller
//! and callee make progress concurrently on any runtime.
//!
//! # Life
//!
//! Workers start on demand, when a call arrives and none is parked, so their number
//! follows the calls in flight; at most `max_idle` stay parked after a burst, and the
//! rest end. Dropping [`Workers`] (when the component stops being served) drops the
//! ring's serve streams at once, and idle workers end; busy ones end after their call.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use futures::Stream;
use tokio::sync::Notify;
use tracing::Instrument as _;

use super::Component;
use crate::Headers;
use crate::host::{AnyIncoming, ServeOutgoing, TransportKind};

/// What a serve stream yields: one invocation of an export, or why one failed.
pub(crate) type Accepted = anyhow::Result<(Option<Headers>, ServeOutgoing, AnyIncoming)>;

/// One serve stream of a component: the invocations of one export over one transport.
pub(crate) struct Source {
    /// The export's index in [`Component::exports`].
    pub(crate) index: usize,
    pub(crate) transport: TransportKind,
    pub(crate) invocations: Pin<Box<dyn Stream<Item = Accepted> + Send>>,
}

/// One accepted call: the export it is for, and its streams.
pub(crate) struct Job {
    pub(crate) index: usize,
    pub(crate) transport: TransportKind,
    pub(crate) outgoing: ServeOutgoing,
    pub(crate) incoming: AnyIncoming,
}

/// A component's workers, and the ring serve streams they accept calls from; dropping
/// it stops those streams and dismisses the parked workers.
pub(crate) struct Workers {
    shared: Arc<Shared>,
}

struct Shared {
    component: Arc<Component>,
    /// Where workers are spawned, also from a waker called off the runtime's threads.
    runtime: tokio::runtime::Handle,
    streams: Box<[Served]>,
    state: Mutex<State>,
    max_idle: usize,
}

/// A serve stream as the workers share it.
struct Served {
    index: usize,
    transport: TransportKind,
    /// `None` once it ended, or stopped accepting.
    invocations: Mutex<Option<Pin<Box<dyn Stream<Item = Accepted> + Send>>>>,
    /// What the stream is polled with: it queues the stream and wakes a worker.
    waker: Waker,
}

struct State {
    closed: bool,
    /// Streams to poll (woken, or never polled yet), by index into `streams`.
    ready: VecDeque<usize>,
    /// Whether each stream is in `ready`, so that a stream is queued once however often
    /// it wakes.
    queued: Box<[bool]>,
    /// Parked workers, the most recently parked last (it is woken first: its stack and
    /// state are the likeliest to be in cache).
    idle: Vec<Arc<Slot>>,
}

/// Where a parked worker is woken: with a call to run, to look at the ready streams,
/// or to end.
#[derive(Default)]
struct Slot {
    job: Mutex<Option<Job>>,
    wake: Notify,
}

/// The waker serve stream `stream` is polled with.
struct StreamWaker {
    shared: Weak<Shared>,
    stream: usize,
}

impl Wake for StreamWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.make_ready(self.stream);
        }
    }
}

impl Workers {
    /// Serves `sources` (streams of this crate's `Ring` transport: see the module docs)
    /// on `component`'s workers, at most `max_idle` of them parked at a time. Must be
    /// called on a tokio runtime.
    pub(crate) fn start(component: Arc<Component>, sources: Vec<Source>, max_idle: usize) -> Self {
        let count = sources.len();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
            component,
            runtime: tokio::runtime::Handle::current(),
            streams: sources
                .into_iter()
                .enumerate()
                .map(|(i, source)| Served {
                    index: source.index,
                    transport: source.transport,
                    invocations: Mutex::new(Some(source.invocations)),
                    waker: Waker::from(Arc::new(StreamWaker {
                        shared: weak.clone(),
                        stream: i,
                    })),
                })
                .collect(),
            state: Mutex::new(State {
                closed: false,
                // Every stream is polled once to register its waker.
                ready: (0..count).collect(),
                queued: vec![true; count].into_boxed_slice(),
                idle: Vec::with_capacity(max_idle),
            }),
            max_idle,
        });
        if count > 0 {
            shared.spawn(None);
        }
        Self { shared }
    }

    /// A handle that runs the calls an accept loop of another transport takes on these
    /// workers.
    pub(crate) fn runner(&self) -> Runner {
        Runner(self.shared.clone())
    }
}

/// Runs calls accepted elsewhere (the accept loop of a transport other than the ring) on
/// a component's workers; it does not keep them from being dismissed.
#[derive(Clone)]
pub(crate) struct Runner(Arc<Shared>);

impl Runner {
    /// Runs `job` on a parked worker, or on a new one if none is parked (also after
    /// [`Workers`] was dropped: an accepted call runs to its end).
    pub(crate) fn run(&self, job: Job) {
        self.0.hand_off(job);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let parked = {
            let mut state = lock(&self.shared.state);
            state.closed = true;
            state.ready.clear();
            std::mem::take(&mut state.idle)
        };
        for stream in &self.shared.streams {
            let invocations = lock(&stream.invocations).take();
            drop(invocations);
        }
        for slot in parked {
            slot.wake.notify_one(); // no job and closed: the worker ends
        }
    }
}

impl Shared {
    /// Queues stream `stream` to be polled, and wakes a worker to poll it.
    fn make_ready(self: &Arc<Self>, stream: usize) {
        let parked = {
            let mut state = lock(&self.state);
            if state.closed || state.queued[stream] {
                return;
            }
            state.queued[stream] = true;
            state.ready.push_back(stream);
            state.idle.pop()
        };
        match parked {
            Some(slot) => slot.wake.notify_one(),
            // Every worker is busy (or none is left): one more, so that a call never
            // waits for another call to end (it may be that call's own nested call).
            None => self.spawn(None),
        }
    }

    fn spawn(self: &Arc<Self>, job: Option<Job>) {
        self.runtime
            .spawn(work(self.clone(), Arc::new(Slot::default()), job));
    }

    /// Runs `job` on a parked worker, or on a new one if none is parked.
    fn hand_off(self: &Arc<Self>, job: Job) {
        let parked = lock(&self.state).idle.pop();
        match parked {
            Some(slot) => {
                *lock(&slot.job) = Some(job);
                slot.wake.notify_one();
            }
            None => self.spawn(Some(job)),
        }
    }

    /// Takes what stream `stream` holds: the first call for this worker, the others
    /// handed off, until the stream is pending again (its waker registered) or ends.
    fn accept(self: &Arc<Self>, stream: usize) -> Option<Job> {
        let source = &self.streams[stream];
        let mut cx = Context::from_waker(&source.waker);
        let mut invocations = lock(&source.invocations);
        let mut first = None;
        loop {
            let Some(pending) = invocations.as_mut() else {
                return first;
            };
            match pending.as_mut().poll_next(&mut cx) {
                Poll::Pending => return first,
                Poll::Ready(None) => {
                    *invocations = None;
                    return first;
                }
                Poll::Ready(Some(Ok((_headers, outgoing, incoming)))) => {
                    let job = Job {
                        index: source.index,
                        transport: source.transport,
                        outgoing,
                        incoming,
                    };
                    if first.is_none() {
                        first = Some(job);
                    } else {
                        self.hand_off(job);
                    }
                }
                Poll::Ready(Some(Err(err))) => tracing::warn!(
                    %err,
                    component = self.component.id(),
                    export = ?self.component.exports()[source.index],
                    "failed to accept an invocation"
                ),
            }
        }
    }
}

/// What a worker does next.
enum Next {
    Poll(usize),
    Park,
    End,
}

/// A worker: runs `job`, then accepts from the ready streams, or parks until woken, until
/// dismissed.
async fn work(shared: Arc<Shared>, slot: Arc<Slot>, mut job: Option<Job>) {
    loop {
        if let Some(job) = job.take() {
            serve(&shared.component, job).await;
        }
        let next = {
            let mut state = lock(&shared.state);
            if state.closed {
                Next::End
            } else if let Some(stream) = state.ready.pop_front() {
                state.queued[stream] = false;
                Next::Poll(stream)
            } else if state.idle.len() < shared.max_idle {
                state.idle.push(slot.clone());
                Next::Park
            } else {
                Next::End
            }
        };
        match next {
            Next::Poll(stream) => job = shared.accept(stream),
            Next::Park => {
                slot.wake.notified().await;
                job = lock(&slot.job).take();
            }
            Next::End => return,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("Workers")
            .field("component", &self.shared.component.id())
            .field("streams", &self.shared.streams.len())
            .field("ready", &state.ready.len())
            .field("parked", &state.idle.len())
            .field("max_idle", &self.shared.max_idle)
            .finish()
    }
}
