//! The writing half of a ring.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use sync_wrapper::SyncWrapper;
use tokio::io::AsyncWrite;

use super::buffer::Producer;
use super::coop;
use super::recycle::{self, Half};
use super::shared::Shared;
use super::wait::Announcements;
use super::write_buf::WriteBuf;
use crate::sync::Arc;

/// The writing half of a ring, created by [`pipe`](crate::pipe),
/// [`RingPool::acquire`](crate::RingPool::acquire) or
/// [`RingStream::into_split`](crate::RingStream::into_split).
///
/// Implements [`AsyncWrite`]; [`poll_write_with`](Self::poll_write_with) lets an encoder
/// write straight into ring memory instead.
///
/// # Closing
///
/// | event | the reader sees | this writer sees |
/// |---|---|---|
/// | [`poll_shutdown`](AsyncWrite::poll_shutdown) | every byte written before it, then `Ok(0)` forever | later writes fail with [`BrokenPipe`](io::ErrorKind::BrokenPipe) |
/// | dropped without shutdown | the same as a shutdown; if dropped while the thread panics, an abort | — |
/// | [`abort(reason)`](Self::abort) | every byte written before it, then an error of kind [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) carrying the reason ([`Aborted`](crate::Aborted)) | later writes fail with `BrokenPipe` |
/// | the reader is dropped | — | a pending write is woken and fails with `BrokenPipe`, and so do later writes |
/// | zero-length write | — | completes at once with `Ok(0)` (`BrokenPipe` once closed), as in `tokio::io::duplex` |
///
/// A close is never seen by the reader before the bytes written ahead of it, and is
/// never lost. [`poll_flush`](AsyncWrite::poll_flush) does nothing and completes at once:
/// bytes are visible to the reader as soon as a write returns.
///
/// # Backpressure
///
/// A write copies as many bytes as fit and returns that count; when the ring is full it
/// returns `Pending` until the reader frees space. Payloads far larger than the ring
/// stream through it. The reader is woken only when it may be waiting, so steady
/// streaming pays no wake-up per write.
///
/// # Cancellation safety
///
/// Every poll either commits bytes and returns their count, or commits nothing: dropping
/// a write future (for example in `tokio::select!`) never loses or duplicates data.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut writer, mut reader) = wrpc_ring::pipe(16);
/// let send = tokio::spawn(async move {
///     writer.write_all(&[7; 1000]).await?; // 1000 bytes through a 16-byte ring
///     writer.shutdown().await
/// });
/// let mut got = Vec::new();
/// reader.read_to_end(&mut got).await?;
/// assert_eq!(got, [7; 1000]);
/// send.await.unwrap()?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct RingWriter {
    shared: Arc<Shared>,
    /// `None` only while dropping. `SyncWrapper` makes the `!Sync` producer `Sync` by
    /// allowing access through `&mut` only, which is all this type needs.
    producer: SyncWrapper<Option<Producer>>,
    /// This writer shut down or aborted.
    closed: bool,
    /// This half's side of the wait protocol (see `wait`).
    waits: Announcements,
    capacity: usize,
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "ring stream closed")
}

impl RingWriter {
    pub(crate) fn new(shared: Arc<Shared>, producer: Producer) -> Self {
        let capacity = producer.capacity();
        Self {
            shared,
            producer: SyncWrapper::new(Some(producer)),
            closed: false,
            waits: Announcements::default(),
            capacity,
        }
    }

    /// The ring's capacity in bytes: the most a single write can hand over.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the stream is closed: this writer shut down or aborted, or the reader is
    /// gone. Writes then fail with `BrokenPipe`.
    pub fn is_closed(&self) -> bool {
        self.closed || self.shared.reader_closed()
    }

    /// Whether the reader half is gone (as opposed to this writer having closed).
    #[cfg(feature = "wrpc")]
    pub(crate) fn reader_gone(&self) -> bool {
        self.shared.reader_closed()
    }

    /// Ends the stream with an error: the reader receives every byte written before,
    /// then an error of kind [`ConnectionAborted`](io::ErrorKind::ConnectionAborted)
    /// whose message carries `reason` (see [`Aborted`](crate::Aborted)).
    ///
    /// Later writes fail with `BrokenPipe`. Has no effect if the stream was already shut
    /// down or aborted.
    pub fn abort(&mut self, reason: impl Into<Cow<'static, str>>) {
        if !self.closed {
            self.closed = true;
            self.shared.abort_writer(reason.into(), &mut self.waits);
        }
    }

