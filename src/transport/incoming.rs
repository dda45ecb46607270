//! The reading handle of an invocation's stream.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use crate::ring::RingReader;
use crate::sync::Arc;

use super::call::{Call, Dir, Ending, Failure, Half, ReaderBinding, Side};
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
/// writing any, the writer's first write was refused by a per-call bound, or the peer
/// dropped the whole invocation before writing this stream.
/// Dropping the reader makes the writer's later writes fail with
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe).
///
/// # Errors
///
/// Besides the above, reading a path that is only a prefix of declared async values
/// fails with [`NotFound`](io::ErrorKind::NotFound), and a second reader for the same
/// path, while the first one's stream is still held, with
/// [`AlreadyExists`](io::ErrorKind::AlreadyExists) (a path read to its end and settled is
/// forgotten, so that a call's memory follows the streams it holds). `index` of a new
/// sub-stream fails with [`TransportError::TooManyStreams`](crate::TransportError) when
/// the call already holds as many as
/// [`Ring::with_max_call_streams`](crate::Ring::with_max_call_streams) allows.
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
    io: In,
}

enum In {
    /// Bytes handed over by reference, read before the ring: the callee's `params`.
    /// Never empty: once read, the handle is `Unbound`. (Kept in the state rather than
    /// beside it, so that the handle, which wRPC's futures hold and move on every
    /// call, is 32 bytes smaller.)
    Head(Bytes),
    /// Nothing read from a ring yet: no ring leased.
    Unbound,
    /// Read before anything was written: the waker waits in the call's table.
    Parked,
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
            io: if head.is_empty() {
                In::Unbound
            } else {
                In::Head(head)
            },
        }
    }

    /// The async-value path of this stream (empty for the root stream).
    pub fn path(&self) -> &[usize] {
        self.path.as_slice()
    }

    /// Binds the handle to its ring if it has none; `Pending` while the writer has not
    /// written yet (the waker then waits in the call's table).
    fn poll_bind(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let parked = match self.io {
            In::Unbound => false,
            In::Parked => true,
            _ => return Poll::Ready(()),
        };
        self.io = match self.call.bind_reader(self.dir, &self.path, cx.waker(), parked) {
            ReaderBinding::Ring(reader) => In::Ring(reader),
            ReaderBinding::Parked => {
                self.io = In::Parked;
                return Poll::Pending;
            }
            ReaderBinding::Eof => In::Eof,
            ReaderBinding::Failed(failure) => In::Failed(failure),
        };
        Poll::Ready(())
    }

    /// At the clean end of the current ring: moves on to the stream's next ring if the
    /// writer grew the stream; `false` at the real end.
    fn next_ring(&mut self) -> bool {
        match self.call.next_ring(self.dir, &self.path) {
            Some(next) => {
                self.io = In::Ring(next);
                true
            }
            None => false,
        }
    }
}

impl AsyncRead for Incoming {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let In::Head(head) = &mut this.io {
            let n = head.len().min(buf.remaining());
            buf.put_slice(&head[..n]);
            head.advance(n);
            if head.is_empty() {
                this.io = In::Unbound;
            }
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.poll_bind(cx));
        loop {
            let filled = buf.filled().len();
            let poll = match &mut this.io {
                In::Ring(reader) => Pin::new(reader).poll_read(cx, buf),
                In::Failed(failure) => return Poll::Ready(Err(failure.to_error())),
                In::Eof | In::Unbound | In::Parked | In::Head(_) => return Poll::Ready(Ok(())),
            };
            if !matches!(poll, Poll::Ready(Ok(()))) || buf.filled().len() > filled || !this.next_ring() {
                return poll;
            }
        }
    }
}

impl AsyncBufRead for Incoming {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        // The head is returned by the last `match`: a borrow returned here could not be
        // followed by the binding below (the borrow checker's conditional-return limit).
        if !matches!(this.io, In::Head(_)) {
            std::task::ready!(this.fill_ring(cx))?;
        }
        match &mut this.io {
            In::Head(head) => Poll::Ready(Ok(head)),
            In::Ring(reader) => Pin::new(reader).poll_fill_buf(cx),
            _ => Poll::Ready(Ok(&[])),
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        match &mut this.io {
            In::Head(head) => {
                head.advance(amt.min(head.len()));
                if head.is_empty() {
                    this.io = In::Unbound;
                }
            }
            In::Ring(reader) => Pin::new(reader).consume(amt),
            _ => {}
        }
    }
}

impl Incoming {
    /// For `poll_fill_buf` past the head: binds, and moves on to the stream's next ring
    /// while the current one is at its clean end. `Ready(Ok)` leaves the data (or the
    /// end) to be fetched from `io`.
    fn fill_ring(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_bind(cx));
        loop {
            match &mut self.io {
                In::Ring(reader) => {
                    // Probe first: a borrow returned from one arm cannot be followed by
                    // the switch to the next ring in another (the borrow checker's
                    // conditional-return limit), so data is fetched by a second call.
                    let at_end = match Pin::new(&mut *reader).poll_fill_buf(cx) {
                        Poll::Ready(Ok(data)) => data.is_empty(),
                        _ => false,
                    };
                    if !at_end || !self.next_ring() {
                        return Poll::Ready(Ok(()));
                    }
                }
                In::Failed(failure) => return Poll::Ready(Err(failure.to_error())),
                In::Eof | In::Unbound | In::Parked | In::Head(_) => return Poll::Ready(Ok(())),
            }
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
            io: In::Unbound,
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let ending = match self.io {
            In::Head(_) | In::Unbound => Ending::UnboundReader(self.dir, &self.path, false),
            In::Parked => Ending::UnboundReader(self.dir, &self.path, true),
            In::Ring(_) => Ending::Bound(self.dir, &self.path, Half::Reader),
            In::Eof | In::Failed(_) => Ending::Nothing,
        };
        self.call.release(self.side, ending);
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let io = match &self.io {
            In::Head(_) => "head",
            In::Unbound => "unbound",
            In::Parked => "parked",
            In::Ring(_) => "ring",
            In::Eof => "eof",
            In::Failed(_) => "failed",
        };
        f.debug_struct("Incoming")
            .field("side", &self.side)
            .field("dir", &self.dir)
            .field("path", &self.path)
            .field(
                "head",
                &match &self.io {
                    In::Head(head) => head.len(),
                    _ => 0,
                },
            )
            .field("io", &io)
            .finish_non_exhaustive()
    }
}
