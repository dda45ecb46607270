//! `faults`: misbehaving functions for the host's fault handling. Exports
//! `wrpc-ring:examples/faults`.
//!
//! - `trap()` panics. With `panic = "abort"` (the wasm32-wasip2 default, and
//!   set in the release profile) the panic message is written to stderr and
//!   then `unreachable` executes: the host sees a trap.
//! - `spin()` never returns: only the host's epoch-interruption deadline (or
//!   fuel) stops it.
//! - `hog(mib)` allocates `mib` MiB and writes to every 4 KiB of it, then
//!   returns `mib`. Past the host's memory limit `memory.grow` fails, the
//!   allocation fails and the guest aborts (a trap) — or the host's limiter
//!   traps the grow itself.
//! - `ok()` returns `"ok"`: a call after a fault shows the host recovered.
//! - `calls()` returns how many calls this instance has served (every
//!   function counts, this one included): 1 in a fresh instance.
//! - `sleep(ms)` sleeps `ms` milliseconds and returns `ms`: a call that stays in
//!   flight (WASI's `monotonic-clock.subscribe-duration`, which the host awaits).

wit_bindgen::generate!({
    path: "../wit",
    world: "faults-world",
});

use core::hint::black_box;
use core::sync::atomic::{AtomicU32, Ordering};

use exports::wrpc_ring::examples::faults::Guest;

struct Faults;

/// Calls served by this instance (a wasm instance is single-threaded; the
/// atomic only avoids `static mut`).
static CALLS: AtomicU32 = AtomicU32::new(0);

/// Counts one call; returns the count including it.
fn count() -> u32 {
    CALLS.fetch_add(1, Ordering::Relaxed) + 1
}

impl Guest for Faults {
    fn trap() {
        count();
        panic!("faults.trap: deliberate panic in the guest");
    }

    fn spin() {
        count();
        let mut n: u64 = 0;
        loop {
            // `black_box` keeps the loop (and its side effect) from being
            // optimised into anything the host could finish.
            n = black_box(n.wrapping_add(1));
        }
    }

    fn hog(mib: u32) -> u32 {
        count();
        let len = mib as usize * 1024 * 1024;
        let mut buf = vec![0u8; len];
        // Write every 4 KiB so the memory is really used, not only reserved.
        for byte in buf.iter_mut().step_by(4096) {
            *byte = 1;
        }
        black_box(&mut buf);
        mib
    }

    fn ok() -> String {
        count();
        "ok".to_string()
    }

    fn calls() -> u32 {
        count()
    }

    fn sleep(ms: u32) -> u32 {
        count();
        std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
        ms
    }
}

export!(Faults);
