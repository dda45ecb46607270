//! The callee's side: [`ComponentServer`] serves one component's exports on one
//! transport, under the component's concurrency limit.

use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::sync::Semaphore;
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
        let paths = paths.into();
        let invocations: LocalInvocations = match &self.kind {
            ServerKind::Local(t) => t.serve(instance, func, paths).await?,
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
        let permits = self.permits.clone();
        let with_permits = invocations.then(move |item| {
            let permits = permits.clone();
            async move {
                let (cx, o, i) = item?;
                let permit = permits
                    .acquire_owned()
                    .await
                    .context("the component's server was shut down")?;
                let outgoing = ServeOutgoing::new(o, Some(permit));
                // The caller may have given up while this call waited for a permit:
                // serving it would instantiate for nobody.
                Ok((!outgoing.is_caller_gone()).then_some((cx, outgoing, i)))
            }
        });
        // Boxed once per registration, so that callers can poll it without pinning.
        Ok(Box::pin(with_permits.filter_map(
            |item: anyhow::Result<Option<_>>| std::future::ready(item.transpose()),
        )))
    }
}