    /// Waits for free space, then lets `fill` write straight into ring memory.
    ///
    /// `fill` receives a [`WriteBuf`] over the largest contiguous free region (at least
    /// one byte) and writes into it from its start; when `fill` returns, the bytes it
    /// wrote are published to the reader at once and their count is returned. This lets
    /// an encoder skip its own buffer and the copy out of it: `WriteBuf` implements
    /// [`bytes::BufMut`] and [`std::io::Write`].
    ///
    /// Only bytes written through the `WriteBuf` (or zeroed by it) can be published, so
    /// whatever the ring memory held before (an earlier write, or a previous user of a
    /// pooled ring) never reaches the reader.
    ///
    /// # Errors
    ///
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) once the stream is closed (see
    /// [`is_closed`](Self::is_closed)); `fill` is not called then.
    ///
    /// # Cancellation safety
    ///
    /// `fill` runs only when there is space, and whatever it wrote is published before
    /// this returns `Ready`: nothing is lost or half-written.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use tokio::io::AsyncReadExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (mut writer, mut reader) = wrpc_ring::pipe(64);
    /// let n = poll_fn(|cx| writer.poll_write_with(cx, |buf| buf.put_slice(b"hello"))).await?;
    /// assert_eq!(n, 5);
    /// drop(writer);
    /// let mut got = String::new();
    /// reader.read_to_string(&mut got).await?;
    /// assert_eq!(got, "hello");
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn poll_write_with<F>(&mut self, cx: &mut Context<'_>, fill: F) -> Poll<io::Result<usize>>
    where
        F: FnOnce(&mut WriteBuf<'_>),
    {
        let budget = ready!(coop::poll_proceed(cx));
        ready!(self.poll_space(cx))?;
        let Some(producer) = self.producer.get_mut() else {
            return Poll::Ready(Err(broken_pipe()));
        };
        let mut buf = WriteBuf::new(producer.write_buf());
        fill(&mut buf);
        let n = buf.written();
        producer.commit(n);
        if n > 0 {
            self.shared.wake_reader();
            budget.made_progress();
        }
        Poll::Ready(Ok(n))
    }

    /// Resolves once at least one byte can be written, or with `BrokenPipe`.
    fn poll_space(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed || self.shared.reader_closed() {
            return Poll::Ready(Err(broken_pipe()));
        }
        match self.producer.get_mut() {
            Some(producer) if !producer.is_full() => Poll::Ready(Ok(())),
            Some(_) => self.poll_wait_space(cx),
            None => Poll::Ready(Err(broken_pipe())),
        }
    }

    /// The ring was seen full while the stream was open: announces, then re-checks the
    /// ring once (the lost-wake-up guard). The close bits of the re-check come from the
    /// announcement's read-modify-write.
    fn poll_wait_space(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.writer_wait(cx.waker(), &mut self.waits) {
            return Poll::Ready(Err(broken_pipe()));
        }
        match self.producer.get_mut() {
            Some(producer) if !producer.is_full() => Poll::Ready(Ok(())),
            Some(_) => Poll::Pending,
            None => Poll::Ready(Err(broken_pipe())),
        }
    }

    /// One write: the close word once, then the bytes straight into the ring, with no
    /// separate check for space. Only a full ring goes on to
    /// [`poll_wait_space`](Self::poll_wait_space).
    fn poll_write_bufs(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|buf| buf.is_empty()) {
            // As in `tokio::io::duplex`: `BrokenPipe` once closed, else done at once.
            return Poll::Ready(if self.is_closed() {
                Err(broken_pipe())
            } else {
                Ok(0)
            });
        }
        let budget = ready!(coop::poll_proceed(cx));
        if self.closed || self.shared.reader_closed() {
            return Poll::Ready(Err(broken_pipe()));
        }
        let Some(producer) = self.producer.get_mut() else {
            return Poll::Ready(Err(broken_pipe()));
        };
        let mut written = push_bufs(producer, bufs);
        if written == 0 {
            // The ring is full (some buffer is not empty).
            ready!(self.poll_wait_space(cx))?;
            let Some(producer) = self.producer.get_mut() else {
                return Poll::Ready(Err(broken_pipe()));
            };
            written = push_bufs(producer, bufs);
        }
        self.shared.wake_reader();
        budget.made_progress();
        Poll::Ready(Ok(written))
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.shared.close_writer(&mut self.waits);
        }
    }
}

/// Copies as much of `bufs` as fits, in order, stopping at the first that does not fit
/// whole. Returns the count, 0 only when the ring is full (or every buffer is empty).
#[inline(always)]
fn push_bufs(producer: &mut Producer, bufs: &[io::IoSlice<'_>]) -> usize {
    let mut written = 0;
    for buf in bufs {
        let n = producer.push(buf);
        written += n;
        if n < buf.len() {
            break;
        }
    }
    written
}

impl AsyncWrite for RingWriter {
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

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        if !self.closed {
            if std::thread::panicking() {
                self.abort("ring writer dropped while its thread was panicking");
            } else {
                self.close();
            }
        }
        if let Some(producer) = self.producer.get_mut().take() {
            recycle::release(&self.shared, Half::Producer(producer));
        }
    }
}

impl fmt::Debug for RingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingWriter")
            .field("closed", &self.closed)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}
