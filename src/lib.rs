//! Fast, safe calls between WebAssembly components in one host process.
//!
//! `wrpc-ring` replaces the NATS round trip that a wasmCloud-style host makes even for
//! components living in the same process with a lock-free in-process transport:
//!
//! - [`pipe`]: a lock-free single-producer single-consumer byte ring (on [`rtrb`]) with
//!   async wake-ups: [`RingWriter`] implements [`AsyncWrite`](tokio::io::AsyncWrite),
//!   [`RingReader`] implements [`AsyncRead`](tokio::io::AsyncRead) and — reading ring
//!   memory in place — [`AsyncBufRead`](tokio::io::AsyncBufRead).
//! - Explicit close frames: a stream ends cleanly (shutdown or drop) or with an
//!   [abort](RingWriter::abort) carrying a reason, and the reader always learns which,
//!   after every byte written before it.
//! - [`duplex`]: two rings shaped like `tokio::io::duplex`.
//! - [`RingPool`]: rings recycled per use, so the hot path allocates nothing.
//! - `Ring` (feature `wrpc`; no feature is on by default): a wRPC transport (`Invoke` + `Serve`,
//!   wrpc-transport 0.29) on pooled rings, for calls between components in one process;
//!   see its docs for a runnable example.
//!
//! # Example
//!
//! ```
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let pool = wrpc_ring::RingPool::new(64 * 1024, 256);
//! let (mut writer, mut reader) = pool.acquire();
//!
//! let producer = tokio::spawn(async move {
//!     writer.write_all(b"params").await?;
//!     writer.shutdown().await // a clean close frame
//! });
//! // Read in place: `fill_buf` returns ring memory, `consume` hands it back.
//! let mut got = Vec::new();
//! loop {
//!     let chunk = reader.fill_buf().await?;
//!     if chunk.is_empty() {
//!         break; // clean close, after every byte
//!     }
//!     got.extend_from_slice(chunk);
//!     let n = chunk.len();
//!     reader.consume(n);
//! }
//! assert_eq!(got, b"params");
//! producer.await.unwrap()?;
//! # Ok::<_, std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Loom
//!
//! Built with `RUSTFLAGS="--cfg loom"`, every synchronization primitive and the ring
//! storage itself switch to [loom](https://docs.rs/loom)'s models; `loom-tests/` holds
//! the model checks.

#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "wrpc")]
pub mod baseline;
mod error;
#[cfg(feature = "host")]
pub mod host;
mod pool;
mod ring;
#[cfg(feature = "wasmtime")]
pub mod runtime;
mod sync;
#[cfg(feature = "wrpc")]
pub mod transport;

pub use crate::error::Aborted;
pub use crate::pool::{PoolStats, RingPool};
/// Switches for the loom models in `loom-tests/` (not part of the API).
#[cfg(loom)]
#[doc(hidden)]
pub use crate::ring::loom;
pub use crate::ring::{MIN_CAPACITY, RingReader, RingStream, RingWriter, WriteBuf, duplex, pipe};
#[cfg(feature = "wrpc")]
pub use crate::transport::{Headers, Ring, TransportError};

// Every public type is `Send + Sync + Unpin + 'static`, checked at compile time: wRPC
// requires `Send + Sync` streams, and these halves are moved between tasks freely.
const _: () = {
    const fn assert_traits<T: Send + Sync + Unpin + 'static>() {}
    assert_traits::<RingWriter>();
    assert_traits::<RingReader>();
    assert_traits::<RingStream>();
    assert_traits::<RingPool>();
    assert_traits::<PoolStats>();
    assert_traits::<Aborted>();
};
