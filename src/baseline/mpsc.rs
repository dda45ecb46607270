//! A byte stream over `tokio::sync::mpsc<Bytes>`, with real backpressure and EOF.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// The largest chunk one write sends as a single message.
///
/// Bounds the memory a full channel holds to `capacity × MAX_CHUNK`.
pub const MAX_CHUNK: usize = 16 * 1024;

/// Creates a byte stream over a `tokio::sync::mpsc<Bytes>` channel holding about
/// `buffer` bytes (`buffer / MAX_CHUNK` messages, at least one).
///
/// Each write copies its bytes (at most [`MAX_CHUNK`]) into a fresh `Bytes` message.
/// A full channel makes writes return `Pending` until the reader takes a message;
/// `poll_shutdown` (or dropping the writer) ends the stream, and the reader sees EOF
/// after every byte; writes after the reader is gone fail with `BrokenPipe`.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut tx, mut rx) = wrpc_ring::baseline::mpsc_pipe(64 * 1024);
/// tx.write_all(b"hello").await?;
/// tx.shutdown().await?;
/// let mut got = String::new();
/// rx.read_to_string(&mut got).await?;
/// assert_eq!(got, "hello");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub fn mpsc_pipe(buffer: usize) -> (MpscWriter, MpscReader) {
    let (tx, rx) = mpsc::channel((buffer / MAX_CHUNK).max(1));
    (
        MpscWriter {
            tx: PollSender::new(tx),
        },
        MpscReader {
            rx,
            chunk: Bytes::new(),
        },
    )
}

/// The writing end of [`mpsc_pipe`].
pub struct MpscWriter {
    tx: PollSender<Bytes>,
}

/// The reading end of [`mpsc_pipe`].
pub struct MpscReader {
    rx: mpsc::Receiver<Bytes>,
    /// The rest of the message being read.
    chunk: Bytes,
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "mpsc stream closed")
}

impl AsyncWrite for MpscWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.tx.is_closed() {
            return Poll::Ready(Err(broken_pipe()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.tx.poll_reserve(cx)).map_err(|_| broken_pipe())?;
        let n = buf.len().min(MAX_CHUNK);
        this.tx
            .send_item(Bytes::copy_from_slice(&buf[..n]))
            .map_err(|_| broken_pipe())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Drops the sender: the reader sees EOF once it has taken every message.
        self.get_mut().tx.close();
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for MpscReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.chunk.is_empty() {
            match ready!(this.rx.poll_recv(cx)) {
                Some(chunk) => this.chunk = chunk,
                None => return Poll::Ready(Ok(())), // EOF
            }
        }
        let n = this.chunk.len().min(buf.remaining());
        buf.put_slice(&this.chunk[..n]);
        this.chunk.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for MpscWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscWriter")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl fmt::Debug for MpscReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscReader")
            .field("buffered", &self.chunk.len())
            .finish()
    }
}
