//! The cursor that [`RingWriter::poll_write_with`](crate::RingWriter::poll_write_with)
//! hands to its `fill` closure.

use std::fmt;
use std::io;

use bytes::BufMut;
use bytes::buf::UninitSlice;

/// A free region of ring memory, to be written from its start; what was written is
/// published when the `fill` closure of
/// [`poll_write_with`](crate::RingWriter::poll_write_with) returns.
///
/// The region may still hold bytes of an earlier write, or of a ring's previous user
/// when it came from a [`RingPool`](crate::RingPool). The cursor never lets safe code
/// read them or publish them: only bytes written through it, or zeroed by
/// [`unfilled_mut`](Self::unfilled_mut), can be counted as written.
///
/// Ways to write, from the simplest:
/// - [`put_slice`](Self::put_slice), or any [`BufMut`] method (`put_u8`, `put_u32_le`, …),
///   so that an encoder generic over `BufMut` writes straight into the ring;
/// - [`io::Write`], whose `write` takes as much as fits;
/// - [`unfilled_mut`](Self::unfilled_mut) for a `&mut [u8]` to encode into, then
///   [`advance`](Self::advance) by the count written;
/// - [`filled_mut`](Self::filled_mut) to patch bytes already written (a length prefix
///   reserved before the body, say).
///
/// # Examples
///
/// ```
/// use std::future::poll_fn;
/// use bytes::BufMut;
/// use tokio::io::AsyncReadExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut writer, mut reader) = wrpc_ring::pipe(64);
/// let n = poll_fn(|cx| {
///     writer.poll_write_with(cx, |buf| {
///         buf.put_u8(0); // a length prefix, patched below
///         buf.put_slice(b"hello");
///         let len = buf.filled().len() - 1;
///         buf.filled_mut()[0] = len as u8;
///     })
/// })
/// .await?;
/// assert_eq!(n, 6);
/// drop(writer);
/// let mut got = Vec::new();
/// reader.read_to_end(&mut got).await?;
/// assert_eq!(got, b"\x05hello");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct WriteBuf<'a> {
    /// Ring memory owned by the writer until it is published.
    region: &'a mut [u8],
    /// `region[..filled]` has been written and will be published.
    filled: usize,
    /// `region[..cleared]` has been written or zeroed through this cursor, so handing it
    /// out shows no earlier byte. Always `filled <= cleared <= region.len()`.
    cleared: usize,
}

impl<'a> WriteBuf<'a> {
    pub(crate) fn new(region: &'a mut [u8]) -> Self {
        Self {
            region,
            filled: 0,
            cleared: 0,
        }
    }

    /// The size of the region: the most this `fill` can write.
    pub fn capacity(&self) -> usize {
        self.region.len()
    }

    /// How many more bytes fit.
    pub fn remaining(&self) -> usize {
        self.region.len() - self.filled
    }

    /// The bytes written so far.
    pub fn filled(&self) -> &[u8] {
        &self.region[..self.filled]
    }

    /// The bytes written so far, to patch in place.
    pub fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.region[..self.filled]
    }

    /// Appends `src`.
    ///
    /// # Panics
    ///
    /// If `src` is longer than [`remaining`](Self::remaining), as [`BufMut::put_slice`]
    /// does. Use [`io::Write::write`] to take only what fits.
    pub fn put_slice(&mut self, src: &[u8]) {
        assert!(
            src.len() <= self.remaining(),
            "WriteBuf::put_slice: {} bytes do not fit in the {} left",
            src.len(),
            self.remaining()
        );
        let end = self.filled + src.len();
        self.region[self.filled..end].copy_from_slice(src);
        self.filled = end;
        self.cleared = self.cleared.max(end);
    }

    /// The next `len` bytes after the filled ones, to write into directly; then call
    /// [`advance`](Self::advance) with the count written.
    ///
    /// Those of them not yet written or zeroed through this cursor are zeroed first, so
    /// the slice shows no earlier byte; asking for about what will be written keeps that
    /// cost to a few bytes.
    ///
    /// # Panics
    ///
    /// If `len` is larger than [`remaining`](Self::remaining).
    pub fn unfilled_mut(&mut self, len: usize) -> &mut [u8] {
        assert!(
            len <= self.remaining(),
            "WriteBuf::unfilled_mut: {len} bytes asked for, {} left",
            self.remaining()
        );
        let end = self.filled + len;
        if end > self.cleared {
            self.region[self.cleared..end].fill(0);
            self.cleared = end;
        }
        &mut self.region[self.filled..end]
    }

    /// Counts the next `n` bytes as written, after writing them through
    /// [`unfilled_mut`](Self::unfilled_mut).
    ///
    /// # Panics
    ///
    /// If fewer than `n` bytes past the filled ones were handed out by `unfilled_mut` (or
    /// written and then left behind): the cursor never counts a byte it has not shown.
    pub fn advance(&mut self, n: usize) {
        assert!(
            n <= self.cleared - self.filled,
            "WriteBuf::advance: {n} bytes past the {} filled, but only {} were handed out",
            self.filled,
            self.cleared - self.filled
        );
        self.filled += n;
    }

    /// How many bytes to publish.
    pub(crate) fn written(&self) -> usize {
        self.filled
    }
}

// SAFETY: `chunk_mut` is exactly the unfilled part of the region, so it is never empty
// while `remaining_mut` is not zero; `advance_mut` counts only bytes of it that the
// caller promises to have written (and asserts that they fit).
unsafe impl BufMut for WriteBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.remaining()
    }

    /// # Safety
    ///
    /// `BufMut`'s contract: the caller has initialized the first `cnt` bytes of
    /// `chunk_mut`. Counting more than the region holds panics instead of publishing
    /// bytes nobody wrote.
    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(
            cnt <= self.remaining(),
            "WriteBuf::advance_mut: {cnt} bytes past the end ({} left)",
            self.remaining()
        );
        // The caller has written `cnt` bytes of `chunk_mut` (`BufMut`'s contract).
        self.filled += cnt;
        self.cleared = self.cleared.max(self.filled);
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        // A write-only view: safe code can write the bytes but not read them.
        UninitSlice::new(&mut self.region[self.filled..])
    }

    fn put_slice(&mut self, src: &[u8]) {
        WriteBuf::put_slice(self, src);
    }
}

impl io::Write for WriteBuf<'_> {
    /// Appends as much of `buf` as fits; `Ok(0)` once the region is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.remaining());
        self.put_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for WriteBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBuf")
            .field("capacity", &self.capacity())
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}
