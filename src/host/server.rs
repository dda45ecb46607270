//! The callee's side: [`ComponentServer`] serves one component's exports on one
//! transport, under the component's concurrency limit.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::PollSemaphore;
use wrpc_transport::Serve;

use super::config::TransportKind;
use super::local::{LocalInvocations, LocalTransport};
use super::streams::{AnyIncoming, AnyOutgoing, ServeOutgoing};
use crate::Headers;

#[derive(Debug, Clone)]
pub(crate) enum ServerKind {
    Local(LocalTransport),
    /// The wRPC client serving under the component's prefix, and the connection it
    /// uses (to confirm subscriptions with the server).
    Nats(wrpc_transport_nats::Client, async_nats::Client),
}

fn headers_from_nats(map: &async_nats::HeaderMap) -> Headers {
    let mut headers = Headers::new();
    for (name, values) in map.iter() {
        for value in values {
            headers.append(name.to_string(), value.as_str().to_string());
        }
    }
    headers
}

/// Serves one component's exports on one transport, applying the component's
/// concurrency limit: an invocation is handed out only with one of the component's
/// `max_instances` permits, held until the handler drops its results writer.
///
/// While every permit is taken, new invocations wait in the transport's queue
/// (bounded: a call beyond it fails at once as overloaded), and an invocation whose
/// caller went away while it waited is dropped without being served.
///
/// Its context is the caller's headers (`source-id`, `link-name`, …).
#[derive(Debug, Clone)]
pub struct ComponentServer {
    pub(crate) kind: ServerKind,
    pub(crate) permits: Arc<Semaphore>,
}

impl ComponentServer {
    /// The transport this server receives calls over.
    pub fn transport(&self) -> TransportKind {
        match &self.kind {
            ServerKind::Local(t) => t.kind(),
            ServerKind::Nats(..) => TransportKind::Nats,
        }
    }
}

impl Serve for ComponentServer {
    type Context = Option<Headers>;
    type Outgoing = ServeOutgoing;
    type Incoming = AnyIncoming;

    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<
        impl futures::Stream<Item = anyhow::Result<(Self::Context, Self::Outgoing, Self::Incoming)>>
        + Send
        + 'static,
    > {
        self.serve_inner(instance, func, paths.into(), None).await
    }
}

/// A component's task that can start a call at once (the runtime's parked workers), to
/// which a `ring` call goes straight from its caller ([`ComponentServer::serve_handing_off`]).
#[cfg(feature = "wasmtime")]
pub(crate) trait Takes: Send + Sync + 'static {
    /// Runs the call that `take` builds, if a task is free to start it now. `take` is
    /// called at most once, and only then; the return value says whether it was.
    fn try_take(&self, take: &mut dyn FnMut() -> (ServeOutgoing, AnyIncoming)) -> bool;
}

/// The ring's [`Handoff`](crate::transport::Handoff) for a component: a call is taken
/// only with one of the component's permits and by a free task, as its serve stream
/// would have handed it out.
#[cfg(feature = "wasmtime")]
struct PermittedHandoff<T> {
    permits: Arc<Semaphore>,
    taker: T,
}

#[cfg(feature = "wasmtime")]
impl<T: Takes> crate::transport::Handoff for PermittedHandoff<T> {
    fn offer(&self, take: &mut dyn FnMut() -> crate::transport::Invocation) -> bool {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return false;
        };
        let mut permit = Some(permit);
        self.taker.try_take(&mut || {
            // The context is not passed on: the serve loops drop it too.
            let (_headers, outgoing, incoming) = take();
            (
                ServeOutgoing::new(AnyOutgoing::Ring(outgoing), permit.take()),
                AnyIncoming::Ring(incoming),
            )
        })
    }
}

impl ComponentServer {
    /// [`Serve::serve`], and over the `ring` transport, a call that finds nothing queued,
    /// a permit free and `taker` ready goes straight to `taker` from its caller's task,
    /// without the returned stream's task in between. The stream yields the rest (every
    /// call over the other transports).
    ///
    /// # Errors
    ///
    /// As [`Serve::serve`].
    #[cfg(feature = "wasmtime")]
    pub(crate) async fn serve_handing_off(
        &self,
        instance: &str,
        func: &str,
        paths: Arc<[Box<[Option<usize>]>]>,
        taker: impl Takes,
    ) -> anyhow::Result<
        impl futures::Stream<Item = anyhow::Result<(Option<Headers>, ServeOutgoing, AnyIncoming)>>
        + Send
        + 'static,
    > {
        let handoff: Arc<dyn crate::transport::Handoff> = Arc::new(PermittedHandoff {
            permits: self.permits.clone(),
            taker,
        });
        self.serve_inner(instance, func, paths, Some(handoff)).await
    }

    async fn serve_inner(
        &self,
        instance: &str,
        func: &str,
        paths: Arc<[Box<[Option<usize>]>]>,
        handoff: Option<Arc<dyn crate::transport::Handoff>>,
    ) -> anyhow::Result<Permitted> {
        let invocations: LocalInvocations = match &self.kind {
            ServerKind::Local(t) => t.serve(instance, func, paths, handoff).await?,
            ServerKind::Nats(client, nats) => {
                let invocations = client.serve(instance, func, paths).await?;
                // Wait until the server has the subscription, so that a call made right
                // after `serve` returns finds a responder.
                super::nats::confirm_subscriptions(nats).await?;
                Box::pin(invocations.map(|item| {
                    item.map(|(cx, o, i)| {
                        let headers = cx.headers.map(|map| headers_from_nats(&map));
                        (
                            headers,
                            AnyOutgoing::NatsResults(Box::new(o)),
                            AnyIncoming::nats(i),
                        )
                    })
                }))
            }
        };
        Ok(Permitted {
            invocations,
            permits: PollSemaphore::new(self.permits.clone()),
            accepted: None,
        })
    }
}

/// A served registration's invocations, each handed out with one of the component's
/// permits. An invocation that finds a permit free takes it without a future or an
/// allocation; one that must wait holds its place in the semaphore's queue (one boxed
/// future, reused for every later wait).
struct Permitted {
    invocations: LocalInvocations,
    permits: PollSemaphore,
    /// The invocation waiting for a permit.
    accepted: Option<(Option<Headers>, AnyOutgoing, AnyIncoming)>,
}

impl futures::Stream for Permitted {
    type Item = anyhow::Result<(Option<Headers>, ServeOutgoing, AnyIncoming)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let invocation = match this.accepted.take() {
                Some(invocation) => invocation,
                None => match ready!(this.invocations.poll_next_unpin(cx)) {
                    Some(Ok(invocation)) => invocation,
                    Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                    None => return Poll::Ready(None),
                },
            };
            let permit = match this.permits.poll_acquire(cx) {
                Poll::Ready(Some(permit)) => permit,
                Poll::Ready(None) => {
                    return Poll::Ready(Some(Err(anyhow::anyhow!("the component's server was shut down"))));
                }
                Poll::Pending => {
                    this.accepted = Some(invocation);
                    return Poll::Pending;
                }
            };
            let (headers, outgoing, incoming) = invocation;
            let outgoing = ServeOutgoing::new(outgoing, Some(permit));
            // The caller may have given up while this call waited for a permit: serving
            // it would instantiate for nobody.
            if !outgoing.is_caller_gone() {
                return Poll::Ready(Some(Ok((headers, outgoing, incoming))));
            }
        }
    }
}
