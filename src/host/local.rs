//! The local transports a host can use between its own components.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use wrpc_transport::{Invoke as _, Serve as _};

use super::config::{HostConfig, TransportKind};
use super::streams::{AnyIncoming, AnyOutgoing};
use crate::baseline::{Duplex, Mpsc};
use crate::{Headers, PoolStats, Ring, RingPool};

/// A boxed stream of served invocations, whichever transport they came over.
pub(crate) type LocalInvocations =
    Pin<Box<dyn Stream<Item = anyhow::Result<(Option<Headers>, AnyOutgoing, AnyIncoming)>> + Send + 'static>>;

/// A call over the ring, which never waits to invoke: the invocation is a hand-over.
pub(crate) fn invoke_ring<P>(
    ring: &Ring,
    headers: Option<Headers>,
    instance: &str,
    func: &str,
    params: Bytes,
    paths: &[P],
) -> anyhow::Result<(AnyOutgoing, AnyIncoming)>
where
    P: AsRef<[Option<usize>]> + Send + Sync,
{
    let (o, i) = ring.invoke_now(headers, instance, func, params, paths)?;
    Ok((AnyOutgoing::Ring(o), AnyIncoming::Ring(i)))
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

    /// An invocation over this transport. The dispatcher awaits it only for the
    /// baselines: a `Ring` call answers without waiting ([`invoke_ring`]), and the
    /// dispatcher takes that path without a future.
    pub(crate) async fn invoke<P>(
        &self,
        headers: Option<Headers>,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: &[P],
    ) -> anyhow::Result<(AnyOutgoing, AnyIncoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        match self {
            Self::Ring(t) => invoke_ring(t, headers, instance, func, params, paths),
            Self::Duplex(t) => {
                let (o, i) = t.invoke(headers, instance, func, params, paths).await?;
                Ok((AnyOutgoing::Frame(o), AnyIncoming::frame(i)))
            }
            Self::Mpsc(t) => {
                let (o, i) = t.invoke(headers, instance, func, params, paths).await?;
                Ok((AnyOutgoing::Frame(o), AnyIncoming::frame(i)))
            }
        }
    }

    pub(crate) async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: Arc<[Box<[Option<usize>]>]>,
        handoff: Option<Arc<dyn crate::transport::Handoff>>,
    ) -> anyhow::Result<LocalInvocations> {
        let ring = |r: anyhow::Result<crate::transport::Invocation>| {
            r.map(|(cx, o, i)| (cx, AnyOutgoing::Ring(o), AnyIncoming::Ring(i)))
        };
        Ok(match self {
            Self::Ring(t) => match handoff {
                Some(handoff) => Box::pin(t.serve_with_handoff(instance, func, paths, handoff).map(ring)),
                None => Box::pin(t.serve(instance, func, paths).await?.map(ring)),
            },
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
