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
//! steady stream of invocations allocates nothing here.
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
use super::inbox::{Inbox, Refused};
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
            call.queue(ticket, delivery, server.inbox.clone());
            let client = (
                Outgoing::root(call.clone(), Side::Client, None),
                Incoming::root(call.clone(), Side::Client, Bytes::new()),
            );
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

    /// Adds a registration; its stream yields the invocations routed to it.
    pub(crate) fn serve(
        self: &Arc<Self>,
        net: &Network,
        instance: &str,
        func: &str,
        paths: ServePaths,
    ) -> InvocationStream {
        let id = net.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::new());
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
