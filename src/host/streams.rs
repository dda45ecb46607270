//! Byte streams of any of the host's transports behind one type, so that a caller (or a
//! callee) does not care which path a call took; and the caller's and the callee's
//! tracked streams, each one type whose trait impls are thin: the concerns of a call
//! (its deadline, metrics, error context, concurrency permit) are fields, not layers,
//! and `AsyncBufRead` (the ring's in-place read) and vectored writes pass through.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use wrpc_transport::Index;
use wrpc_transport::frame;

use super::record::RecordRef;
use crate::transport;

/// The read buffer of a transport without one of its own (wRPC framing, NATS), for
/// `AsyncBufRead`: allocated on the first buffered read only.
const READ_BUFFER: usize = 8 * 1024;

/// A reader with a lazily allocated read buffer: `AsyncBufRead` for transports whose
/// readers are only `AsyncRead`. Plain reads bypass the buffer once it is empty.
#[derive(Debug)]
pub struct Buffered<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
}

impl<R> Buffered<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Box::default(),
            pos: 0,
            filled: 0,
        }
    }

    /// The reader inside.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Buffered<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.filled {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let n = out.remaining().min(this.filled - this.pos);
        out.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for Buffered<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos == this.filled {
            if this.buf.is_empty() {
                this.buf = vec![0; READ_BUFFER].into_boxed_slice();
            }
            let mut read = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            this.filled = read.filled().len();
            this.pos = 0;
        }
        Poll::Ready(Ok(&this.buf[this.pos..this.filled]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.filled);
    }
}

impl<R: Index<R>> Index<Self> for Buffered<R> {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        self.inner.index(path).map(Self::new)
    }
}

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
    Frame(Buffered<frame::Incoming>),
    /// Over NATS.
    Nats(Box<Buffered<wrpc_transport_nats::Reader>>),
}

impl AnyIncoming {
    /// A reader of wRPC framing.
    pub fn frame(incoming: frame::Incoming) -> Self {
        Self::Frame(Buffered::new(incoming))
    }

    /// A reader of NATS.
    pub fn nats(reader: wrpc_transport_nats::Reader) -> Self {
        Self::Nats(Box::new(Buffered::new(reader)))
    }
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

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each_outgoing!(self.get_mut(), w => Pin::new(w).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each_outgoing!(self, w => w.is_write_vectored())
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

impl AsyncBufRead for AnyIncoming {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        each_incoming!(self.get_mut(), r => Pin::new(r).poll_fill_buf(cx))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        each_incoming!(self.get_mut(), r => Pin::new(r).consume(amt))
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

/// A stream's own timer for its call's deadline, made the first time one of its polls
/// has to wait: a boxed `Sleep`, so that only a stream that waits pays for it.
#[derive(Debug, Default)]
pub(crate) struct StreamTimer(Option<Pin<Box<Sleep>>>);

impl StreamTimer {
    /// `Ready` once `at` has passed; otherwise registers `cx` to be woken then.
    pub(crate) fn poll(&mut self, at: tokio::time::Instant, cx: &mut Context<'_>) -> Poll<()> {
        self.0
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)))
            .as_mut()
            .poll(cx)
    }
}

/// What a call's caller reads its results from: the transport's stream, held to the
/// call's one deadline, the call's metrics recorded when the last of its streams is
/// dropped. Reads in place (`AsyncBufRead`) where the transport can.
///
/// # Errors
///
/// Reads fail with [`TimedOut`](io::ErrorKind::TimedOut) once the invocation timeout
/// has passed, naming the target and interface; other read errors come from the
/// transport, and mark the call failed.
#[derive(Debug)]
pub struct CallIncoming {
    inner: AnyIncoming,
    record: RecordRef,
    /// The record's deadline, kept here so that a pending read does not ask the
    /// record (a lock) for it; `None` when it is too far away to represent.
    deadline: Option<tokio::time::Instant>,
    /// The results root uses the record's timer; a sub-stream has its own, created
    /// the first time one of its reads has to wait.
    root: bool,
    timer: StreamTimer,
}

impl CallIncoming {
    /// The results root of the call of `record`, whose deadline is `deadline`
    /// ([`RecordRef::deadline`]).
    pub(crate) fn new(inner: AnyIncoming, record: RecordRef, deadline: Option<tokio::time::Instant>) -> Self {
        Self {
            inner,
            record,
            deadline,
            root: true,
            timer: StreamTimer::default(),
        }
    }

