//! `Ring`: the in-process wRPC transport handle.

use std::fmt;

use bytes::Bytes;
use futures::Stream;
use tracing::instrument;

use crate::sync::{Arc, Ordering};
use crate::{PoolStats, RingPool};

use super::call::CallPool;
use super::error::TransportError;
use super::headers::Headers;
#[cfg(feature = "host")]
use super::inbox::{Handoff, Invocation};
use super::incoming::Incoming;
use super::outgoing::Outgoing;
use super::registry::{Network, PrefixRegistry};

/// An in-process wRPC transport on pooled rings: one cheap, cloneable handle that
/// implements both [`Invoke`](wrpc_transport::Invoke) and [`Serve`](wrpc_transport::Serve)
/// (wrpc-transport 0.29).
///
/// # Addressing
///
/// As in wrpc-transport-nats, a target is a *prefix* (in wasmCloud,
/// `{lattice}.{component-id}`), an *instance* and a *function*. A handle carries one
/// prefix ([`new`](Self::new) starts with the empty one, [`with_prefix`](Self::with_prefix)
/// makes a handle for another) and all handles made from one `Ring::new` share their
/// registrations, so a dispatcher maps a NATS target to a local one 1:1. Several `serve`
/// registrations of the same target are balanced round-robin, like a NATS queue group.
///
/// # An invocation
///
/// `invoke` finds a registration and hands the callee its two root handles through the
/// registration's channel; the callee's task takes them from its serve stream, so caller
/// and callee always run concurrently (never the callee inline in the caller's future).
/// The `params` bytes reach the callee's [`Incoming`] by reference count; anything the
/// caller writes later, and the results, travel over rings leased from the
/// [`RingPool`]. Each async value (`stream`, `future`, nested anywhere, `None` wildcards
/// included) gets a ring of its own through [`Index`](wrpc_transport::Index): both sides'
/// `index(path)` meet on the same ring whichever comes first. Paths are declared by the
/// receiving side (the caller's `paths` in `invoke` for results, the callee's in `serve`
/// for parameters); indexing an undeclared path is an error naming it.
///
/// No task is spawned by the transport, no byte goes through a mutex, and a write
/// allocates nothing. Every ring of an invocation returns to the pool once both sides
/// have dropped their handles, however the invocation ended.
///
/// # Context
///
/// The context of both traits is `Option<`[`Headers`]`>`: what the caller passes to
/// `invoke` is what the callee's serve stream yields.
///
/// # Errors
///
/// - `invoke` fails at once with [`TransportError::NoServer`](crate::TransportError) when
///   nothing serves the target, and with `TransportError::Overloaded` when the
///   registration it would go to already has [`with_max_queued`](Self::with_max_queued)
///   invocations waiting for its serve stream.
/// - A caller that drops its handles while its invocation is still queued takes it back
///   at once: its parameters are freed then, and the callee never sees it.
/// - A serve stream dropped: later invocations fail as above; invocations still queued
///   for it fail on the caller's read with an abort naming the target.
/// - A callee dropping its results without writing any: the caller's read fails with an
///   abort naming the target, instead of waiting.
/// - A caller dropping its handles (cancelling): the callee's writes fail with
///   `BrokenPipe`, its reads of streams the caller never indexed with
///   `ConnectionAborted` (a handle the caller indexed and then dropped unwritten, while
///   not panicking, ends its stream cleanly, as any dropped writer does).
/// - A callee dropping the reader of a stream parameter (or finishing) before the
///   caller is done writing it: the caller's writes into it are discarded, as over
///   NATS, and the call's outcome is its results'.
///
/// # Examples
///
/// ```
/// use futures::StreamExt as _;
/// use wrpc_ring::{Headers, Ring, RingPool};
/// use wrpc_transport::{InvokeExt as _, ServeExt as _};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let ring = Ring::new(RingPool::new(64 * 1024, 64)).with_prefix("default.comp-b");
///
/// // The callee: serve `greet`, answering each invocation from a task of its own.
/// let invocations = ring
///     .serve_values::<(String,), (String,)>(
///         "example:hello/greeter",
///         "greet",
///         Vec::<Box<[Option<usize>]>>::new(), // no async parameters
///     )
///     .await?;
/// let server = tokio::spawn(async move {
///     let mut invocations = std::pin::pin!(invocations);
///     while let Some(invocation) = invocations.next().await {
///         let (cx, (name,), _async_params, respond) = invocation?;
///         let caller = cx.as_ref().and_then(|cx| cx.get("source-id")).unwrap_or("?");
///         let greeting = format!("hello {name}, from {caller}");
///         tokio::spawn(respond((greeting,)));
///     }
///     anyhow::Ok(())
/// });
///
/// // The caller: the same target, with its identity in the context.
/// let mut cx = Headers::new();
/// cx.insert("source-id", "comp-a");
/// let ((greeting,), _async_io) = ring
///     .invoke_values::<_, _, (String,)>(
///         Some(cx),
///         "example:hello/greeter",
///         "greet",
///         ("world".to_string(),),
///         &[] as &[&[Option<usize>]], // no async results
///     )
///     .await?;
/// assert_eq!(greeting, "hello world, from comp-a");
///
/// // Nothing serves this one: the invocation fails at once.
/// let result = ring
///     .invoke_values::<_, _, (String,)>(
///         None,
///         "example:hello/greeter",
///         "nope",
///         ("x".to_string(),),
///         &[] as &[&[Option<usize>]],
///     )
///     .await;
/// let err = result.err().expect("nothing serves `nope`");
/// assert!(format!("{err:#}").contains("no server for function `nope`"));
/// server.abort();
/// # anyhow::Ok(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Ring {
    net: Arc<Network>,
    registry: Arc<PrefixRegistry>,
}

