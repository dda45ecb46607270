//! The writing handle of an invocation's stream.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::ring::RingWriter;
use crate::sync::Arc;

use super::call::{Call, Dir, Failure, Side, Unbound, WriterBinding};
use super::error::TransportError;
use super::path::Path;

/// The outgoing byte stream of one end of a [`Ring`](crate::Ring) invocation: the
/// caller's parameters (after the `params` bytes given to `invoke`) or the callee's
/// results.
///
/// [`Index`](wrpc_transport::Index) gives the stream of an async value (a `stream` or
/// `future` nested anywhere in the values) as another `Outgoing`, which writes to a ring
/// of its own: sub-streams never block each other. The ring is leased from the
/// transport's [`RingPool`](crate::RingPool) at the first non-empty write, and meets the
/// peer's [`Incoming`](super::Incoming) for the same path whichever touches it first.
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
///
/// # Errors
///
/// Writes fail with [`BrokenPipe`](io::ErrorKind::BrokenPipe) once the reader is gone
/// (including when the whole peer side dropped the invocation) or after a shutdown, and
/// with [`NotFound`](io::ErrorKind::NotFound) on a path that is only a prefix of declared
/// async values; a second writer for the same path gets
/// [`AlreadyExists`](io::ErrorKind::AlreadyExists).
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

    pub(crate) fn set_unused(&mut self, unused: Unused) {
        if self.unused.is_some() {
            self.unused = Some(unused);
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

    fn bind(&mut self) {
        self.io = match self.call.bind_writer(self.dir, &self.path) {
            WriterBinding::Ring(writer) => Out::Ring(writer),
            WriterBinding::Failed(failure) => Out::Failed(failure),
        };
    }

    fn poll_write_bufs(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            match &mut self.io {
                Out::Ring(writer) => return Pin::new(writer).poll_write_vectored(cx, bufs),
                Out::Failed(failure) => return Poll::Ready(Err(failure.to_error())),
                Out::Closed => return Poll::Ready(Err(broken_pipe())),
                Out::Unbound if bufs.iter().all(|buf| buf.is_empty()) => return Poll::Ready(Ok(0)),
                Out::Unbound => self.bind(),
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
        let reason = match self.io {
            Out::Unbound => self.unused_reason(),
            _ => None,
        };
        let unbound = match self.io {
            Out::Unbound => Unbound::Writer(self.dir, &self.path, reason),
            _ => Unbound::Nothing,
        };
        self.call.release(self.side, unbound);
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
