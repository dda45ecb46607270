//! Who serves what: `serve` registrations by prefix, instance and function, and the
//! hand-over of new invocations to them.
//!
//! Each prefix has a [`PrefixRegistry`]: a table instance → function → route, kept as
//! an immutable snapshot behind a mutex that is held only to clone or swap the `Arc`.
//! `invoke` clones the snapshot, looks the route up and queues the invocation with no
//! table lock held; `serve` and the end of a registration build a new table and swap it
//! in (registrations change rarely, invocations all the time).
//!
//! A registration is an [`Inbox`]: `invoke` queues the call in it and the serve stream
//! ([`InvocationStream`]), polled by the server's own task, takes it out. That is one
//! queue entry per invocation (never per write); the queue keeps its capacity, so a
//! steady stream of invocations allocates nothing here. A registration with a
//! [`Handoff`] (a server task parked and ready) gets an invocation straight from `invoke`
//! while its inbox is empty, without its serve stream's task in between (see
//! [`inbox`](super::inbox)).
//!
//! # No delivery is lost
//!
//! A registration leaves the table *before* its inbox is closed, and a closed inbox
//! refuses pushes. An `invoke` holding an older snapshot that still lists a closed
//! registration is refused by the inbox and looks again in a fresh snapshot, which no
//! longer lists it; an invocation queued before the close is taken out by the close and
//! ended as an abort that the caller reads. So an invocation is either refused at once
//! or reaches a live serve stream or its caller learns that it was not accepted.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tracing::trace;

use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering, lock};

use super::call::{CallPool, Delivery, ServePaths, Side, Target};
use super::error::TransportError;
use super::hash::FxHashMap;
use super::headers::Headers;
use super::inbox::{Handoff, Inbox, Refused};
use super::incoming::Incoming;
use super::outgoing::{Outgoing, Unused};

/// The default bound on the invocations queued for one `serve` registration and not yet
/// taken by its serve stream ([`Ring::with_max_queued`](crate::Ring::with_max_queued)).
pub const DEFAULT_MAX_QUEUED: usize = 64;

/// Everything shared by the clones of a [`Ring`](crate::Ring) and its prefixed handles.
pub(crate) struct Network {
    pub(crate) calls: Arc<CallPool>,
    prefixes: Mutex<HashMap<Arc<str>, Arc<PrefixRegistry>>>,
    next_id: AtomicU64,
    /// The bound of every registration's inbox.
    pub(crate) max_queued: AtomicUsize,
}

impl Network {
    pub(crate) fn new(calls: Arc<CallPool>) -> Self {
        Self {
            calls,
            prefixes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max_queued: AtomicUsize::new(DEFAULT_MAX_QUEUED),
        }
    }

    /// The registry of `prefix`, created on first use.
    pub(crate) fn registry(&self, prefix: &str) -> Arc<PrefixRegistry> {
        let mut prefixes = lock(&self.prefixes);
        if let Some(registry) = prefixes.get(prefix) {
            return registry.clone();
        }
        let prefix: Arc<str> = Arc::from(prefix);
        let registry = Arc::new(PrefixRegistry {
            prefix: prefix.clone(),
            table: Mutex::new(Arc::new(Table::default())),
        });
        prefixes.insert(prefix, registry.clone());
        registry
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.calls.close();
    }
}

/// The functions served under one prefix: a snapshot of instance → function → route.
pub(crate) struct PrefixRegistry {
    prefix: Arc<str>,
    table: Mutex<Arc<Table>>,
}

/// Instance → function → route. The keys are the names in-process servers registered
/// (a caller's names are only looked up), so they are hashed with FxHash, not SipHash:
/// two lookups per invocation.
type Table = FxHashMap<Box<str>, FxHashMap<Box<str>, Arc<Route>>>;

/// The registrations serving one function, balanced round-robin.
struct Route {
    target: Arc<Target>,
    servers: Vec<Server>,
    next: AtomicUsize,
}

