//! The host: configuration and the [`Dispatcher`] that sends each call between
//! components over the local transport or NATS.
//!
//! - `config`: [`HostConfig`], read from TOML with `WRPC_RING_*` overrides
//!   (`docs/config.md` lists every key);
//! - `routing`: [`CallContext`] and the routing table (links, local components);
//! - `dispatch`: [`Dispatcher`] (an `Invoke`): a call over the local transport or NATS;
//! - `server`: [`ComponentServer`] (a `Serve`): a component's calls under its limits;
//! - `local`, `nats`: the two paths; `streams`: their streams behind one type, and
//!   the caller's and the callee's tracked streams;
//! - `record`: one call's tracking (deadline, outcome), pooled;
//! - `metrics`: calls, errors, cancelled calls per transport and target, latency per
//!   transport, and gauges; `prometheus` (feature `prometheus`) exports them.

mod config;
mod dispatch;
mod local;
mod metrics;
mod nats;
#[cfg(feature = "prometheus")]
mod prometheus;
mod record;
mod routing;
mod server;
mod streams;

/// The real `nats-server` of the integration tests, for the unit tests.
#[cfg(test)]
#[path = "../../tests/common/nats.rs"]
pub(crate) mod test_nats;

pub use self::config::{
    ByteSize, ComponentConfig, ConfigError, DEFAULT_MAX_QUEUED, DEFAULT_MAX_USES, ENV_PREFIX, ENV_VARS,
    EntryConfig, HostConfig, InstanceMode, LimitsConfig, LinkConfig, MAX_INVOCATION_TIMEOUT, NatsConfig,
    NatsTlsConfig, PagemapScan, RingConfig, RuntimeConfig, ServeConfig, TransportKind,
};
pub use self::dispatch::Dispatcher;
pub use self::metrics::{ComponentGauges, HostGauges, MetricsSnapshot, TargetMetrics, TransportMetrics};
pub use self::routing::{CallContext, DEFAULT_LINK_NAME, LINK_NAME_HEADER, SOURCE_ID_HEADER};
pub use self::server::ComponentServer;
#[cfg(feature = "wasmtime")]
pub(crate) use self::server::Takes;
#[cfg(feature = "wasmtime")]
pub(crate) use self::streams::StreamTimer;
pub use self::streams::{AnyIncoming, AnyOutgoing, Buffered, CallIncoming, CallOutgoing, ServeOutgoing};
