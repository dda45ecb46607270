//! A bidirectional stream over two rings, shaped like `tokio::io::DuplexStream`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::{RingReader, RingWriter, pipe};

/// Creates a connected pair of bidirectional streams, each direction a ring of
/// `capacity` bytes — the same shape as `tokio::io::duplex(max_buf_size)`.
///
/// What one stream writes, the other reads. Dropping a stream closes both of its
/// directions: the peer reads EOF after the bytes already written, and the peer's writes
/// fail with `BrokenPipe`.
///
/// # Panics
///
/// If `capacity` is zero.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut client, mut server) = wrpc_ring::duplex(1024);
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// server.write_all(b"pong").await?;
/// client.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"pong");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub fn duplex(capacity: usize) -> (RingStream, RingStream) {
    let (a_writer, b_reader) = pipe(capacity);
    let (b_writer, a_reader) = pipe(capacity);
    (
        RingStream::new(a_reader, a_writer),
        RingStream::new(b_reader, b_writer),
    )
}

/// One end of a bidirectional ring stream, created by [`duplex`] or
/// [`RingPool::acquire_duplex`](crate::RingPool::acquire_duplex).
///
/// Reads come from one ring and writes go to another; see [`RingReader`] and
/// [`RingWriter`] for the contracts of each direction. [`into_split`](Self::into_split)
/// gives the two directions as owned halves, each of which closes its own direction
/// when dropped.
#[derive(Debug)]
pub struct RingStream {
    reader: RingReader,
    writer: RingWriter,
}

impl RingStream {
    pub(crate) fn new(reader: RingReader, writer: RingWriter) -> Self {
        Self { reader, writer }
    }

    /// Splits the stream into its reading and writing halves.
    ///
    /// Each half closes its direction when dropped: dropping the writer ends the peer's
    /// reads cleanly, dropping the reader fails the peer's writes with `BrokenPipe`.
    pub fn into_split(self) -> (RingReader, RingWriter) {
        (self.reader, self.writer)
    }

    /// Aborts this stream's writing direction; see [`RingWriter::abort`].
    pub fn abort(&mut self, reason: impl Into<std::borrow::Cow<'static, str>>) {
        self.writer.abort(reason);
    }
}

impl AsyncRead for RingStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncBufRead for RingStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().reader).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().reader).consume(amt);
    }
}

impl AsyncWrite for RingStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}