#[derive(Clone)]
struct Server {
    id: u64,
    inbox: Arc<Inbox>,
    paths: ServePaths,
}

impl PrefixRegistry {
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The current table (the lock is held only to clone the `Arc`).
    fn snapshot(&self) -> Arc<Table> {
        lock(&self.table).clone()
    }

    /// Invocations queued under this prefix and not yet taken by a serve stream.
    pub(crate) fn queued(&self) -> usize {
        self.snapshot()
            .values()
            .flat_map(FxHashMap::values)
            .flat_map(|route| &route.servers)
            .map(|server| server.inbox.len())
            .sum()
    }

    /// Whether at least one registration serves `instance`/`func`.
    pub(crate) fn serves(&self, instance: &str, func: &str) -> bool {
        self.snapshot()
            .get(instance)
            .and_then(|funcs| funcs.get(func))
            .is_some_and(|route| !route.servers.is_empty())
    }

    /// Starts an invocation on the next registration for `instance`/`func` and returns
    /// the caller's handles.
    pub(crate) fn invoke<P: AsRef<[Option<usize>]>>(
        &self,
        net: &Network,
        cx: Option<Headers>,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: &[P],
    ) -> Result<(Outgoing, Incoming), TransportError> {
        let max = net.max_queued.load(Ordering::Relaxed);
        let mut delivery = Delivery { cx, params };
        loop {
            let table = self.snapshot();
            let route = table.get(instance).and_then(|funcs| funcs.get(func));
            let Some(route) = route.filter(|route| !route.servers.is_empty()) else {
                return Err(self.no_server(instance, func));
            };
            let n = route.servers.len();
            let server = &route.servers[route.next.fetch_add(1, Ordering::Relaxed) % n];
            if server.inbox.len() >= max {
                return Err(self.overloaded(instance, func, max));
            }
            let (call, ticket) = net.calls.start(route.target.clone(), server.paths.clone(), paths);
            let client = (
                Outgoing::root(call.clone(), Side::Client, None),
                Incoming::root(call.clone(), Side::Client, Bytes::new()),
            );
            if server.inbox.hands_off() {
                // Straight to a parked server task if there is one: the callee's handles,
                // as its serve stream would have built them.
                let mut pending = Some(delivery);
                let handed = server.inbox.offer(&mut || {
                    let Delivery { cx, params } =
                        pending.take().expect("a hand-off takes an invocation once");
                    (
                        cx,
                        Outgoing::root(call.clone(), Side::Server, Some(Unused::HandlerDropped)),
                        Incoming::root(call.clone(), Side::Server, params),
                    )
                });
                debug_assert_eq!(handed, pending.is_none(), "a hand-off builds what it takes");
                let Some(refused) = pending.take() else {
                    trace!(prefix = %self.prefix, instance, func, "invocation handed over");
                    return Ok(client);
                };
                delivery = refused;
            }
            call.queue(ticket, delivery, server.inbox.clone());
            let refused = match server.inbox.push(ticket, call.clone(), max) {
                Ok(()) => {
                    trace!(prefix = %self.prefix, instance, func, "invocation queued");
                    return Ok(client);
                }
                Err(refused) => refused,
            };
            // Not queued: take the delivery back and end the call, then fail or look
            // again (the registration was closed after this snapshot was taken).
            delivery = call
                .take_delivery(ticket)
                .expect("an invocation not queued keeps its delivery");
            drop(Outgoing::root(call.clone(), Side::Server, None));
            drop(Incoming::root(call, Side::Server, Bytes::new()));
            drop(client);
            if refused == Refused::Full {
                return Err(self.overloaded(instance, func, max));
            }
        }
    }

    fn no_server(&self, instance: &str, func: &str) -> TransportError {
        TransportError::NoServer {
            prefix: self.prefix.to_string(),
            instance: instance.to_string(),
            func: func.to_string(),
        }
    }

