//! The writing handle of an invocation's stream.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::ring::RingWriter;
use crate::sync::Arc;

use super::call::{Call, Dir, Ending, Failure, Half, Side, WriterBinding};
use super::error::TransportError;
use super::path::Path;

/// The outgoing byte stream of one end of a [`Ring`](crate::Ring) invocation: the
/// caller's parameters (after the `params` bytes given to `invoke`) or the callee's
/// results.
///
/// [`Index`](wrpc_transport::Index) gives the stream of an async value (a `stream` or
/// `future` nested anywhere in the values) as another `Outgoing`, which writes to a ring
/// of its own: sub-streams never block each other. The ring is leased at the first
/// non-empty write, sized by that write: a small ring for a few bytes, the transport's
/// [`RingPool`](crate::RingPool) capacity for more, a ring 16 times larger (at most
/// 4 MiB) for writes of more than half a pool ring. A write that finds its ring full moves
/// the stream on to the next larger class, so a stream written in large chunks never
/// alternates with its reader chunk by chunk. The ring meets the peer's
/// [`Incoming`](super::Incoming) for the same path whichever touches it first.
///
/// # Closing
///
/// - [`poll_shutdown`](AsyncWrite::poll_shutdown) or dropping the handle ends the stream
///   cleanly: the reader gets every byte, then end-of-stream.
/// - [`abort`](Self::abort) ends it with an error that the reader receives after every
///   byte written before it ([`ConnectionAborted`](io::ErrorKind::ConnectionAborted)).
/// - The callee's root results stream dropped without a single byte written (the
///   handler gave up, or the serve stream was dropped before the invocation was taken)
///   is an abort naming the function, so the caller fails instead of waiting.
/// - Any handle dropped while its thread panics is an abort, whether it had written or
///   not, and whenever its reader comes: a panicking handler never ends a stream as if
///   it were complete.
///
/// # Errors
///
/// Writes fail with [`BrokenPipe`](io::ErrorKind::BrokenPipe) once the reader is gone
/// (including when the whole peer side dropped the invocation) or after a shutdown —
/// except on the caller's parameter sub-streams, whose writes into a gone reader are
/// discarded, as over NATS, so that a callee that answers without reading a stream
/// parameter to its end does not fail the call — and
/// with [`NotFound`](io::ErrorKind::NotFound) on a path that is only a prefix of declared
/// async values; a second writer for the same path gets
/// [`AlreadyExists`](io::ErrorKind::AlreadyExists), and a sub-stream beyond the per-call
/// bounds ([`Ring::with_max_call_streams`](crate::Ring::with_max_call_streams),
/// [`Ring::with_max_call_bytes`](crate::Ring::with_max_call_bytes))
/// [`QuotaExceeded`](io::ErrorKind::QuotaExceeded) (its reader then gets the same reason
/// as an abort). `index` of a new sub-stream fails with
/// [`TransportError::TooManyStreams`](crate::TransportError) when the call already holds
/// as many as the bound allows.
///
/// # Cancellation safety
///
/// As for [`RingWriter`]: a write either publishes bytes and returns their count, or
/// publishes nothing.
pub struct Outgoing {
    call: Arc<Call>,
    side: Side,
    dir: Dir,
    path: Path,
    io: Out,
    /// Set on the callee's root results stream only: the reason to give the caller if it
    /// is dropped before anything was written.
    unused: Option<Unused>,
}

enum Out {
    /// No byte written yet: no ring leased.
    Unbound,
    Ring(RingWriter),
    Failed(Failure),
    /// Shut down or aborted before binding.
    Closed,
}

/// Why the callee's root results stream went unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unused {
    /// The handler dropped it.
    HandlerDropped,
    /// The serve stream was dropped with the invocation still queued.
    NotAccepted,
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the stream is closed")
}

impl Outgoing {
    pub(crate) fn root(call: Arc<Call>, side: Side, unused: Option<Unused>) -> Self {
        let dir = match side {
            Side::Client => Dir::Params,
            Side::Server => Dir::Results,
        };
        Self {
            call,
            side,
            dir,
            path: Path::ROOT,
            io: Out::Unbound,
            unused,
        }
    }

    /// Whether every handle of the caller is gone (it cancelled the invocation).
    pub(crate) fn is_caller_gone(&self) -> bool {
        self.call.is_gone(Side::Client)
    }

    /// The async-value path of this stream (empty for the root stream).
    pub fn path(&self) -> &[usize] {
        self.path.as_slice()
    }

    /// Ends the stream with an error carrying `reason`, which the reader receives after
    /// every byte written before it, as an error of kind
    /// [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) (see
    /// [`Aborted`](crate::Aborted)). Has no effect on a stream already closed.
    pub fn abort(&mut self, reason: impl Into<Cow<'static, str>>) {
        match &mut self.io {
            Out::Ring(writer) => writer.abort(reason),
            Out::Unbound => {
                self.call.end_writer(self.dir, &self.path, Some(reason.into()));
                self.io = Out::Closed;
            }
            Out::Failed(_) | Out::Closed => {}
        }
    }

