//! The synchronization facade of the ring core and the pool: the code loom checks.
//!
//! Every atomic, `Arc`, `Mutex`, `UnsafeCell` and waker cell in `ring/` and `pool.rs`
//! comes from here. Under `--cfg loom` they are swapped for [loom]'s instrumented
//! versions, so the same wake, close and recycle code runs inside loom's model checker
//! (see `loom-tests/` and `docs/loom.md`). The ring storage itself is switched in
//! `ring::buffer`, which builds its loom stand-in from the primitives below.
//!
//! # What it does not cover
//!
//! Loom builds the crate without features, so only the ring core and the pool are ever
//! model-checked. The layers above them (`transport/`, which also imports from here, and
//! `baseline/`, `host/`, `runtime/` and the CLI, which use `std::sync` directly) are
//! never built under `--cfg loom`: for them this module is only a convenience, not a
//! requirement. A new lock-free protocol in those layers should move into the ring core,
//! or come with loom models of its own that use this module.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Turns a `std::sync::Arc` into this module's `Arc`: the only way to get a loom `Arc`
/// of a trait object, since loom's `Arc` cannot be unsized by coercion. Unsize the std
/// `Arc` first (`std::sync::Arc::new(x) as std::sync::Arc<dyn Trait>`); it must be unique.
pub(crate) fn arc_from_std<T: ?Sized>(arc: std::sync::Arc<T>) -> Arc<T> {
    #[cfg(not(loom))]
    return arc;
    #[cfg(loom)]
    return Arc::from_std(arc);
}

/// Locks `mutex`, ignoring poisoning.
///
/// Every critical section in this crate leaves its data consistent at each step (they
/// only move `Option`s in and out), so a panic elsewhere never makes the data unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cell holding the waker of the one task that may be parked on one side of a ring.
///
/// A thin wrapper so both backends offer the same three calls. Normally it is
/// [`atomic_waker::AtomicWaker`], whose `register` clones the waker only when the stored
/// one would not wake the same task (`!will_wake`); under loom it is loom's model of the
/// same type.
#[derive(Debug, Default)]
pub(crate) struct AtomicWaker {
    #[cfg(not(loom))]
    inner: atomic_waker::AtomicWaker,
    #[cfg(loom)]
    inner: loom::future::AtomicWaker,
}

impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Stores `waker` as the one to wake.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        #[cfg(not(loom))]
        self.inner.register(waker);
        #[cfg(loom)]
        self.inner.register_by_ref(waker);
    }

    /// Wakes and forgets the stored waker, if any.
    pub(crate) fn wake(&self) {
        self.inner.wake();
    }

    /// Forgets the stored waker without waking it.
    pub(crate) fn take(&self) -> Option<std::task::Waker> {
        #[cfg(not(loom))]
        return self.inner.take();
        #[cfg(loom)]
        return self.inner.take_waker();
    }
}