    fn overloaded(&self, instance: &str, func: &str, limit: usize) -> TransportError {
        trace!(prefix = %self.prefix, instance, func, limit, "overloaded");
        TransportError::Overloaded {
            prefix: self.prefix.to_string(),
            instance: instance.to_string(),
            func: func.to_string(),
            limit,
        }
    }

    /// Adds a registration; its stream yields the invocations routed to it that
    /// `handoff`, if given, did not take.
    pub(crate) fn serve(
        self: &Arc<Self>,
        net: &Network,
        instance: &str,
        func: &str,
        paths: ServePaths,
        handoff: Option<Arc<dyn Handoff>>,
    ) -> InvocationStream {
        let id = net.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::new(handoff));
        let server = Server {
            id,
            inbox: inbox.clone(),
            paths,
        };
        let mut current = lock(&self.table);
        let mut table = Table::clone(&current);
        let funcs = table.entry(Box::from(instance)).or_default();
        let (target, mut servers) = match funcs.get(func) {
            Some(route) => (route.target.clone(), route.servers.clone()),
            None => (
                Arc::new(Target {
                    prefix: self.prefix.clone(),
                    instance: Box::from(instance),
                    func: Box::from(func),
                }),
                Vec::new(),
            ),
        };
        servers.push(server);
        funcs.insert(
            Box::from(func),
            Arc::new(Route {
                target: target.clone(),
                servers,
                next: AtomicUsize::new(0),
            }),
        );
        *current = Arc::new(table);
        drop(current);
        trace!(prefix = %self.prefix, instance, func, id, "serving");
        InvocationStream {
            registry: self.clone(),
            target,
            id,
            inbox,
        }
    }

    fn deregister(&self, target: &Target, id: u64) {
        let mut current = lock(&self.table);
        let mut table = Table::clone(&current);
        let Some(funcs) = table.get_mut(&*target.instance) else {
            return;
        };
        if let Some(route) = funcs.get(&*target.func) {
            let servers: Vec<Server> = route
                .servers
                .iter()
                .filter(|server| server.id != id)
                .cloned()
                .collect();
            if servers.is_empty() {
                funcs.remove(&*target.func);
            } else {
                let route = Route {
                    target: route.target.clone(),
                    servers,
                    next: AtomicUsize::new(0),
                };
                funcs.insert(Box::from(&*target.func), Arc::new(route));
            }
        }
        if funcs.is_empty() {
            table.remove(&*target.instance);
        }
        // The old snapshot (and what it holds) is freed outside the lock.
        let old = std::mem::replace(&mut *current, Arc::new(table));
        drop(current);
        drop(old);
    }
}

/// The stream of invocations of one `serve` registration.
///
/// Dropping it stops serving: later invocations fail with
/// [`TransportError::NoServer`], and invocations still queued for it end with an abort
/// that the caller reads as an error.
pub(crate) struct InvocationStream {
    registry: Arc<PrefixRegistry>,
    target: Arc<Target>,
    id: u64,
    inbox: Arc<Inbox>,
}

impl Drop for InvocationStream {
    fn drop(&mut self) {
        // The registration leaves the table before its inbox closes (see the module
        // docs).
        trace!(target = %self.target, id = self.id, "no longer serving");
        self.registry.deregister(&self.target, self.id);
        for (ticket, call) in self.inbox.close() {
            let Some(delivery) = call.take_delivery(ticket) else {
                continue; // its caller gave up meanwhile
            };
            drop(delivery);
            // Ends the callee's side: the caller reads "stopped serving before it took
            // the invocation".
            drop(Outgoing::root(
                call.clone(),
                Side::Server,
                Some(Unused::NotAccepted),
            ));
            drop(Incoming::root(call, Side::Server, Bytes::new()));
        }
    }
}

