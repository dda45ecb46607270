//! A watchdog for tests that can hang (test-only).
//!
//! [`watch`] runs the work on a thread of its own and fails the test with
//! `stuck: <what> …` once the work has gone [`STUCK_AFTER`] without progress, instead of
//! hanging CI. Progress is whatever the `report` closure shows: the watchdog samples it
//! every [`SAMPLE`], and any change counts. So a slow run on a loaded machine never fails
//! while it moves, and no timing threshold is tight.
//!
//! The ring's unit tests use it as `super::watchdog`; the integration tests include this
//! file with `#[path = "../src/ring/watchdog.rs"] mod watchdog;`. It uses only `std`.

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the work may go without progress before the test fails as stuck: far more
/// than any step of these tests takes, even under Miri or on a loaded 2-core machine.
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

/// How often the watchdog looks at the work's progress report.
pub const SAMPLE: Duration = Duration::from_secs(1);

/// Runs `work` on its own thread and returns its result, or re-raises its panic.
///
/// Panics with `stuck: {what} ({report})` when `report()` has not changed for
/// [`STUCK_AFTER`]. The stuck thread is left behind; the test binary ends with it.
pub fn watch<T, R>(what: &str, report: R, work: impl FnOnce() -> T + Send + 'static) -> T
where
    T: Send + 'static,
    R: Fn() -> String,
{
    watch_for(STUCK_AFTER, what, report, work)
}

/// [`watch`] with another limit than [`STUCK_AFTER`] (for the watchdog's own test).
pub fn watch_for<T, R>(
    stuck_after: Duration,
    what: &str,
    report: R,
    work: impl FnOnce() -> T + Send + 'static,
) -> T
where
    T: Send + 'static,
    R: Fn() -> String,
{
    let sample = SAMPLE.min(stuck_after);
    let (done, result) = mpsc::channel();
    let worker = thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            let _ = done.send(work());
        })
        .expect("spawn the watched thread");
    let mut last = report();
    let mut since = Instant::now();
    loop {
        match result.recv_timeout(sample) {
            Ok(value) => {
                let _ = worker.join();
                return value;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the watched thread ended without a result"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = report();
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() >= stuck_after {
                    panic!("stuck: {what} (no progress for {stuck_after:?}; {last})");
                }
            }
        }
    }
}

/// [`watch`] with no progress report: `work` must finish within [`STUCK_AFTER`].
pub fn within<T>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> T
where
    T: Send + 'static,
{
    watch(what, || "no progress report".to_owned(), work)
}
