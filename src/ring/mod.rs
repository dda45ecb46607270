//! The ring: a lock-free single-producer single-consumer byte pipe with async wake-ups
//! and explicit close frames.

mod buffer;
mod coop;
mod reader;
mod recycle;
mod shared;
mod stream;
mod wait;
mod write_buf;
mod writer;

pub use self::reader::RingReader;
pub use self::stream::{RingStream, duplex};
pub use self::write_buf::WriteBuf;
pub use self::writer::RingWriter;

pub(crate) use self::recycle::{Detached, Home, Recycle};

/// Switches for the loom models in `loom-tests/`; only under `--cfg loom`.
#[cfg(loom)]
pub mod loom {
    pub use super::buffer::{Positions, set_positions};
}

/// The smallest ring capacity: a ring must hold at least one byte.
pub const MIN_CAPACITY: usize = 1;

/// Creates one ring of `capacity` bytes and returns its two halves.
///
/// The writer implements [`AsyncWrite`](tokio::io::AsyncWrite), the reader
/// [`AsyncRead`](tokio::io::AsyncRead) and [`AsyncBufRead`](tokio::io::AsyncBufRead).
/// See [`RingWriter`] and [`RingReader`] for the closing, backpressure and cancellation
/// contracts. To reuse rings across many short streams, use a
/// [`RingPool`](crate::RingPool).
///
/// # Panics
///
/// If `capacity` is zero (a zero-capacity pipe could never transfer a byte).
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut writer, mut reader) = wrpc_ring::pipe(64 * 1024);
/// writer.write_all(b"ping").await?;
/// writer.shutdown().await?;
///
/// let mut got = Vec::new();
/// reader.read_to_end(&mut got).await?;
/// assert_eq!(got, b"ping");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub fn pipe(capacity: usize) -> (RingWriter, RingReader) {
    assert!(
        capacity >= MIN_CAPACITY,
        "ring capacity must be at least {MIN_CAPACITY} byte, got {capacity}"
    );
    Detached::new(capacity).lease(None)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod watchdog;