impl Ring {
    /// A transport on rings from `pool`, with the empty prefix.
    ///
    /// Invocation state is pooled next to the rings: at most `pool.max_idle()` idle
    /// invocations are kept.
    pub fn new(pool: RingPool) -> Self {
        let net = Arc::new(Network::new(CallPool::new(pool)));
        let registry = net.registry("");
        Self { net, registry }
    }

    /// Bounds the invocations queued for each `serve` registration and not yet taken by
    /// its serve stream (default [`DEFAULT_MAX_QUEUED`](crate::transport::DEFAULT_MAX_QUEUED)).
    /// An invocation beyond it fails at once with
    /// [`TransportError::Overloaded`](crate::TransportError) naming the target. Applies
    /// to every handle of this transport, from the next invocation on.
    ///
    /// # Panics
    ///
    /// If `max` is zero.
    pub fn with_max_queued(self, max: usize) -> Self {
        assert!(max > 0, "the queue bound must be at least 1");
        self.net.max_queued.store(max, Ordering::Relaxed);
        self
    }

    /// Bounds the sub-streams one invocation holds at once (default
    /// [`DEFAULT_MAX_CALL_STREAMS`](crate::transport::DEFAULT_MAX_CALL_STREAMS)): an
    /// entry is held from the first touch of a path (or the drop of an unused handle,
    /// which leaves a mark for its peer) until both of its ends are done. Beyond it,
    /// `index` of a new path fails with
    /// [`TransportError::TooManyStreams`](crate::TransportError), and a first write or
    /// read that would add an entry with
    /// [`QuotaExceeded`](std::io::ErrorKind::QuotaExceeded). Applies to every handle of
    /// this transport.
    pub fn with_max_call_streams(self, max: usize) -> Self {
        self.net.calls.limits.streams.store(max, Ordering::Relaxed);
        self
    }

    /// Bounds the ring bytes one invocation holds written ahead of their readers
    /// (default [`DEFAULT_MAX_CALL_BYTES`](crate::transport::DEFAULT_MAX_CALL_BYTES)):
    /// the capacity of the rings leased for sub-streams whose reader has not taken them
    /// yet. A ring its reader has taken no longer counts, even if the reader then
    /// stops reading (its writer then waits for it, holding that one ring).
    /// A sub-stream whose first ring does not fit fails with
    /// [`QuotaExceeded`](std::io::ErrorKind::QuotaExceeded); a stream that would grow
    /// into a larger ring keeps its ring instead. Applies to every handle of this
    /// transport.
    pub fn with_max_call_bytes(self, max: usize) -> Self {
        self.net.calls.limits.bytes.store(max, Ordering::Relaxed);
        self
    }

