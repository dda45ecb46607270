//! Honest baselines for the [`Ring`](crate::Ring) transport, behind the same addressing.
//!
//! So that a host (`transport = "duplex" | "mpsc" | "nats"`) and the benchmarks can
//! compare like with like, the two approaches of the earlier wasmCloud fork are provided
//! here, with their bugs fixed:
//!
//! - [`Duplex`]: wRPC's own framing (`frame::invoke` on the client,
//!   `frame::Server::accept` on the server) over `tokio::io::duplex` — the callee accepts
//!   on its own task, so it runs concurrently with the caller, and each direction's
//!   buffer is sized like a ring;
//! - [`Mpsc`]: the same framing over byte streams made of `tokio::sync::mpsc<Bytes>`
//!   ([`mpsc_pipe`]) with real backpressure (`Pending` when the channel is full, never
//!   `WouldBlock`) and a real end of stream on shutdown.
//!
//! Both address a target as `prefix` + instance + function, like [`Ring`](crate::Ring)
//! and wrpc-transport-nats, and take the same [`Headers`](crate::Headers) context. The
//! third baseline, NATS, is `wrpc_transport_nats::Client` itself (feature `nats`).
//!
//! Being baselines, they keep wRPC's per-call costs on purpose: a task spawned per
//! invocation for the server side of the framing, and `frame`'s demultiplexing task per
//! connection.

mod framed;
mod mpsc;

pub use self::framed::{Duplex, DuplexPipe, Framed, Mpsc, MpscPipe, PipeKind};
pub use self::mpsc::{MAX_CHUNK, MpscReader, MpscWriter, mpsc_pipe};
