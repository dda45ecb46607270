//! The host: configuration and the [`Dispatcher`] that sends each call between
//! components over the local transport or NATS.
//!
//! - `config`: [`HostConfig`], read from TOML with `WRPC_RING_*` overrides
//!   (`docs/config.md` lists every key);
//! - `dispatch`: [`Dispatcher`] (an `Invoke`) and [`ComponentServer`] (a `Serve`);
//! - `local`, `nats`: the two paths; `streams`: their streams behind one type;
//! - `metrics`: calls, errors and latency per transport.

mod config;
mod dispatch;
mod local;
mod metrics;
mod nats;
mod streams;

pub use self::config::{
    ByteSize, ComponentConfig, ConfigError, ENV_PREFIX, ENV_VARS, EntryConfig, HostConfig, LimitsConfig,
    LinkConfig, NatsConfig, RingConfig, TransportKind,
};
pub use self::dispatch::{
    CallContext, ComponentServer, DEFAULT_LINK_NAME, Dispatcher, LINK_NAME_HEADER, SOURCE_ID_HEADER,
};
pub use self::metrics::{MetricsSnapshot, TransportMetrics};
pub use self::streams::{AnyIncoming, AnyOutgoing, CallIncoming, CallOutgoing, ServeOutgoing};
