//! The one counting allocator of the test suite and the benches: forwards everything to
//! the system allocator and, when asked, counts.
//!
//! A binary installs it with
//! `#[global_allocator] static GLOBAL: common::alloc::Counting = common::alloc::Counting;`
//! (benches include this file with `#[path = "../tests/common/alloc.rs"]`). It offers
//! three measurements, each off (a relaxed load per allocation) until asked for:
//!
//! - [`start`] / [`stop`]: the allocations of the *calling thread*, so tests running in
//!   parallel on other threads do not disturb them;
//! - [`start_all`] / [`stop_all`]: allocations and bytes of *every thread* (a benchmark
//!   whose caller and callee run on several workers);
//! - [`with_peak`]: the peak of live heap bytes of every thread above what was live when
//!   it started (tests of bounded memory). Measurements are serialized, since the
//!   counters are process-wide.
//! - [`start_sites`] / [`stop_sites`]: a backtrace of every allocation of every thread, to say whose code made
//!   it (tests/allocations.rs). Slow: for a few hundred allocations, not a benchmark.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};

/// The counting allocator.
pub struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    /// Set while this thread records a site: the backtrace's own allocations are not
    /// sites.
    static IN_SITE: Cell<bool> = const { Cell::new(false) };
}

// Relaxed throughout: the counters are read after the measured code has been joined
// (a channel or `block_on` hand-over orders them), and nothing else depends on them.
static COUNTING_ALL: AtomicBool = AtomicBool::new(false);
static ALL_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALL_BYTES: AtomicU64 = AtomicU64::new(0);
static TRACKING: AtomicBool = AtomicBool::new(false);
/// Live bytes allocated minus freed since tracking started (negative when memory that
/// was live before is freed).
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// One peak measurement at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static RECORDING_SITES: AtomicBool = AtomicBool::new(false);
static SITES: Mutex<Vec<Backtrace>> = Mutex::new(Vec::new());

#[inline]
fn allocated(size: usize) {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
    if COUNTING_ALL.load(Ordering::Relaxed) {
        ALL_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALL_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
    if TRACKING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(size as isize, Ordering::Relaxed) + size as isize;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
    if RECORDING_SITES.load(Ordering::Relaxed) {
        record_site();
    }
}

#[cold]
fn record_site() {
    let _ = IN_SITE.try_with(|busy| {
        if busy.replace(true) {
            return;
        }
        let site = Backtrace::force_capture();
        SITES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(site);
        busy.set(false);
    });
}

#[inline]
fn freed(size: usize) {
    if TRACKING.load(Ordering::Relaxed) {
        LIVE.fetch_sub(size as isize, Ordering::Relaxed);
    }
}

/// Starts counting this thread's allocations from zero.
pub fn start() {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
}

/// Stops counting; returns the allocations this thread made since [`start`].
pub fn stop() -> usize {
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// Starts counting the allocations of every thread from zero.
pub fn start_all() {
    ALL_ALLOCATIONS.store(0, Ordering::Relaxed);
    ALL_BYTES.store(0, Ordering::Relaxed);
    COUNTING_ALL.store(true, Ordering::Relaxed);
}

/// Stops counting; returns the allocations and bytes of every thread since
/// [`start_all`].
pub fn stop_all() -> (u64, u64) {
    COUNTING_ALL.store(false, Ordering::Relaxed);
    (
        ALL_ALLOCATIONS.load(Ordering::Relaxed),
        ALL_BYTES.load(Ordering::Relaxed),
    )
}

/// Live heap bytes of every thread above what was live when the current [`with_peak`]
/// started (0 outside one).
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed).max(0) as usize
}

/// Makes the rest of a test run alone among the tests of its binary that call this too,
/// its setup and teardown included: a measurement of every thread's heap must not see
/// another test's runtime shutting down, or its tasks still running, after that test's
/// own measurement ended. Take it first, so that it is released last.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static EXCLUSIVE: Mutex<()> = Mutex::new(());
    EXCLUSIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `body` and returns its result and the peak of live heap bytes (every thread)
/// above what was live when it started.
pub fn with_peak<T>(body: impl FnOnce() -> T) -> (T, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    TRACKING.store(true, Ordering::Relaxed);
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            TRACKING.store(false, Ordering::Relaxed);
        }
    }
    let stop = Stop;
    let result = body();
    drop(stop);
    (result, PEAK.load(Ordering::Relaxed).max(0) as usize)
}

/// Starts recording a backtrace of every allocation (and reallocation) of every
/// thread; [`stop_sites`] returns them. One recording at a time (the caller serializes).
pub fn start_sites() {
    SITES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    RECORDING_SITES.store(true, Ordering::SeqCst);
}

/// Stops recording; returns the backtraces since [`start_sites`], in order.
pub fn stop_sites() -> Vec<Backtrace> {
    RECORDING_SITES.store(false, Ordering::SeqCst);
    std::mem::take(&mut *SITES.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

// SAFETY: defers every operation to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocated(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocated(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        freed(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        freed(layout.size());
        allocated(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