    fn bind(&mut self, len: usize) {
        self.io = match self.call.bind_writer(self.dir, &self.path, len) {
            WriterBinding::Ring(writer) => Out::Ring(writer),
            WriterBinding::Failed(failure) => {
                if failure.kind == io::ErrorKind::QuotaExceeded {
                    // This handle will never write: its reader (waiting already, or
                    // coming later) gets the reason as an abort instead of waiting
                    // until this whole side is gone.
                    self.call
                        .end_writer(self.dir, &self.path, Some(failure.reason.clone()));
                }
                Out::Failed(failure)
            }
        };
    }

    /// Whether writes into a reader that is gone are discarded rather than failed: on
    /// the caller's parameter sub-streams. A callee may answer without reading a stream
    /// parameter to its end (an HTTP-style handler that ignores the body); over NATS the
    /// caller's later writes then go nowhere and the call succeeds, and wRPC's helpers
    /// fail the whole call on a failed parameter write. The caller's outcome is its
    /// results'. The callee's writes still fail once the caller is gone, so that a
    /// cancelled call stops its work.
    fn discards(&self) -> bool {
        self.dir == Dir::Params && !self.path.is_root()
    }

    /// Accepts and drops `bufs` (see [`discards`](Self::discards)), spending the task's
    /// budget as a write does, so that a producer writing into nothing still yields.
    fn discard(cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        std::task::ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
        Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum()))
    }

    fn poll_write_bufs(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let discards = self.discards();
        loop {
            match &mut self.io {
                Out::Ring(writer) => {
                    let poll = Pin::new(&mut *writer).poll_write_vectored(cx, bufs);
                    if discards && matches!(poll, Poll::Ready(Err(_))) && writer.reader_gone() {
                        return Self::discard(cx, bufs);
                    }
                    // `Pending` with the task's budget spent is tokio's cooperative
                    // yield, not a full ring.
                    if poll.is_ready() || !tokio::task::coop::has_budget_remaining() {
                        return poll;
                    }
                    // Full: move on to a larger ring if there is one. Its reader half
                    // waits behind the old ring's, which closes cleanly here.
                    match self.call.grow(self.dir, &self.path, writer.capacity()) {
                        Some(larger) => drop(std::mem::replace(writer, larger)),
                        None => return poll,
                    }
                }
                Out::Failed(failure) if discards && failure.kind == io::ErrorKind::BrokenPipe => {
                    return Self::discard(cx, bufs);
                }
                Out::Failed(failure) => return Poll::Ready(Err(failure.to_error())),
                Out::Closed => return Poll::Ready(Err(broken_pipe())),
                Out::Unbound => {
                    let len = bufs.iter().map(|buf| buf.len()).sum();
                    if len == 0 {
                        return Poll::Ready(Ok(0));
                    }
                    self.bind(len);
                }
            }
        }
    }

    fn unused_reason(&self) -> Option<Cow<'static, str>> {
        let unused = self.unused?;
        let target = self
            .call
            .target()
            .map(|target| target.to_string())
            .unwrap_or_default();
        Some(Cow::Owned(match unused {
            Unused::HandlerDropped => {
                format!("the handler of `{target}` dropped its results without writing them")
            }
            Unused::NotAccepted => {
                format!("the server of `{target}` stopped serving before it took the invocation")
            }
        }))
    }
}

impl AsyncWrite for Outgoing {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bufs(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bufs(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Out::Ring(writer) => Pin::new(writer).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.io {
            Out::Ring(writer) => Pin::new(writer).poll_shutdown(cx),
            Out::Unbound => {
                this.call.end_writer(this.dir, &this.path, None);
                this.io = Out::Closed;
                Poll::Ready(Ok(()))
            }
            Out::Failed(_) | Out::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl wrpc_transport::Index<Self> for Outgoing {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        if path.is_empty() {
            return Err(TransportError::EmptyPath.into());
        }
        let path = self.path.join(path);
        self.call.open(self.side, self.dir, &path)?;
        Ok(Self {
            call: self.call.clone(),
            side: self.side,
            dir: self.dir,
            path,
            io: Out::Unbound,
            unused: None,
        })
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        let ending = match self.io {
            Out::Unbound => {
                let reason = if std::thread::panicking() {
                    // The close table: a writer dropped while panicking is an abort,
                    // even if it never wrote.
                    Some(Cow::Borrowed(
                        "the stream's writer was dropped while its thread was panicking",
                    ))
                } else {
                    self.unused_reason()
                };
                Ending::UnboundWriter(self.dir, &self.path, reason)
            }
            Out::Ring(_) => Ending::Bound(self.dir, &self.path, Half::Writer),
            Out::Failed(_) | Out::Closed => Ending::Nothing,
        };
        self.call.release(self.side, ending);
    }
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let io = match &self.io {
            Out::Unbound => "unbound",
            Out::Ring(_) => "ring",
            Out::Failed(_) => "failed",
            Out::Closed => "closed",
        };
        f.debug_struct("Outgoing")
            .field("side", &self.side)
            .field("dir", &self.dir)
            .field("path", &self.path)
            .field("io", &io)
            .finish_non_exhaustive()
    }
}
