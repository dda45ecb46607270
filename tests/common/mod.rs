//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod alloc;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "wasmtime")]
pub mod host;
pub mod nats;
#[cfg(feature = "host")]
pub mod tls;
