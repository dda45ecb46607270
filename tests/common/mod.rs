//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod alloc;
#[cfg(feature = "wasmtime")]
pub mod host;
pub mod nats;
