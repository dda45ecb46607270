//! Who serves what: `serve` registrations by prefix, instance and function, and the
//! hand-over of new invocations to them.
//!
//! A registration is a channel: `invoke` sends the callee's two root handles into it and
//! the serve stream, polled by the server's own task, takes them out. That is one
//! message per invocation (never per write); tokio's unbounded channel stores messages
//! in blocks of 32 slots that it recycles, so a steady stream of invocations allocates
//! nothing here either.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tracing::trace;

use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering, lock};

use super::call::{CallPool, ServePaths, Side, Target};
use super::error::TransportError;
use super::headers::Headers;
use super::incoming::Incoming;
use super::outgoing::{Outgoing, Unused};

/// Everything shared by the clones of a [`Ring`](crate::Ring) and its prefixed handles.
pub(crate) struct Network {
    pub(crate) calls: Arc<CallPool>,
    prefixes: Mutex<HashMap<Arc<str>, Arc<Routes>>>,
    next_id: AtomicU64,
}

impl Network {
    pub(crate) fn new(calls: Arc<CallPool>) -> Self {
        Self {
            calls,
            prefixes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// The routes under `prefix`, created on first use.
    pub(crate) fn routes(&self, prefix: &str) -> Arc<Routes> {
        let mut prefixes = lock(&self.prefixes);
        if let Some(routes) = prefixes.get(prefix) {
            return routes.clone();
        }
        let prefix: Arc<str> = Arc::from(prefix);
        let routes = Arc::new(Routes {
            prefix: prefix.clone(),
            table: Mutex::new(HashMap::new()),
        });
        prefixes.insert(prefix, routes.clone());
        routes
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.calls.close();
    }
}

/// The functions served under one prefix: instance → function → route.
pub(crate) struct Routes {
    prefix: Arc<str>,
    table: Mutex<HashMap<Box<str>, Functions>>,
}

/// The functions served of one instance.
type Functions = HashMap<Box<str>, Route>;

/// The registrations serving one function, balanced round-robin.
struct Route {
    target: Arc<Target>,
    servers: Vec<Server>,
    next: AtomicUsize,
}

struct Server {
    id: u64,
    tx: mpsc::UnboundedSender<Delivery>,
    paths: ServePaths,
}

/// A new invocation on its way to a serve stream: the context and the callee's handles.
pub(crate) struct Delivery {
    cx: Option<Headers>,
    outgoing: Option<Outgoing>,
    incoming: Option<Incoming>,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // Dropped undelivered: the serve stream is gone. Tell the caller so.
        if let Some(outgoing) = &mut self.outgoing {
            outgoing.set_unused(Unused::NotAccepted);
        }
    }
}

impl Routes {
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether at least one registration serves `instance`/`func`.
    pub(crate) fn serves(&self, instance: &str, func: &str) -> bool {
        let table = lock(&self.table);
        table
            .get(instance)
            .and_then(|funcs| funcs.get(func))
            .is_some_and(|route| !route.servers.is_empty())
    }

    /// Starts an invocation on the next registration for `instance`/`func` and returns
    /// the caller's handles.
    pub(crate) fn invoke<P: AsRef<[Option<usize>]>>(
        &self,
        calls: &Arc<CallPool>,
        cx: Option<Headers>,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: &[P],
    ) -> Result<(Outgoing, Incoming), TransportError> {
        let undelivered = {
            let table = lock(&self.table);
            let route = table.get(instance).and_then(|funcs| funcs.get(func));
            let Some(route) = route.filter(|route| !route.servers.is_empty()) else {
                drop(table);
                return Err(self.no_server(instance, func));
            };
            let n = route.servers.len();
            let server = &route.servers[route.next.fetch_add(1, Ordering::Relaxed) % n];
            let call = calls.start(route.target.clone(), server.paths.clone(), paths);
            let delivery = Delivery {
                cx,
                outgoing: Some(Outgoing::root(
                    call.clone(),
                    Side::Server,
                    Some(Unused::HandlerDropped),
                )),
                incoming: Some(Incoming::root(call.clone(), Side::Server, params)),
            };
            let client = (
                Outgoing::root(call.clone(), Side::Client, None),
                Incoming::root(call, Side::Client, Bytes::new()),
            );
            // A registration leaves the table before its receiver is dropped, and that
            // waits for this lock: the receiver is alive, so this send succeeds.
            match server.tx.send(delivery) {
                Ok(()) => {
                    trace!(prefix = %self.prefix, instance, func, "invocation delivered");
                    return Ok(client);
                }
                Err(mpsc::error::SendError(delivery)) => (client, delivery),
            }
        };
        drop(undelivered);
        Err(self.no_server(instance, func))
    }

