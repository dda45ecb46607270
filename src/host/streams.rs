//! Byte streams of any of the host's transports behind one type, so that a caller (or a
//! callee) does not care which path a call took.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use wrpc_transport::Index;
use wrpc_transport::frame;

use super::metrics::CallRecord;
use crate::transport;

/// The writing side of a call, whichever transport carries it.
#[non_exhaustive]
pub enum AnyOutgoing {
    /// Over rings.
    Ring(transport::Outgoing),
    /// Over wRPC framing (the `duplex` and `mpsc` baselines).
    Frame(frame::Outgoing),
    /// A caller's parameters over NATS.
    NatsParams(Box<wrpc_transport_nats::ParamWriter>),
    /// A callee's results over NATS.
    NatsResults(Box<wrpc_transport_nats::SubjectWriter>),
}

/// The reading side of a call, whichever transport carries it.
#[non_exhaustive]
pub enum AnyIncoming {
    /// Over rings.
    Ring(transport::Incoming),
    /// Over wRPC framing (the `duplex` and `mpsc` baselines).
    Frame(frame::Incoming),
    /// Over NATS.
    Nats(Box<wrpc_transport_nats::Reader>),
}

impl AnyOutgoing {
    /// Ends the stream with an error carrying `reason`, where the transport can say so
    /// (rings: the reader gets `ConnectionAborted` with the reason). wRPC framing and
    /// NATS have no abort frame: there the stream just ends, and the reader sees an
    /// unexpected end of stream.
    pub fn abort(self, reason: impl Into<std::borrow::Cow<'static, str>>) {
        if let Self::Ring(mut outgoing) = self {
            outgoing.abort(reason);
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Ring(_) => "ring",
            Self::Frame(_) => "frame",
            Self::NatsParams(_) | Self::NatsResults(_) => "nats",
        }
    }
}

impl AnyIncoming {
    fn name(&self) -> &'static str {
        match self {
            Self::Ring(_) => "ring",
            Self::Frame(_) => "frame",
            Self::Nats(_) => "nats",
        }
    }
}

impl std::fmt::Debug for AnyOutgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AnyOutgoing").field(&self.name()).finish()
    }
}

impl std::fmt::Debug for AnyIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AnyIncoming").field(&self.name()).finish()
    }
}

macro_rules! each_outgoing {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            AnyOutgoing::Ring($inner) => $body,
            AnyOutgoing::Frame($inner) => $body,
            AnyOutgoing::NatsParams($inner) => $body,
            AnyOutgoing::NatsResults($inner) => $body,
        }
    };
}

macro_rules! each_incoming {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            AnyIncoming::Ring($inner) => $body,
            AnyIncoming::Frame($inner) => $body,
            AnyIncoming::Nats($inner) => $body,
        }
    };
}

impl AsyncWrite for AnyOutgoing {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each_outgoing!(self.get_mut(), w => Pin::new(w).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_outgoing!(self.get_mut(), w => Pin::new(w).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_outgoing!(self.get_mut(), w => Pin::new(w).poll_shutdown(cx))
    }
}

impl Index<Self> for AnyOutgoing {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(match self {
            Self::Ring(w) => Self::Ring(w.index(path)?),
            Self::Frame(w) => Self::Frame(w.index(path)?),
            Self::NatsParams(w) => Self::NatsParams(Box::new(w.index(path)?)),
            Self::NatsResults(w) => Self::NatsResults(Box::new(w.index(path)?)),
        })
    }
}

impl AsyncRead for AnyIncoming {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each_incoming!(self.get_mut(), r => Pin::new(r).poll_read(cx, buf))
    }
}

impl Index<Self> for AnyIncoming {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(match self {
            Self::Ring(r) => Self::Ring(r.index(path)?),
            Self::Frame(r) => Self::Frame(r.index(path)?),
            Self::Nats(r) => Self::Nats(Box::new(r.index(path)?)),
        })
    }
}

