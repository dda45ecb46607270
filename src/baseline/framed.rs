//! wRPC's own framing over an in-process byte pipe, behind prefix addressing.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::Context as _;
use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadHalf, WriteHalf};
use tracing::{instrument, warn};
use wrpc_transport::frame::{self, Accept};

use super::mpsc::{MpscReader, MpscWriter, mpsc_pipe};
use crate::Headers;

/// How a [`Framed`] transport makes the byte pipe of one direction of a call.
pub trait PipeKind: Send + Sync + 'static {
    /// The reading end.
    type Reader: AsyncRead + Send + Sync + Unpin + 'static;
    /// The writing end.
    type Writer: AsyncWrite + Send + Sync + Unpin + 'static;
    /// A short name for logs and metrics.
    const NAME: &'static str;
    /// Creates one pipe buffering about `buffer` bytes.
    fn pipe(buffer: usize) -> (Self::Writer, Self::Reader);
}

/// `tokio::io::duplex`, one per direction (the earlier fork's `DuplexStream` approach).
#[derive(Debug)]
pub struct DuplexPipe;

impl PipeKind for DuplexPipe {
    type Reader = ReadHalf<DuplexStream>;
    type Writer = WriteHalf<DuplexStream>;
    const NAME: &'static str = "duplex";

    fn pipe(buffer: usize) -> (Self::Writer, Self::Reader) {
        let (a, b) = tokio::io::duplex(buffer);
        let (_, writer) = tokio::io::split(a);
        let (reader, _) = tokio::io::split(b);
        (writer, reader)
    }
}

/// [`mpsc_pipe`]: `tokio::sync::mpsc<Bytes>` with backpressure (the fork's mpsc variant,
/// fixed).
#[derive(Debug)]
pub struct MpscPipe;

impl PipeKind for MpscPipe {
    type Reader = MpscReader;
    type Writer = MpscWriter;
    const NAME: &'static str = "mpsc";

    fn pipe(buffer: usize) -> (Self::Writer, Self::Reader) {
        mpsc_pipe(buffer)
    }
}

/// The `duplex` baseline: wRPC framing over `tokio::io::duplex`.
pub type Duplex = Framed<DuplexPipe>;

/// The `mpsc` baseline: wRPC framing over `tokio::sync::mpsc<Bytes>` byte streams.
pub type Mpsc = Framed<MpscPipe>;

type Server<K> = frame::Server<Option<Headers>, <K as PipeKind>::Reader, <K as PipeKind>::Writer>;

struct Prefix<K: PipeKind> {
    server: Server<K>,
    /// `(instance, function)` pairs served, so an unserved call fails at once.
    served: RwLock<HashSet<(String, String)>>,
}

/// Everything the handles of one [`Framed`] transport share: the pipe size and the servers
/// by prefix.
struct FramedNetwork<K: PipeKind> {
    buffer: usize,
    prefixes: Mutex<HashMap<String, Arc<Prefix<K>>>>,
}

/// An in-process wRPC transport using wRPC's own `frame` protocol over a byte pipe of
/// kind `K`; see [`Duplex`] and [`Mpsc`].
///
/// A cheap handle; clones and [`with_prefix`](Self::with_prefix) handles share one set
/// of servers. Each invocation makes two pipes (one per direction) of `buffer` bytes,
/// and spawns one task that runs `frame::Server::accept` for the callee, so that the
/// callee always runs concurrently with its caller.
///
/// # Examples
///
/// ```
/// use futures::StreamExt as _;
/// use wrpc_transport::{InvokeExt as _, ServeExt as _};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let transport = wrpc_ring::baseline::Duplex::new(64 * 1024).with_prefix("default.comp-b");
/// let invocations = transport
///     .serve_values::<(String,), (String,)>("example:hello/greeter", "greet", Vec::<Box<[Option<usize>]>>::new())
///     .await?;
/// tokio::spawn(invocations.for_each(|item| async move {
///     let (_cx, (name,), _io, respond) = item.unwrap();
///     respond((format!("hello {name}"),)).await.unwrap();
/// }));
/// let (greeting,) = transport
///     .invoke_values_blocking::<_, _, (String,)>(None, "example:hello/greeter", "greet", ("you".to_string(),), &[] as &[&[Option<usize>]])
///     .await?;
/// assert_eq!(greeting, "hello you");
/// # anyhow::Ok(())
/// # }).unwrap();
/// ```
pub struct Framed<K: PipeKind> {
    network: Arc<FramedNetwork<K>>,
    prefix: Arc<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K: PipeKind> Clone for Framed<K> {
    fn clone(&self) -> Self {
        Self {
            network: self.network.clone(),
            prefix: self.prefix.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: PipeKind> Framed<K> {
    /// A transport whose pipes buffer `buffer` bytes per direction, with the empty
    /// prefix.
    pub fn new(buffer: usize) -> Self {
        Self {
            network: Arc::new(FramedNetwork {
                buffer,
                prefixes: Mutex::default(),
            }),
            prefix: Arc::from(""),
            kind: PhantomData,
        }
    }

    /// A handle on the same transport that invokes and serves under `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            network: self.network.clone(),
            prefix: Arc::from(prefix),
            kind: PhantomData,
        }
    }

    /// This handle's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `instance`/`func` is served under this handle's prefix right now.
    pub fn serves(&self, instance: &str, func: &str) -> bool {
        self.lookup().is_some_and(|p| {
            p.served
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(instance.to_string(), func.to_string()))
        })
    }

    fn lookup(&self) -> Option<Arc<Prefix<K>>> {
        self.network
            .prefixes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&*self.prefix)
            .cloned()
    }

