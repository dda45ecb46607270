//! Serving a component's exports: each call on its own task, faults reported to the
//! caller as an abort carrying the reason.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::{FutureExt as _, Stream, StreamExt as _};
use tokio::io::AsyncWrite;
use wrpc_transport::{Index, Serve};

use crate::Headers;
use crate::host::{AnyIncoming, ComponentServer, ServeOutgoing};

/// Where a call's results writer waits when the call ends without finishing it, so
/// that the server can still abort it with the reason (a trap, a panic).
#[derive(Default)]
pub(crate) struct ResultsSlot(Mutex<Option<ServeOutgoing>>);

impl ResultsSlot {
    pub(crate) fn take(&self) -> Option<ServeOutgoing> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// A results writer that, when dropped before it was shut down, parks the stream in
/// its call's [`ResultsSlot`] instead of closing it.
pub(crate) struct GuardedOutgoing {
    inner: Option<ServeOutgoing>,
    slot: Option<Arc<ResultsSlot>>,
    done: bool,
}

impl AsyncWrite for GuardedOutgoing {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().inner {
            Some(inner) => Pin::new(inner).poll_write(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        };
        let result = Pin::new(inner).poll_shutdown(cx);
        if matches!(result, Poll::Ready(Ok(()))) {
            this.done = true;
        }
        result
    }
}

impl Index<Self> for GuardedOutgoing {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        let inner = self
            .inner
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("results writer already closed"))?;
        Ok(Self {
            inner: Some(inner.index(path)?),
            slot: None,
            done: false,
        })
    }
}

impl Drop for GuardedOutgoing {
    fn drop(&mut self) {
        if !self.done {
            if let (Some(inner), Some(slot)) = (self.inner.take(), &self.slot) {
                *slot.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(inner);
            }
        }
    }
}

/// A [`ComponentServer`] whose results writers can be aborted after the call ended.
pub(crate) struct TrapAware<'a>(pub(crate) &'a ComponentServer);

impl Serve for TrapAware<'_> {
    type Context = (Option<Headers>, Arc<ResultsSlot>);
    type Outgoing = GuardedOutgoing;
    type Incoming = AnyIncoming;

    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<
        impl Stream<Item = anyhow::Result<(Self::Context, Self::Outgoing, Self::Incoming)>> + Send + 'static,
    > {
        let invocations = self.0.serve(instance, func, paths).await?;
        Ok(invocations.map(|item| {
            item.map(|(headers, outgoing, incoming)| {
                let slot = Arc::new(ResultsSlot::default());
                let outgoing = GuardedOutgoing {
                    inner: Some(outgoing),
                    slot: Some(slot.clone()),
                    done: false,
                };
                ((headers, slot), outgoing, incoming)
            })
        }))
    }
}

/// Runs one served call to its end on the current task: on a trap, an error or a
/// panic, the caller's results stream is aborted with the reason.
pub(crate) async fn run_call(
    call: Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>,
    slot: Arc<ResultsSlot>,
    what: Arc<str>,
) {
    let reason = match AssertUnwindSafe(call).catch_unwind().await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(format!("{what} failed: {}", describe(&err))),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Some(format!(
                "{what}: the host panicked while serving the call: {message}"
            ))
        }
    };
    if let Some(reason) = reason {
        tracing::debug!(%reason, "call failed");
        if let Some(outgoing) = slot.take() {
            outgoing.abort(reason);
        }
    }
}

/// A one-line description of a failed call: what failed, and the root cause (e.g. the
/// trap: "wasm `unreachable` instruction executed", or the memory limit).
pub(crate) fn describe(err: &anyhow::Error) -> String {
    use wrpc_runtime_wasmtime::CallError;

    let Some(call) = err.downcast_ref::<CallError>() else {
        return format!("{err:#}");
    };
    let inner = match call {
        CallError::Decode(e)
        | CallError::Encode(e)
        | CallError::Table(e)
        | CallError::Call(e)
        | CallError::TypeMismatch(e)
        | CallError::Write(e)
        | CallError::Flush(e)
        | CallError::Deferred(e)
        | CallError::PostReturn(e) => e,
        CallError::Guest(e) => return format!("the guest returned an error: {e:?}"),
    };
    let root = inner.root_cause().to_string();
    let top = inner.to_string();
    if root == top {
        top
    } else {
        format!("{top}: {root}")
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use tokio::io::AsyncReadExt as _;
    use wrpc_transport::{Invoke as _, Serve as _};

    use super::*;
    use crate::host::AnyOutgoing;
    use crate::{Ring, RingPool};

    /// A call whose serving future panics: the panic stays in that call's task, and
    /// the caller reads an abort carrying the panic message instead of hanging.
    #[tokio::test]
    async fn a_host_panic_is_contained_to_its_call() {
        let ring = Ring::new(RingPool::new(1024, 4)).with_prefix("panic");
        let mut calls = ring
            .serve("i", "f", Vec::<Box<[Option<usize>]>>::new())
            .await
            .unwrap();
        let (_out, mut results) = ring
            .invoke(None, "i", "f", bytes::Bytes::new(), &[] as &[&[Option<usize>]])
            .await
            .unwrap();
        let (_cx, outgoing, _incoming) = calls.next().await.unwrap().unwrap();

        let slot = Arc::new(ResultsSlot::default());
        let guarded = GuardedOutgoing {
            inner: Some(ServeOutgoing::new(AnyOutgoing::Ring(outgoing), None)),
            slot: Some(slot.clone()),
            done: false,
        };
        let call: Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> = Box::pin(async move {
            let _results = guarded; // dropped while unwinding
            panic!("host bug");
        });
        tokio::spawn(run_call(call, slot, "`i#f` of component `c`".into()))
            .await
            .unwrap();

        let err = results.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
        assert!(
            err.to_string().contains("host panicked") && err.to_string().contains("host bug"),
            "{err}"
        );
    }
}
