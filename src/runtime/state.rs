//! The per-call store data: WASI, wRPC polyfill context and resource limits.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wrpc_runtime_wasmtime::{SharedResourceTable, WrpcCtx, WrpcCtxView, WrpcView};

use crate::host::{CallContext, Dispatcher};

/// What a store of one call holds.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    wrpc: WrpcState,
    pub(crate) limits: StoreLimits,
}

/// The polyfill context: imports of the component are invoked through the dispatcher,
/// as the component (`source-id`) on the default link.
struct WrpcState {
    dispatcher: Dispatcher,
    cx: CallContext,
    shared: SharedResourceTable,
    timeout: Duration,
}

impl HostState {
    pub(crate) fn new(dispatcher: Dispatcher, component: &str, timeout: Duration, max_memory: usize) -> Self {
        Self {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            table: ResourceTable::new(),
            wrpc: WrpcState {
                dispatcher,
                cx: CallContext::new(component),
                shared: SharedResourceTable::default(),
                timeout,
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory)
                .trap_on_grow_failure(true)
                .build(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WrpcCtx<Dispatcher> for WrpcState {
    fn context(&self) -> CallContext {
        self.cx.clone()
    }

    fn client(&self) -> &Dispatcher {
        &self.dispatcher
    }

    fn shared_resources(&mut self) -> &mut SharedResourceTable {
        &mut self.shared
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }
}

impl WrpcView for HostState {
    type Invoke = Dispatcher;

    fn wrpc(&mut self) -> WrpcCtxView<'_, Dispatcher> {
        WrpcCtxView {
            ctx: &mut self.wrpc,
            table: &mut self.table,
        }
    }
}
