//! The native wRPC transport: [`Ring`] implements wrpc-transport 0.29's `Invoke` and
//! `Serve` directly on pooled rings.
//!
//! - `ring`: the [`Ring`] handle and the trait implementations;
//! - `registry`: `serve` registrations by prefix/instance/function (a snapshot table),
//!   round-robin, and the hand-over of new invocations to serve streams;
//! - `inbox`: a registration's bounded queue of invocations not yet taken;
//! - `call`: one invocation's shared state, the sub-stream table where both sides meet,
//!   and the ring size classes;
//! - `outgoing`, `incoming`: the byte-stream handles ([`Outgoing`], [`Incoming`]);
//! - `path`: async-value paths and declared path sets with wildcards;
//! - `headers`: the invocation context ([`Headers`]);
//! - `error`: [`TransportError`].

mod call;
mod error;
pub(crate) mod hash;
mod headers;
mod inbox;
mod incoming;
mod outgoing;
mod path;
mod registry;
mod ring;

pub use self::call::{DEFAULT_MAX_CALL_BYTES, DEFAULT_MAX_CALL_STREAMS};
pub use self::error::TransportError;
pub use self::headers::Headers;
#[cfg(feature = "host")]
pub(crate) use self::inbox::{Handoff, Invocation};
pub use self::incoming::Incoming;
pub use self::outgoing::Outgoing;
pub use self::registry::DEFAULT_MAX_QUEUED;
pub use self::ring::Ring;

#[cfg(test)]
mod tests {
    /// The stream handles stay small: wRPC's invocation futures hold them and are moved
    /// several times per call, and a served call's job (both root handles) is moved into
    /// its worker; at these sizes each move costs in proportion to its length
    /// (docs/benchmarks.md, "Session 16": the handles were 160 and 128 bytes).
    #[test]
    fn stream_handles_stay_small() {
        assert!(std::mem::size_of::<super::Incoming>() <= 104);
        assert!(std::mem::size_of::<super::Outgoing>() <= 104);
    }
}
