//! The per-call store data: WASI, wRPC polyfill context and resource limits.
//!
//! A [`HostState`] outlives its store: when a fresh instance's call ends, the store
//! hands its data back (`Store::into_data`) and the component keeps it for the next
//! call, so the WASI context and the buffers are built once, not per call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use wasmtime::component::{ResourceTable, ResourceType, Type};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wrpc_runtime_wasmtime::{SharedResourceTable, WrpcCtx, WrpcCtxView, WrpcView};

use wrpc_transport::Invoke;

use super::scan::Checked;
use crate::host::{CallContext, CallIncoming, CallOutgoing, Dispatcher};

/// The largest import parameter buffer a store keeps for its next import call.
const KEPT_PARAMS: usize = 64 * 1024;

/// What a store of one call holds.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    wrpc: WrpcState,
    pub(crate) limits: StoreLimits,
    /// The fast path's import parameter buffer, reused from call to call.
    params: BytesMut,
}

/// The polyfill context: imports of the component are invoked through the dispatcher,
/// as the component (`source-id`) on the default link.
struct WrpcState {
    client: ValClient,
    cx: CallContext,
    shared: SharedResourceTable,
}

impl HostState {
    pub(crate) fn new(
        dispatcher: Dispatcher,
        imports: Arc<ValImports>,
        component: &str,
        max_memory: usize,
    ) -> Self {
        Self {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            table: ResourceTable::new(),
            wrpc: WrpcState {
                client: ValClient { dispatcher, imports },
                cx: CallContext::new(component),
                shared: SharedResourceTable::default(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory)
                .trap_on_grow_failure(true)
                .build(),
            params: BytesMut::new(),
        }
    }

    /// Makes a state handed back by a finished store ready for another: the resource
    /// tables of the previous instance are emptied; the WASI context and the buffers
    /// stay.
    pub(crate) fn reset(&mut self) {
        self.table = ResourceTable::new();
        self.wrpc.shared = SharedResourceTable::default();
    }

    /// The dispatcher and the context the component's imports are invoked with.
    pub(crate) fn caller(&self) -> (&Dispatcher, &CallContext) {
        (&self.wrpc.client.dispatcher, &self.wrpc.cx)
    }

    /// The import parameter buffer, empty; give it back with
    /// [`return_params`](Self::return_params).
    pub(crate) fn take_params(&mut self) -> BytesMut {
        let mut buf = std::mem::take(&mut self.params);
        buf.clear();
        buf
    }

    /// Keeps `params` for the next import call if nothing else holds it any more, and
    /// if it is no larger than [`KEPT_PARAMS`]: one large import call must not leave
    /// every spare state and warm instance holding its buffer.
    pub(crate) fn return_params(&mut self, params: bytes::Bytes) {
        if let Ok(buf) = params.try_into_mut() {
            if buf.capacity() <= KEPT_PARAMS {
                self.params = buf;
            }
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

impl WrpcCtx<ValClient> for WrpcState {
    fn context(&self) -> CallContext {
        self.cx.clone()
    }

    fn client(&self) -> &ValClient {
        &self.client
    }

    fn shared_resources(&mut self) -> &mut SharedResourceTable {
        &mut self.shared
    }

    /// None: the [`Dispatcher`] owns each call's deadline (`limits.invocation_timeout`),
    /// so the polyfill adds no timer of its own.
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

impl WrpcView for HostState {
    type Invoke = ValClient;

    fn wrpc(&mut self) -> WrpcCtxView<'_, ValClient> {
        WrpcCtxView {
            ctx: &mut self.wrpc,
            table: &mut self.table,
        }
    }
}

/// The result types of an interface's functions, by wRPC function name.
type ResultTypes = HashMap<Box<str>, Arc<[Type]>>;

/// The result types of a component's imports on the `Val` path, by interface and
/// wRPC function name, and the component's memory limit.
#[derive(Debug, Default)]
pub(crate) struct ValImports {
    /// interface → function → result types.
    results: HashMap<Box<str>, ResultTypes>,
    max_memory: usize,
}

impl ValImports {
    pub(crate) fn new(max_memory: usize) -> Self {
        Self {
            results: HashMap::new(),
            max_memory,
        }
    }

    /// Records that `func` of `interface` (`""` at the root) returns `results` on the
    /// wire.
    pub(crate) fn insert(&mut self, interface: &str, func: &str, results: Arc<[Type]>) {
        self.results
            .entry(interface.into())
            .or_default()
            .insert(func.into(), results);
    }
}

/// The client of `wrpc_runtime_wasmtime`'s `Val` polyfill: the dispatcher, with each
/// import's results walked and bounded ([`Checked`]) before the polyfill decodes them,
/// so that a callee announcing a huge list cannot make the decoder's allocation abort
/// the process.
pub(crate) struct ValClient {
    dispatcher: Dispatcher,
    imports: Arc<ValImports>,
}

impl Invoke for ValClient {
    type Context = CallContext;
    type Outgoing = CallOutgoing;
    type Incoming = Checked<CallIncoming>;

    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        let (outgoing, incoming) = self.dispatcher.invoke(cx, instance, func, params, paths).await?;
        let results = self
            .imports
            .results
            .get(instance)
            .and_then(|funcs| funcs.get(func));
        let incoming = match results {
            Some(results) => Checked::new(
                incoming,
                results,
                Arc::<[ResourceType]>::from([]),
                self.imports.max_memory,
                "result",
            ),
            None => Checked::plain(incoming),
        };
        Ok((outgoing, incoming))
    }
}
