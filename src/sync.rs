//! The synchronization facade of the ring core and the pool: the code loom checks.
//!
//! Every atomic, `Arc`, `Mutex` and `UnsafeCell` in `ring/` and `pool.rs`
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

/// Says that this thread cannot go on until another one has made progress, and will
/// poll again. Under loom this is `yield_now`, without which a model with such a retry
/// never ends (loom would explore the retry forever); otherwise it does nothing.
#[inline(always)]
pub(crate) fn retry_later() {
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// `std`'s `UnsafeCell` with loom's access API (`with`, `with_mut`), so the ring core
/// writes each access once and loom checks it under `--cfg loom`.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer for reading.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a pointer for writing.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