impl Stream for InvocationStream {
    type Item = anyhow::Result<(Option<Headers>, Outgoing, Incoming)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let (ticket, call) = std::task::ready!(self.inbox.poll_pop(cx));
            let Some(Delivery { cx: headers, params }) = call.take_delivery(ticket) else {
                // Cancelled while queued: its caller took it back.
                continue;
            };
            let outgoing = Outgoing::root(call.clone(), Side::Server, Some(Unused::HandlerDropped));
            let incoming = Incoming::root(call, Side::Server, params);
            if outgoing.is_caller_gone() {
                trace!(target = %self.target, "skipping a cancelled invocation");
                continue;
            }
            return Poll::Ready(Some(Ok((headers, outgoing, incoming))));
        }
    }
}

impl fmt::Debug for InvocationStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationStream")
            .field("target", &self.target)
            .field("id", &self.id)
            .field("inbox", &self.inbox)
            .finish()
    }
}

impl fmt::Debug for PrefixRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixRegistry")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("calls", &self.calls)
            .field("max_queued", &self.max_queued)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "host"))]
mod tests {
    use std::sync::atomic::AtomicBool;

    use futures::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::transport::Invocation;
    use crate::{Ring, RingPool};

    const NO_PATHS: &[&[Option<usize>]] = &[];

    /// A hand-off that takes what it is offered while `open`, and keeps it.
    #[derive(Default)]
    struct Keep {
        open: AtomicBool,
        taken: std::sync::Mutex<Vec<Invocation>>,
    }

    impl Handoff for Keep {
        fn offer(&self, take: &mut dyn FnMut() -> Invocation) -> bool {
            if !self.open.load(Ordering::Relaxed) {
                return false;
            }
            self.taken.lock().unwrap().push(take());
            true
        }
    }

    impl Keep {
        fn take(&self) -> Vec<Invocation> {
            std::mem::take(&mut *self.taken.lock().unwrap())
        }
    }

    async fn params(incoming: &mut Incoming) -> Vec<u8> {
        let mut params = vec![0; 2];
        incoming.read_exact(&mut params).await.unwrap();
        params
    }

    #[tokio::test]
    async fn a_handoff_takes_calls_only_while_nothing_is_queued() {
        let ring = Ring::new(RingPool::new(4096, 4));
        let keep = Arc::new(Keep::default());
        keep.open.store(true, Ordering::Relaxed);
        let mut stream = Box::pin(ring.serve_with_handoff("i", "f", Arc::from([]), keep.clone()));
        let invoke = |params: &'static [u8]| {
            ring.invoke_now(None, "i", "f", Bytes::from_static(params), NO_PATHS)
                .unwrap()
        };

        // Taken straight from the invoker, with the callee's handles working.
        let (_, mut results) = invoke(b"p1");
        let [(_, mut outgoing, mut incoming)] = <[Invocation; 1]>::try_from(keep.take()).ok().unwrap();
        assert_eq!(params(&mut incoming).await, b"p1");
        outgoing.write_all(b"r1").await.unwrap();
        drop(outgoing);
        let mut answer = Vec::new();
        results.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"r1");

        // Refused: queued for the stream. Then nothing may overtake it, even when the
        // hand-off would take it again.
        keep.open.store(false, Ordering::Relaxed);
        let _p2 = invoke(b"p2");
        keep.open.store(true, Ordering::Relaxed);
        let _p3 = invoke(b"p3");
        assert!(keep.take().is_empty(), "a call overtook a queued one");
        for expected in [b"p2", b"p3"] {
            let (_, _outgoing, mut incoming) = stream.next().await.unwrap().unwrap();
            assert_eq!(params(&mut incoming).await, expected);
        }
        // The queue is empty again: the hand-off takes the next call.
        let _p4 = invoke(b"p4");
        assert_eq!(keep.take().len(), 1);

        // The end of the registration lets go of the hand-off at once.
        drop(stream);
        assert_eq!(
            Arc::strong_count(&keep),
            1,
            "a closed registration kept its hand-off"
        );
        assert!(matches!(
            ring.invoke_now(None, "i", "f", Bytes::new(), NO_PATHS),
            Err(TransportError::NoServer { .. })
        ));
    }
}