    fn lookup_or_create(&self) -> Arc<Prefix<K>> {
        let mut prefixes = self
            .network
            .prefixes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        prefixes
            .entry(self.prefix.to_string())
            .or_insert_with(|| {
                Arc::new(Prefix {
                    server: frame::Server::new(),
                    served: RwLock::default(),
                })
            })
            .clone()
    }
}

/// Hands one accepted connection to `frame::Server::accept`.
struct Handoff<K: PipeKind>(Mutex<Option<Accepted<K>>>);

/// What `frame::Server::accept` takes from a [`Handoff`]: context, writer, reader.
type Accepted<K> = (Option<Headers>, <K as PipeKind>::Writer, <K as PipeKind>::Reader);

impl<K: PipeKind> Accept for Handoff<K> {
    type Context = Option<Headers>;
    type Outgoing = K::Writer;
    type Incoming = K::Reader;

    async fn accept(&self) -> io::Result<(Self::Context, Self::Outgoing, Self::Incoming)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection already accepted"))
    }
}

impl<K: PipeKind> wrpc_transport::Invoke for Framed<K> {
    type Context = Option<Headers>;
    type Outgoing = frame::Outgoing;
    type Incoming = frame::Incoming;

    #[instrument(level = "trace", skip(self, cx, params, paths), fields(kind = K::NAME, prefix = %self.prefix))]
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
        let target = self.lookup().filter(|p| {
            p.served
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(instance.to_string(), func.to_string()))
        });
        let Some(target) = target else {
            anyhow::bail!(
                "no server for function `{func}` of instance `{instance}` under prefix `{}` ({} transport)",
                self.prefix,
                K::NAME
            );
        };
        let (client_tx, server_rx) = K::pipe(self.network.buffer);
        let (server_tx, client_rx) = K::pipe(self.network.buffer);
        let handoff = Handoff::<K>(Mutex::new(Some((cx, server_tx, server_rx))));
        // The callee side runs on its own task: never inline in the caller's future.
        tokio::spawn(async move {
            if let Err(err) = target.server.accept(handoff).await {
                warn!(%err, kind = K::NAME, "failed to accept a local invocation");
            }
        });
        frame::invoke(client_tx, client_rx, instance, func, params, paths)
            .await
            .with_context(|| format!("failed to invoke `{instance}#{func}` over {}", K::NAME))
    }
}

impl<K: PipeKind> wrpc_transport::Serve for Framed<K> {
    type Context = Option<Headers>;
    type Outgoing = frame::Outgoing;
    type Incoming = frame::Incoming;

    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<
        impl Stream<Item = anyhow::Result<(Self::Context, Self::Outgoing, Self::Incoming)>> + Send + 'static,
    > {
        let prefix = self.lookup_or_create();
        let stream = wrpc_transport::Serve::serve(&prefix.server, instance, func, paths).await?;
        let stream: std::pin::Pin<Box<dyn Stream<Item = _> + Send + 'static>> = Box::pin(stream);
        prefix
            .served
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((instance.to_string(), func.to_string()));
        Ok(stream)
    }
}

impl<K: PipeKind> fmt::Debug for Framed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framed")
            .field("kind", &K::NAME)
            .field("prefix", &self.prefix)
            .field("buffer", &self.network.buffer)
            .finish()
    }
}
