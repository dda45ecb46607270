//! The wasmtime engine: pooling allocator, epoch interruption, and the epoch ticker.

use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances; a guest's time limit is counted in these.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances the pooling allocator keeps slots for, across all components.
const POOLED_INSTANCES: u32 = 1000;

pub(crate) fn engine(max_memory: usize) -> anyhow::Result<Engine> {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES)
        .total_memories(POOLED_INSTANCES)
        .total_tables(POOLED_INSTANCES)
        .max_memory_size(max_memory);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("failed to configure the wasmtime engine")
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
