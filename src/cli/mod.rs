//! The `wrpc-ring` commands: `run` (call an export, report latency and throughput)
//! and `serve` (serve until stopped: metrics endpoint, relinking, graceful shutdown).

mod http;
pub(crate) mod run;
pub(crate) mod serve;
mod values;

use std::path::Path;

use wrpc_ring::host::{HostConfig, TransportKind};

/// The config at `path` (with its `WRPC_RING_*` overrides), with `transport` in place
/// of its own when given.
fn load_config(path: &Path, transport: Option<TransportKind>) -> anyhow::Result<HostConfig> {
    let mut config = HostConfig::load(path)?;
    if let Some(transport) = transport {
        config.transport = transport;
        config.validate()?;
    }
    for warning in config.warnings() {
        tracing::warn!("{}: {warning}", path.display());
    }
    Ok(config)
}
