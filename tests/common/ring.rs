//! Helpers for tests of the `Ring` transport: a deadline that fails instead of hanging,
//! and a wait for every ring to come back. Included with
//! `#[path = "common/ring.rs"] mod ring_helpers;`.

#![allow(dead_code)]

use std::time::Duration;

use wrpc_ring::Ring;

/// How long one awaited step of a test may take before it fails as a hang.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Fails the test instead of hanging: `fut` must finish within [`LIMIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(LIMIT, what, fut).await
}

/// Fails the test instead of hanging: `fut` must finish within `limit`.
pub async fn within_for<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {limit:?} (a hang)"))
}

/// Waits until every ring `ring` leased is back (the other side may still be dropping
/// its handles on another task).
pub async fn all_rings_returned(ring: &Ring) {
    within("rings returning to the pool", async {
        while ring.rings_in_use() != 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}
