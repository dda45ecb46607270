//! The local transports a host can use between its own components.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};
use wrpc_transport::{Invoke as _, Serve as _};

use super::config::{HostConfig, TransportKind};
use super::streams::{AnyIncoming, AnyOutgoing};
use crate::baseline::{Duplex, Mpsc};
use crate::{Headers, PoolStats, Ring, RingPool};

/// A boxed stream of served invocations, whichever transport they came over.
pub(crate) type LocalInvocations =
    Pin<Box<dyn Stream<Item = anyhow::Result<(Option<Headers>, AnyOutgoing, AnyIncoming)>> + Send + 'static>>;

/// [`LocalTransport::invoke`]'s answer: at once (the ring), or a future to await.
// Returned and matched at once, never stored: boxing the ring's answer would be the
// allocation this type exists to avoid.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LocalInvoke<'a> {
    Ready(anyhow::Result<(AnyOutgoing, AnyIncoming)>),
    Pending(BoxFuture<'a, anyhow::Result<(AnyOutgoing, AnyIncoming)>>),
}

/// One of the in-process transports, addressed by one prefix.
#[derive(Debug, Clone)]
pub(crate) enum LocalTransport {
    Ring(Ring),
    Duplex(Duplex),
    Mpsc(Mpsc),
}

impl LocalTransport {
    /// The host's local transport with the empty prefix, or `None` for
    /// `transport = "nats"` (every call goes through NATS).
    pub(crate) fn from_config(config: &HostConfig) -> Option<Self> {
        let capacity = usize::try_from(config.ring.capacity.0).unwrap_or(usize::MAX);
        Some(match config.transport {
            TransportKind::Ring => Self::Ring(
                Ring::new(RingPool::new(capacity, config.ring.pool_idle))
                    .with_max_queued(config.limits.max_queued),
            ),
            TransportKind::Duplex => Self::Duplex(Duplex::new(capacity)),
            TransportKind::Mpsc => Self::Mpsc(Mpsc::new(capacity)),
            TransportKind::Nats => return None,
        })
    }

    pub(crate) fn kind(&self) -> TransportKind {
        match self {
            Self::Ring(_) => TransportKind::Ring,
            Self::Duplex(_) => TransportKind::Duplex,
            Self::Mpsc(_) => TransportKind::Mpsc,
        }
    }

    /// Invocations queued under this handle's prefix (the `ring` transport's bounded
    /// inboxes; the baselines report 0).
    pub(crate) fn queued(&self) -> usize {
        match self {
            Self::Ring(t) => t.queued(),
            Self::Duplex(_) | Self::Mpsc(_) => 0,
        }
    }

    /// The ring pools' counters (`ring` only).
    pub(crate) fn pool_stats(&self) -> Option<PoolStats> {
        match self {
            Self::Ring(t) => Some(t.pool_stats()),
            Self::Duplex(_) | Self::Mpsc(_) => None,
        }
    }

    pub(crate) fn with_prefix(&self, prefix: &str) -> Self {
        match self {
            Self::Ring(t) => Self::Ring(t.with_prefix(prefix)),
            Self::Duplex(t) => Self::Duplex(t.with_prefix(prefix)),
            Self::Mpsc(t) => Self::Mpsc(t.with_prefix(prefix)),
        }
    }

    /// An invocation over this transport. The `Ring` never waits to invoke: it
    /// answers at once (`Ready`), so the dispatcher's future need not hold a future
    /// for it. The baselines (duplex, mpsc) return their invoke future, boxed: the
    /// dispatcher's future stays the size the ring path needs, and they pay one
    /// allocation per call for it.
    pub(crate) fn invoke<'a, P>(
        &'a self,
        headers: Option<Headers>,
        instance: &'a str,
        func: &'a str,
        params: Bytes,
        paths: &'a [P],
    ) -> LocalInvoke<'a>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        match self {
            Self::Ring(t) => LocalInvoke::Ready(
                t.invoke_now(headers, instance, func, params, paths)
                    .map(|(o, i)| (AnyOutgoing::Ring(o), AnyIncoming::Ring(i)))
                    .map_err(anyhow::Error::from),
            ),
            Self::Duplex(t) => LocalInvoke::Pending(Box::pin(async move {
                let (o, i) = t.invoke(headers, instance, func, params, paths).await?;
                Ok((AnyOutgoing::Frame(o), AnyIncoming::frame(i)))
            })),
            Self::Mpsc(t) => LocalInvoke::Pending(Box::pin(async move {
                let (o, i) = t.invoke(headers, instance, func, params, paths).await?;
                Ok((AnyOutgoing::Frame(o), AnyIncoming::frame(i)))
            })),
        }
    }

    pub(crate) async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: Arc<[Box<[Option<usize>]>]>,
    ) -> anyhow::Result<LocalInvocations> {
        Ok(match self {
            Self::Ring(t) => Box::pin(
                t.serve(instance, func, paths)
                    .await?
                    .map(|r| r.map(|(cx, o, i)| (cx, AnyOutgoing::Ring(o), AnyIncoming::Ring(i)))),
            ),
            Self::Duplex(t) => Box::pin(
                t.serve(instance, func, paths)
                    .await?
                    .map(|r| r.map(|(cx, o, i)| (cx, AnyOutgoing::Frame(o), AnyIncoming::frame(i)))),
            ),
            Self::Mpsc(t) => Box::pin(
                t.serve(instance, func, paths)
                    .await?
                    .map(|r| r.map(|(cx, o, i)| (cx, AnyOutgoing::Frame(o), AnyIncoming::frame(i)))),
            ),
        })
    }
}
