//! The reading handle of an invocation's stream.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use crate::ring::RingReader;
use crate::sync::Arc;

use super::call::{Call, Dir, Failure, ReaderBinding, Side, Unbound};
use super::error::TransportError;
use super::path::Path;

/// The incoming byte stream of one end of a [`Ring`](crate::Ring) invocation: the
/// callee's parameters or the caller's results.
///
/// On the callee's root stream, the `params` [`Bytes`] given to `invoke` come first, the
/// very buffer (shared by reference count, never copied by the transport), followed by
/// whatever the caller writes to its [`Outgoing`](super::Outgoing) later.
/// [`Index`](wrpc_transport::Index) gives the stream of an async value as another
/// `Incoming` with a ring of its own.
///
/// Implements [`AsyncRead`] and [`AsyncBufRead`]; `fill_buf` returns the `params` bytes,
/// then ring memory in place.
///
/// # Closing
///
/// The reader gets every byte written, then end-of-stream (`Ok(0)`) after a clean close,
/// or an error of kind [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) carrying
/// the reason after an abort: the writer aborted, the callee dropped its results without
/// writing any, or the peer dropped the whole invocation before writing this stream.
/// Dropping the reader makes the writer's later writes fail with
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe).
///
/// # Errors
///
/// Besides the above, reading a path that is only a prefix of declared async values
/// fails with [`NotFound`](io::ErrorKind::NotFound), and a second reader for the same
/// path with [`AlreadyExists`](io::ErrorKind::AlreadyExists).
///
/// # Cancellation safety
///
/// As for [`RingReader`]: a read either hands bytes out and releases them, or leaves the
/// stream untouched.
pub struct Incoming {
    call: Arc<Call>,
    side: Side,
    dir: Dir,
    path: Path,
    /// Bytes handed over by reference before the ring: the callee's `params`.
    head: Bytes,
    io: In,
}

enum In {
    /// Not read past `head` yet: no ring leased.
    Unbound,
    Ring(RingReader),
    /// The writer closed without writing.
    Eof,
    Failed(Failure),
}

impl Incoming {
    pub(crate) fn root(call: Arc<Call>, side: Side, head: Bytes) -> Self {
        let dir = match side {
            Side::Client => Dir::Results,
            Side::Server => Dir::Params,
        };
        Self {
            call,
            side,
            dir,
            path: super::path::Path::ROOT,
            head,
            io: In::Unbound,
        }
    }

    /// The async-value path of this stream (empty for the root stream).
    pub fn path(&self) -> &[usize] {
        self.path.as_slice()
    }

    fn bind(&mut self) {
        if let In::Unbound = self.io {
            self.io = match self.call.bind_reader(self.dir, &self.path) {
                ReaderBinding::Ring(reader) => In::Ring(reader),
                ReaderBinding::Eof => In::Eof,
                ReaderBinding::Failed(failure) => In::Failed(failure),
            };
        }
    }
}

impl AsyncRead for Incoming {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if !this.head.is_empty() {
            let n = this.head.len().min(buf.remaining());
            buf.put_slice(&this.head[..n]);
            this.head.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.bind();
        match &mut this.io {
            In::Ring(reader) => Pin::new(reader).poll_read(cx, buf),
            In::Failed(failure) => Poll::Ready(Err(failure.to_error())),
            In::Eof | In::Unbound => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncBufRead for Incoming {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if !this.head.is_empty() {
            return Poll::Ready(Ok(&this.head));
        }
        this.bind();
        match &mut this.io {
            In::Ring(reader) => Pin::new(reader).poll_fill_buf(cx),
            In::Failed(failure) => Poll::Ready(Err(failure.to_error())),
            In::Eof | In::Unbound => Poll::Ready(Ok(&[])),
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        if !this.head.is_empty() {
            this.head.advance(amt.min(this.head.len()));
        } else if let In::Ring(reader) = &mut this.io {
            Pin::new(reader).consume(amt);
        }
    }
}

impl wrpc_transport::Index<Self> for Incoming {
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
            head: Bytes::new(),
            io: In::Unbound,
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let unbound = match self.io {
            In::Unbound => Unbound::Reader(self.dir, &self.path),
            _ => Unbound::Nothing,
        };
        self.call.release(self.side, unbound);
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let io = match &self.io {
            In::Unbound => "unbound",
            In::Ring(_) => "ring",
            In::Eof => "eof",
            In::Failed(_) => "failed",
        };
        f.debug_struct("Incoming")
            .field("side", &self.side)
            .field("dir", &self.dir)
            .field("path", &self.path)
            .field("head", &self.head.len())
            .field("io", &io)
            .finish_non_exhaustive()
    }
}