    /// Rings of every size class leased by this transport and not yet returned (0 once
    /// every invocation has ended and its handles are dropped).
    pub fn rings_in_use(&self) -> usize {
        self.net.calls.rings().in_use()
    }

    /// Invocations queued for the `serve` registrations under this handle's prefix and
    /// not yet taken by their serve streams (each registration holds at most the
    /// [`with_max_queued`](Self::with_max_queued) bound).
    pub fn queued(&self) -> usize {
        self.registry.queued()
    }

    /// The counters of the ring pools behind this transport, summed over their size
    /// classes (sub-streams lease rings of the class that fits their first write).
    pub fn pool_stats(&self) -> PoolStats {
        self.net.calls.rings().stats()
    }

    /// A handle on the same transport that invokes and serves under `prefix` (in
    /// wasmCloud, `{lattice}.{component-id}`).
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            net: self.net.clone(),
            registry: self.net.registry(prefix),
        }
    }

    /// This handle's prefix.
    pub fn prefix(&self) -> &str {
        self.registry.prefix()
    }

    /// The pool the transport's rings of the standard class come from (for its
    /// statistics). Sub-streams also lease smaller and larger rings from pools of their
    /// own; [`rings_in_use`](Self::rings_in_use) counts all of them.
    pub fn pool(&self) -> &RingPool {
        self.net.calls.rings().standard()
    }

    /// Whether a `serve` registration for `instance`/`func` exists under this handle's
    /// prefix right now, so that a dispatcher can route locally.
    pub fn serves(&self, instance: &str, func: &str) -> bool {
        self.registry.serves(instance, func)
    }

    /// [`Serve::serve`](wrpc_transport::Serve::serve) with a [`Handoff`]: while nothing is
    /// queued for this registration, an invocation goes straight from its invoker to
    /// `handoff` if it takes it, and only the rest reach the returned stream.
    #[cfg(feature = "host")]
    pub(crate) fn serve_with_handoff(
        &self,
        instance: &str,
        func: &str,
        paths: std::sync::Arc<[Box<[Option<usize>]>]>,
        handoff: Arc<dyn Handoff>,
    ) -> impl Stream<Item = anyhow::Result<Invocation>> + Send + 'static {
        self.registry
            .serve(&self.net, instance, func, paths, Some(handoff))
    }

    /// [`Invoke::invoke`](wrpc_transport::Invoke::invoke) without a future: a ring
    /// invocation never waits (a full queue is an "overloaded" error), so a caller that
    /// knows its transport is a `Ring` (the dispatcher) calls it directly and keeps its
    /// own future small.
    pub(crate) fn invoke_now<P: AsRef<[Option<usize>]>>(
        &self,
        cx: Option<Headers>,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: &[P],
    ) -> Result<(Outgoing, Incoming), TransportError> {
        self.registry.invoke(&self.net, cx, instance, func, params, paths)
    }
}

impl wrpc_transport::Invoke for Ring {
    type Context = Option<Headers>;
    type Outgoing = Outgoing;
    type Incoming = Incoming;

    #[instrument(level = "trace", skip(self, cx, params, paths), fields(prefix = self.prefix()))]
    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        Ok(self.invoke_now(cx, instance, func, params, paths.as_ref())?)
    }
}

impl wrpc_transport::Serve for Ring {
    type Context = Option<Headers>;
    type Outgoing = Outgoing;
    type Incoming = Incoming;

    #[instrument(level = "trace", skip(self, paths), fields(prefix = self.prefix()))]
    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<std::sync::Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<
        impl Stream<Item = anyhow::Result<(Self::Context, Self::Outgoing, Self::Incoming)>> + Send + 'static,
    > {
        Ok(self.registry.serve(&self.net, instance, func, paths.into(), None))
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("prefix", &self.prefix())
            .field("pool", self.pool())
            .finish()
    }
}
