//! The reading half of a ring.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use sync_wrapper::SyncWrapper;
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use super::buffer::Consumer;
use super::coop;
use super::recycle::{self, Half};
use super::shared::{Shared, WriterEnd};
use super::wait::Announcements;
use crate::sync::Arc;

/// The reading half of a ring, created by [`pipe`](crate::pipe),
/// [`RingPool::acquire`](crate::RingPool::acquire) or
/// [`RingStream::into_split`](crate::RingStream::into_split).
///
/// Implements [`AsyncRead`] and [`AsyncBufRead`]. [`poll_fill_buf`](AsyncBufRead::poll_fill_buf)
/// returns a slice of ring memory itself and [`consume`](AsyncBufRead::consume)
/// releases it to the writer: there is no intermediate buffer, so reading through
/// `AsyncBufRead` copies each byte once fewer than through `AsyncRead`.
///
/// # Closing
///
/// The reader receives every byte written before the writer's close, then:
/// - after a clean close (the writer shut down or was dropped): `Ok(0)` (an empty
///   `fill_buf`) on every later read;
/// - after an abort: an error of kind [`ConnectionAborted`](io::ErrorKind::ConnectionAborted)
///   carrying the writer's reason ([`Aborted`](crate::Aborted)), on every later read.
///
/// Dropping the reader closes the stream for the writer: a pending write is woken and
/// fails with [`BrokenPipe`](io::ErrorKind::BrokenPipe), as do later writes. A
/// zero-length read completes at once, as in `tokio::io::duplex`.
///
/// # Cancellation safety
///
/// A read either copies bytes out and releases them, or leaves the ring untouched:
/// dropping a read future never loses or duplicates data. Bytes returned by `fill_buf`
/// stay in the ring until `consume`d.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut writer, mut reader) = wrpc_ring::pipe(64);
/// writer.write_all(b"hello\nworld\n").await?;
/// drop(writer); // a clean close
///
/// let mut lines = reader.lines();
/// assert_eq!(lines.next_line().await?.as_deref(), Some("hello"));
/// assert_eq!(lines.next_line().await?.as_deref(), Some("world"));
/// assert_eq!(lines.next_line().await?, None);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct RingReader {
    shared: Arc<Shared>,
    /// `None` only while dropping; see `RingWriter::producer` for the `SyncWrapper`.
    consumer: SyncWrapper<Option<Consumer>>,
    /// This half's side of the wait protocol (see `wait`).
    waits: Announcements,
    capacity: usize,
}

impl RingReader {
    pub(crate) fn new(shared: Arc<Shared>, consumer: Consumer, capacity: usize) -> Self {
        Self {
            shared,
            consumer: SyncWrapper::new(Some(consumer)),
            waits: Announcements::default(),
            capacity,
        }
    }

    /// The ring's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn release(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(consumer) = self.consumer.get_mut() {
            consumer.consume(n);
            self.shared.wake_writer();
        }
    }
}

/// Resolves with `true` once a byte is readable, `false` at a clean end of stream.
///
/// Bytes already readable cost one look at the ring and no access to the close word:
/// bytes written before a close are delivered before it in any case. Only an empty ring
/// goes on to [`poll_wait`]. Every `Ready` spends one unit of the task's cooperative
/// budget; a `Pending` spends none.
#[inline(always)]
fn poll_data(
    shared: &Shared,
    consumer: &Consumer,
    waits: &mut Announcements,
    cx: &mut Context<'_>,
) -> Poll<io::Result<bool>> {
    if !consumer.has_readable() {
        match ready!(poll_wait(shared, consumer, waits, cx)) {
            WriterEnd::Open => {}
            end => return poll_end(shared, cx, end),
        }
    }
    ready!(coop::poll_proceed(cx)).made_progress();
    Poll::Ready(Ok(true))
}

/// The ring was seen empty: resolves with [`WriterEnd::Open`] once a byte is
/// readable, or with how the writer ended the stream once the ring is drained.
///
/// One pass: the close word, the announcement (whose read-modify-write also returns
/// the close bits), then one re-check of the ring. The ring is looked at *after* the
/// close word, so a close seen here was set after the writer's last bytes were
/// published, and the re-check sees them all.
#[inline(always)]
fn poll_wait(
    shared: &Shared,
    consumer: &Consumer,
    waits: &mut Announcements,
    cx: &mut Context<'_>,
) -> Poll<WriterEnd> {
    let mut close = shared.close_bits();
    if close.is_open() {
        // Announce only while the stream is open: an ended stream registers no waker.
        close = shared.reader_wait(cx.waker(), waits);
    }
    // The re-check after the announcement (the lost-wake-up guard): a fresh load of
    // the producer's position, since the cached one was just seen empty.
    if consumer.has_readable_fresh() {
        return Poll::Ready(WriterEnd::Open);
    }
    if close.is_open() {
        Poll::Pending
    } else {
        Poll::Ready(close.end())
    }
}

/// The end of the stream, seen by a read: `Ok(false)` or the abort error.
#[cold]
fn poll_end(shared: &Shared, cx: &mut Context<'_>, end: WriterEnd) -> Poll<io::Result<bool>> {
    ready!(coop::poll_proceed(cx)).made_progress();
    match end {
        WriterEnd::Aborted => Poll::Ready(Err(shared.abort_error())),
        _ => Poll::Ready(Ok(false)),
    }
}

impl AsyncRead for RingReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let Some(consumer) = this.consumer.get_mut() else {
            return Poll::Ready(Ok(()));
        };
        if !ready!(poll_data(&this.shared, consumer, &mut this.waits, cx))? {
            return Poll::Ready(Ok(()));
        }
        // One pass: both regions when the bytes wrap, one release of the head.
        let copied = consumer.read_into(buf);
        if copied > 0 {
            this.shared.wake_writer();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for RingReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let Some(consumer) = this.consumer.get_mut() else {
            return Poll::Ready(Ok(&[]));
        };
        if !ready!(poll_data(&this.shared, consumer, &mut this.waits, cx))? {
            return Poll::Ready(Ok(&[]));
        }
        Poll::Ready(Ok(consumer.read_buf()))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().release(amt);
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.shared.close_reader(&mut self.waits);
        if let Some(consumer) = self.consumer.get_mut().take() {
            recycle::release(&self.shared, Half::Consumer(consumer));
        }
    }
}

impl fmt::Debug for RingReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingReader")
            .field("capacity", &self.capacity)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}