    fn no_server(&self, instance: &str, func: &str) -> TransportError {
        TransportError::NoServer {
            prefix: self.prefix.to_string(),
            instance: instance.to_string(),
            func: func.to_string(),
        }
    }

    /// Adds a registration; its stream yields the invocations routed to it.
    pub(crate) fn serve(
        self: &Arc<Self>,
        net: &Network,
        instance: &str,
        func: &str,
        paths: ServePaths,
    ) -> Invocations {
        let id = net.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut table = lock(&self.table);
        let funcs = table.entry(Box::from(instance)).or_default();
        let route = funcs.entry(Box::from(func)).or_insert_with(|| Route {
            target: Arc::new(Target {
                prefix: self.prefix.clone(),
                instance: Box::from(instance),
                func: Box::from(func),
            }),
            servers: Vec::new(),
            next: AtomicUsize::new(0),
        });
        route.servers.push(Server { id, tx, paths });
        trace!(prefix = %self.prefix, instance, func, id, "serving");
        Invocations {
            registration: Registration {
                routes: self.clone(),
                target: route.target.clone(),
                id,
            },
            rx,
        }
    }

    fn deregister(&self, target: &Target, id: u64) {
        let mut table = lock(&self.table);
        let Some(funcs) = table.get_mut(&*target.instance) else {
            return;
        };
        if let Some(route) = funcs.get_mut(&*target.func) {
            route.servers.retain(|server| server.id != id);
            if route.servers.is_empty() {
                funcs.remove(&*target.func);
            }
        }
        if funcs.is_empty() {
            table.remove(&*target.instance);
        }
    }
}

/// Removes its registration when dropped.
struct Registration {
    routes: Arc<Routes>,
    target: Arc<Target>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        trace!(target = %self.target, id = self.id, "no longer serving");
        self.routes.deregister(&self.target, self.id);
    }
}

/// The stream of invocations of one `serve` registration.
///
/// Dropping it stops serving: later invocations fail with
/// [`TransportError::NoServer`], and invocations still queued for it end with an abort
/// that the caller reads as an error.
pub(crate) struct Invocations {
    // Declared first, so dropped first: the registration leaves the table before the
    // receiver (and the invocations queued in it) is dropped.
    registration: Registration,
    rx: mpsc::UnboundedReceiver<Delivery>,
}

impl Stream for Invocations {
    type Item = anyhow::Result<(Option<Headers>, Outgoing, Incoming)>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let Some(mut delivery) = std::task::ready!(self.rx.poll_recv(cx)) else {
                return Poll::Ready(None);
            };
            let (Some(outgoing), Some(incoming)) = (delivery.outgoing.take(), delivery.incoming.take())
            else {
                continue;
            };
            if outgoing.is_caller_gone() {
                // Cancelled while queued: nobody waits for the result.
                trace!(target = %self.registration.target, "skipping a cancelled invocation");
                continue;
            }
            return Poll::Ready(Some(Ok((delivery.cx.take(), outgoing, incoming))));
        }
    }
}

impl fmt::Debug for Invocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocations")
            .field("target", &self.registration.target)
            .field("id", &self.registration.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}
