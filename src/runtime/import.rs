//! The fast path's import side: a component's import whose signature has a
//! fast-path [`Shape`] is linked with `func_wrap_async` and its typed signature, and
//! invoked through the [`Dispatcher`](crate::host::Dispatcher) without a `Val` per
//! value.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use wasmtime::AsContext as _;
use wasmtime::component::LinkerInstance;
use wrpc_transport::Invoke as _;

#[allow(clippy::wildcard_imports)] // the shapes' kinds, named by `with_params!`/`with_results!`
use super::fast::*;
use super::state::HostState;
use crate::host::{CallContext, Dispatcher};

/// No async result values: the fast shapes have none.
const NO_PATHS: &[&[Option<usize>]] = &[];

/// Defines function `name` of `linker` (an import of interface `interface`, served
/// as `rpc_name`) with the typed signature of `shape`.
pub(crate) fn link(
    linker: &mut LinkerInstance<'_, HostState>,
    shape: Shape,
    interface: Arc<str>,
    name: &str,
    rpc_name: Arc<str>,
) -> anyhow::Result<()> {
    with_params!(shape.params, P => with_results!(shape.results, R => {
        link_typed::<P, R>(linker, interface, name, rpc_name)
    }))
}

fn link_typed<P: Params, R: Results>(
    linker: &mut LinkerInstance<'_, HostState>,
    interface: Arc<str>,
    name: &str,
    rpc_name: Arc<str>,
) -> anyhow::Result<()> {
    linker
        .func_wrap_async::<P::View, R::Owned, _>(name, move |mut store, params| {
            let interface = interface.clone();
            let rpc_name = rpc_name.clone();
            Box::new(async move {
                // One copy, guest memory → the call's parameter buffer.
                let mut buf = store.data_mut().take_params();
                P::encode_view(&params, &store.as_context(), &mut buf)?;
                let params = buf.freeze();
                let (dispatcher, cx) = {
                    let (dispatcher, cx) = store.data().caller();
                    (dispatcher.clone(), cx.clone())
                };
                let results = invoke::<R>(&dispatcher, cx, &interface, &rpc_name, params.clone()).await;
                store.data_mut().return_params(params);
                results.map_err(wasmtime::Error::from_anyhow)
            })
        })
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to link `{name}`"))
}

/// One import call: invoke, end the parameter stream, read the results.
async fn invoke<R: Results>(
    dispatcher: &Dispatcher,
    cx: CallContext,
    interface: &str,
    name: &str,
    params: Bytes,
) -> anyhow::Result<R::Owned> {
    let (mut outgoing, mut incoming) = dispatcher.invoke(cx, interface, name, params, NO_PATHS).await?;
    let end_params = async {
        // No async parameters follow the root ones; over NATS this also completes
        // the handshake that sends them.
        outgoing.flush().await?;
        if let Err(err) = outgoing.shutdown().await {
            tracing::trace!(%err, "failed to shut down the parameter stream");
        }
        std::io::Result::Ok(())
    };
    let read = R::read(&mut incoming);
    let ((), results) = futures::try_join!(end_params, read)
        .with_context(|| format!("import call of `{interface}#{name}` failed"))?;
    Ok(results)
}
