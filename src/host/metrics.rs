//! Per-transport call metrics: calls, errors and a latency histogram.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::config::TransportKind;

/// Latency buckets: bucket `i` counts calls that took less than `2^i` µs (the last one
/// everything longer), so 28 buckets span 1 µs to over two minutes.
const BUCKETS: usize = 28;

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

/// The host's metrics; cheap to update from any thread.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    by_transport: [Counters; TransportKind::ALL.len()],
}

fn index(kind: TransportKind) -> usize {
    TransportKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Metrics {
    pub(crate) fn record(&self, kind: TransportKind, elapsed: Duration, failed: bool) {
        let counters = &self.by_transport[index(kind)];
        counters.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = elapsed.as_micros().max(1);
        let bucket = (u128::BITS - micros.leading_zeros()) as usize; // ⌈log2⌉ + 1
        counters.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            transports: TransportKind::ALL
                .iter()
                .zip(&self.by_transport)
                .map(|(kind, c)| TransportMetrics {
                    transport: *kind,
                    calls: c.calls.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    latency_buckets: std::array::from_fn(|i| c.buckets[i].load(Ordering::Relaxed)),
                })
                .collect(),
        }
    }
}

/// One call in flight: recorded once, when the last of its streams is dropped.
pub(crate) struct CallRecord {
    metrics: Arc<Metrics>,
    kind: TransportKind,
    start: Instant,
    failed: AtomicBool,
}

impl CallRecord {
    pub(crate) fn new(metrics: Arc<Metrics>, kind: TransportKind, start: Instant) -> Self {
        Self {
            metrics,
            kind,
            start,
            failed: AtomicBool::new(false),
        }
    }

    pub(crate) fn failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.metrics.record(
            self.kind,
            self.start.elapsed(),
            self.failed.load(Ordering::Relaxed),
        );
    }
}

impl fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRecord")
            .field("transport", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Metrics of one transport at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportMetrics {
    /// Which transport.
    pub transport: TransportKind,
    /// Calls finished (successful or not).
    pub calls: u64,
    /// Calls that failed: the invoke, or a read of their results.
    pub errors: u64,
    /// Bucket `i` counts calls that took under `2^i` µs (and at least `2^(i-1)`).
    pub latency_buckets: [u64; BUCKETS],
}

impl TransportMetrics {
    /// An upper bound of the `q`-quantile latency (`q` in 0..=1), from the histogram;
    /// `None` without calls.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(1 << i));
            }
        }
        None
    }
}

/// The host's metrics at one moment, per transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// One entry per transport kind, in [`TransportKind::ALL`] order.
    pub transports: Vec<TransportMetrics>,
}

impl MetricsSnapshot {
    /// The metrics of `kind`.
    pub fn transport(&self, kind: TransportKind) -> &TransportMetrics {
        &self.transports[index(kind)]
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>10} {:>8} {:>10} {:>10}",
            "path", "calls", "errors", "p50 <", "p99 <"
        )?;
        for t in &self.transports {
            let q = |q| {
                t.latency_quantile(q)
                    .map_or("-".to_string(), |d| format!("{d:?}"))
            };
            writeln!(
                f,
                "{:<8} {:>10} {:>8} {:>10} {:>10}",
                t.transport,
                t.calls,
                t.errors,
                q(0.5),
                q(0.99)
            )?;
        }
        Ok(())
    }
}
