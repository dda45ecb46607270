//! Serving a component's exports on the `Val` path: the results writer handed to
//! `wrpc_runtime_wasmtime::call`, which takes it by value, parks itself when the call
//! ends without finishing it, so that the server can still abort it with the reason
//! (a trap, a panic).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wrpc_transport::Index;

use crate::host::{ServeOutgoing, StreamTimer};

/// Polls a served call, but gives up on it (`None`) if it is still waiting at `at`:
/// for parameters its caller never sends, for a caller that never reads its results,
/// or in an import. A guest that *runs* is stopped by its epoch deadline instead,
/// inside a poll; this bounds the waits between polls, which the epoch cannot see.
/// The timer is made only when the call first has to wait, so a call that ends in one
/// poll (a small call over the ring) makes none. The call is pinned where the caller
/// keeps it: a call's future is a few KiB, and moving it in here would copy it.
pub(crate) fn within_limit<F: Future>(
    mut call: Pin<&mut F>,
    at: Option<tokio::time::Instant>,
) -> impl Future<Output = Option<F::Output>> {
    let mut timer = StreamTimer::default();
    poll_fn(move |cx| match call.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => match at {
            Some(at) => timer.poll(at, cx).map(|()| None),
            None => Poll::Pending,
        },
    })
}

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

impl GuardedOutgoing {
    pub(crate) fn new(inner: ServeOutgoing, slot: Arc<ResultsSlot>) -> Self {
        Self {
            inner: Some(inner),
            slot: Some(slot),
            done: false,
        }
    }
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

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
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

    /// A results writer dropped while its call's future unwinds parks its stream, and
    /// the server aborts it with the panic message: the caller reads an abort carrying
    /// it instead of a clean end.
    #[tokio::test]
    async fn a_writer_dropped_by_a_panic_can_still_be_aborted() {
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
        let guarded = GuardedOutgoing::new(
            ServeOutgoing::new(AnyOutgoing::Ring(outgoing), None),
            slot.clone(),
        );
        let call = tokio::spawn(async move {
            let _results = guarded; // dropped while unwinding
            panic!("host bug");
        });
        let panic = call.await.unwrap_err().into_panic();
        slot.take()
            .expect("the writer parked itself")
            .abort(format!("the host panicked: {}", panic_message(&*panic)));

        let err = results.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
        assert!(err.to_string().contains("host bug"), "{err}");
    }
}