    /// `Ready` with the timeout error once the deadline has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(at) = self.deadline else {
            return Poll::Pending;
        };
        if self.root {
            ready!(self.record.poll_deadline(at, cx));
        } else {
            ready!(self.timer.poll(at, cx));
        }
        Poll::Ready(self.record.timed_out())
    }
}

impl AsyncRead for CallIncoming {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.record.answered();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => {
                this.record.failed();
                Poll::Ready(Err(err))
            }
            Poll::Pending => this.poll_expired(cx).map(Err),
        }
    }
}

impl AsyncBufRead for CallIncoming {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_fill_buf(cx) {
            Poll::Ready(Ok(buf)) => {
                this.record.answered();
                Poll::Ready(Ok(buf))
            }
            Poll::Ready(Err(err)) => {
                this.record.failed();
                Poll::Ready(Err(err))
            }
            Poll::Pending => {
                let Some(at) = this.deadline else {
                    return Poll::Pending;
                };
                if this.root {
                    ready!(this.record.poll_deadline(at, cx));
                } else {
                    ready!(this.timer.poll(at, cx));
                }
                Poll::Ready(Err(this.record.timed_out()))
            }
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().inner).consume(amt);
    }
}

impl Index<Self> for CallIncoming {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Self {
            inner: self.inner.index(path)?,
            record: self.record.clone(),
            deadline: self.deadline,
            root: false,
            timer: StreamTimer::default(),
        })
    }
}

/// What a call's caller writes its parameters to, whichever transport carries it.
///
/// # Errors
///
/// Write errors name the call (interface and target component); over NATS, a call that
/// no component answers fails with [`NotConnected`](io::ErrorKind::NotConnected) and
/// says there were no responders. A write, flush or shutdown that is still waiting when
/// the invocation timeout passes fails with [`TimedOut`](io::ErrorKind::TimedOut), as
/// reads do: over NATS, shutting the parameters down waits for the callee's answer to
/// the invocation, so a callee that takes the invocation and never answers would
/// otherwise hold the caller forever.
#[derive(Debug)]
pub struct CallOutgoing {
    inner: AnyOutgoing,
    record: RecordRef,
    /// The record's deadline, as [`CallIncoming`] keeps it; `None` when it is too far
    /// away to represent.
    deadline: Option<tokio::time::Instant>,
    /// Its own timer (not the record's, which the results root polls, maybe on another
    /// task), made the first time a write has to wait.
    timer: StreamTimer,
}

impl CallOutgoing {
    /// The parameters root of the call of `record`, whose deadline is `deadline`
    /// ([`RecordRef::deadline`]).
    pub(crate) fn new(inner: AnyOutgoing, record: RecordRef, deadline: Option<tokio::time::Instant>) -> Self {
        Self {
            inner,
            record,
            deadline,
            timer: StreamTimer::default(),
        }
    }

    /// A poll's result as the caller sees it: a write that waits past the call's
    /// deadline fails with the call's timeout error, and other errors name the call.
    fn guard<T>(&mut self, result: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            return self.explain(result);
        }
        let Some(at) = self.deadline else {
            return Poll::Pending;
        };
        ready!(self.timer.poll(at, cx));
        Poll::Ready(Err(self.record.timed_out()))
    }

    /// Names the call in an error (built only on error).
    fn explain<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(Err(err)) => {
                self.record.failed();
                let what = self.record.describe();
                let nats = matches!(self.inner, AnyOutgoing::NatsParams(_));
                let message = if nats && err.kind() == io::ErrorKind::NotConnected {
                    format!("{what}: no responders on NATS (nothing serves it)")
                } else {
                    format!("{what}: {err}")
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
        this.guard(result, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Index<Self> for CallOutgoing {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Self {
            inner: self.inner.index(path)?,
            record: self.record.clone(),
            deadline: self.deadline,
            timer: StreamTimer::default(),
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

    /// Takes the concurrency permit out of this writer, so that the server can hold it
    /// until it is done with the call, not only with its results (the runtime's `Val`
    /// path does).
    #[cfg(feature = "wasmtime")]
    pub(crate) fn take_permit(&mut self) -> Option<OwnedSemaphorePermit> {
        self._permit.take()
    }

    /// Whether the caller is known to be gone (over rings: it dropped the call), so
    /// that serving the call would be wasted.
    pub(crate) fn is_caller_gone(&self) -> bool {
        match &self.inner {
            AnyOutgoing::Ring(outgoing) => outgoing.is_caller_gone(),
            _ => false,
        }
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

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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

use std::future::Future as _;
