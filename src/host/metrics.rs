//! Per-transport call metrics: calls, errors, cancelled calls and a latency
//! histogram.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::config::TransportKind;

/// Latency buckets: bucket `i` counts calls that took less than `2^i` µs (the last one
/// everything longer), so 28 buckets span 1 µs to over two minutes.
const BUCKETS: usize = 28;

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
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
    pub(crate) fn record(&self, kind: TransportKind, elapsed: Duration, outcome: Outcome) {
        let counters = &self.by_transport[index(kind)];
        counters.calls.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok => {}
            Outcome::Failed => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Cancelled => {
                counters.cancelled.fetch_add(1, Ordering::Relaxed);
                return; // a cancelled call's duration says nothing about the path
            }
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
                    cancelled: c.cancelled.load(Ordering::Relaxed),
                    latency_buckets: std::array::from_fn(|i| c.buckets[i].load(Ordering::Relaxed)),
                })
                .collect(),
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its results arrived.
    Ok,
    /// The invoke or a read or write of its streams failed (a timeout included).
    Failed,
    /// The caller gave up before any result arrived: it dropped the invoke, or its
    /// streams before reading from them.
    Cancelled,
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
    /// Calls whose caller gave up before any result arrived (counted in `calls`, not
    /// in `errors` nor in the latency histogram).
    pub cancelled: u64,
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
            "{:<8} {:>10} {:>8} {:>10} {:>10} {:>10}",
            "path", "calls", "errors", "cancelled", "p50 <", "p99 <"
        )?;
        for t in &self.transports {
            let q = |q| {
                t.latency_quantile(q)
                    .map_or("-".to_string(), |d| format!("{d:?}"))
            };
            writeln!(
                f,
                "{:<8} {:>10} {:>8} {:>10} {:>10} {:>10}",
                t.transport,
                t.calls,
                t.errors,
                t.cancelled,
                q(0.5),
                q(0.99)
            )?;
        }
        Ok(())
    }
}
