//! The wasmtime engine: pooling allocator, epoch interruption, and the epoch ticker.

use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::host::{PagemapScan, RuntimeConfig};

/// How often the engine's epoch advances; a guest's time limit is counted in these.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The [`Config`] the runtime's engine is built from: the component model, epoch
/// interruption (a guest's time limit), and the pooling instance allocator with the
/// levers of `runtime` (see `docs/config.md`), each linear memory limited to
/// `max_memory` bytes.
///
/// Exposed so that a benchmark or an embedder can build an engine configured exactly
/// as the runtime's, e.g. to compare a direct wasmtime call with a served one.
///
/// # Examples
///
/// ```
/// use wrpc_ring::host::RuntimeConfig;
///
/// let config = wrpc_ring::runtime::engine_config(&RuntimeConfig::default(), 64 << 20);
/// let engine = wasmtime::Engine::new(&config).unwrap();
/// # drop(engine);
/// ```
pub fn engine_config(runtime: &RuntimeConfig, max_memory: usize) -> Config {
    let size = |s: crate::host::ByteSize| usize::try_from(s.0).unwrap_or(usize::MAX);
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(runtime.pooled_instances)
        .total_core_instances(runtime.pooled_instances)
        .total_memories(runtime.pooled_instances)
        .total_tables(runtime.pooled_instances)
        .max_memory_size(max_memory)
        .linear_memory_keep_resident(size(runtime.linear_memory_keep_resident))
        .table_keep_resident(size(runtime.table_keep_resident))
        .async_stack_keep_resident(size(runtime.async_stack_keep_resident))
        .decommit_batch_size(runtime.decommit_batch_size)
        .max_unused_warm_slots(runtime.max_unused_warm_slots)
        .pagemap_scan(match runtime.pagemap_scan {
            PagemapScan::Auto => Enabled::Auto,
            PagemapScan::Yes => Enabled::Yes,
            PagemapScan::No => Enabled::No,
        });
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .concurrency_support(runtime.concurrency_support)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

pub(crate) fn engine(runtime: &RuntimeConfig, max_memory: usize) -> anyhow::Result<Engine> {
    Engine::new(&engine_config(runtime, max_memory))
        .map_err(anyhow::Error::from)
        .context("failed to configure the wasmtime engine (see [runtime] in docs/config.md)")
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own, for as long
/// as the engine exists.
///
/// The thread holds only a weak reference, and stops once every `Engine` handle is
/// gone: not when the [`Runtime`](super::Runtime) is dropped. A guest still running in
/// a store (which keeps the engine alive) must keep seeing the epoch advance so that its
/// time limit stops it; otherwise dropping the runtime while a guest spins would leave
/// that guest, and whoever waits for its thread, running forever.
pub(crate) fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wrpc-ring-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!(%err, "failed to start the epoch ticker: guests have no time limit");
    }
}