/// What a call's caller reads its results from: the transport's stream, held to the
/// call's deadline, with the call's metrics recorded when the last of its streams is
/// dropped.
///
/// # Errors
///
/// Reads fail with [`TimedOut`](io::ErrorKind::TimedOut) once the invocation timeout
/// has passed, naming the target and function.
#[derive(Debug)]
pub struct CallIncoming {
    inner: AnyIncoming,
    deadline: Deadline,
    record: std::sync::Arc<CallRecord>,
}

impl CallIncoming {
    pub(crate) fn new(inner: AnyIncoming, deadline: Deadline, record: std::sync::Arc<CallRecord>) -> Self {
        Self {
            inner,
            deadline,
            record,
        }
    }
}

impl AsyncRead for CallIncoming {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Err(err)) => {
                this.record.failed();
                Poll::Ready(Err(err))
            }
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => {
                ready!(this.deadline.poll_expired(cx));
                this.record.failed();
                Poll::Ready(Err(this.deadline.error()))
            }
        }
    }
}

impl Index<Self> for CallIncoming {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Self {
            inner: self.inner.index(path)?,
            deadline: self.deadline.fresh(),
            record: self.record.clone(),
        })
    }
}

/// What a call's caller writes its parameters to, whichever transport carries it.
///
/// # Errors
///
/// Write errors name the call (function and target component); over NATS, a call that
/// no component answers fails with [`NotConnected`](io::ErrorKind::NotConnected) and
/// says there were no responders.
#[derive(Debug)]
pub struct CallOutgoing {
    inner: AnyOutgoing,
    what: std::sync::Arc<str>,
    record: std::sync::Arc<CallRecord>,
}

impl CallOutgoing {
    pub(crate) fn new(
        inner: AnyOutgoing,
        what: std::sync::Arc<str>,
        record: std::sync::Arc<CallRecord>,
    ) -> Self {
        Self { inner, what, record }
    }

    fn explain<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(Err(err)) => {
                self.record.failed();
                let nats = matches!(self.inner, AnyOutgoing::NatsParams(_));
                let message = if nats && err.kind() == io::ErrorKind::NotConnected {
                    format!("{}: no responders on NATS (nothing serves it)", self.what)
                } else {
                    format!("{}: {err}", self.what)
                };
                Poll::Ready(Err(io::Error::new(err.kind(), message)))
            }
            other => other,
        }
    }
}

impl AsyncWrite for CallOutgoing {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.explain(result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.explain(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.explain(result)
    }
}

impl Index<Self> for CallOutgoing {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Self {
            inner: self.inner.index(path)?,
            what: self.what.clone(),
            record: self.record.clone(),
        })
    }
}

/// What a callee writes its results to: the transport's stream, holding the callee's
/// concurrency permit until the callee is done with it.
#[derive(Debug)]
pub struct ServeOutgoing {
    inner: AnyOutgoing,
    _permit: Option<OwnedSemaphorePermit>,
}

impl ServeOutgoing {
    pub(crate) fn new(inner: AnyOutgoing, permit: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            inner,
            _permit: permit,
        }
    }

    /// Ends the results with an error carrying `reason`; see [`AnyOutgoing::abort`].
    pub fn abort(self, reason: impl Into<std::borrow::Cow<'static, str>>) {
        self.inner.abort(reason);
    }
}

impl AsyncWrite for ServeOutgoing {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Index<Self> for ServeOutgoing {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Self {
            inner: self.inner.index(path)?,
            _permit: None,
        })
    }
}

/// A call's deadline; the timer is only created once a read has to wait.
#[derive(Debug)]
pub(crate) struct Deadline {
    at: Instant,
    timeout: Duration,
    what: std::sync::Arc<str>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    pub(crate) fn new(timeout: Duration, what: std::sync::Arc<str>) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
            what,
            sleep: None,
        }
    }

    fn fresh(&self) -> Self {
        Self {
            at: self.at,
            timeout: self.timeout,
            what: self.what.clone(),
            sleep: None,
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        self.sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)))
            .as_mut()
            .poll(cx)
    }

    fn error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{} timed out after {:?} (limits.invocation_timeout)",
                self.what, self.timeout
            ),
        )
    }
}

use std::future::Future as _;
