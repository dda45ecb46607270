//! Call metrics: calls, errors and cancelled calls per transport and per target
//! component, and a latency histogram per transport (HdrHistogram: ±1 % at every
//! scale, from 1 ns to an hour).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::config::TransportKind;

/// The longest latency the histograms tell apart (longer calls count as this long):
/// above the longest `invocation_timeout` anyone runs with in practice.
const HIGHEST_NANOS: u64 = 3_600 * 1_000_000_000;

/// Significant decimal digits the histograms keep: 2 is a 1 % bound on the error of
/// every quantile, in 37 KiB per histogram (3 digits would take 260 KiB).
const SIGNIFICANT_DIGITS: u8 = 2;

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (1 ≤ low, high ≥ 2·low,
    // digits ≤ 5), so this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_NANOS, SIGNIFICANT_DIGITS).expect("valid histogram bounds")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Calls, errors and cancelled calls.
#[derive(Debug, Default)]
struct Counts {
    calls: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
}

impl Counts {
    fn record(&self, outcome: Outcome) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok => {}
            Outcome::Failed => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Cancelled => {
                self.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn read(&self) -> (u64, u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.cancelled.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug)]
struct Counters {
    counts: Counts,
    /// Latency of the calls that were not cancelled, in nanoseconds.
    latency: Mutex<Histogram<u64>>,
    /// Their exact sum (the histogram's is within its precision only), in nanoseconds.
    latency_sum: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            counts: Counts::default(),
            latency: Mutex::new(new_histogram()),
            latency_sum: AtomicU64::new(0),
        }
    }
}

/// The counts of calls to one target component, per transport; shared by the routes
/// that lead to it, so that a call finds its counters without a lookup.
#[derive(Debug, Default)]
pub(crate) struct TargetCounters {
    by_transport: [Counts; TransportKind::ALL.len()],
}

/// The host's metrics; cheap to update from any thread.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    by_transport: [Counters; TransportKind::ALL.len()],
    /// Every target component ever routed to: a handful per host, created when a link
    /// is made (never on a call), kept so that its counts never go backwards.
    targets: Mutex<HashMap<Arc<str>, Arc<TargetCounters>>>,
}

fn index(kind: TransportKind) -> usize {
    TransportKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Metrics {
    /// The counters of calls to `target`, created on first use.
    pub(crate) fn target(&self, target: &Arc<str>) -> Arc<TargetCounters> {
        lock(&self.targets).entry(target.clone()).or_default().clone()
    }

    pub(crate) fn record(
        &self,
        kind: TransportKind,
        target: &TargetCounters,
        elapsed: Duration,
        outcome: Outcome,
    ) {
        let counters = &self.by_transport[index(kind)];
        counters.counts.record(outcome);
        target.by_transport[index(kind)].record(outcome);
        if outcome == Outcome::Cancelled {
            return; // a cancelled call's duration says nothing about the path
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        counters.latency_sum.fetch_add(nanos, Ordering::Relaxed);
        lock(&counters.latency).saturating_record(nanos);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let transports = TransportKind::ALL
            .iter()
            .zip(&self.by_transport)
            .map(|(kind, c)| {
                let (calls, errors, cancelled) = c.counts.read();
                TransportMetrics {
                    transport: *kind,
                    calls,
                    errors,
                    cancelled,
                    latency_sum: Duration::from_nanos(c.latency_sum.load(Ordering::Relaxed)),
                    latency: lock(&c.latency).clone(),
                }
            })
            .collect();
        let targets: Vec<TargetMetrics> = lock(&self.targets)
            .iter()
            .flat_map(|(target, counters)| {
                TransportKind::ALL
                    .iter()
                    .zip(&counters.by_transport)
                    .filter_map(|(kind, counts)| {
                        let (calls, errors, cancelled) = counts.read();
                        (calls > 0).then(|| TargetMetrics {
                            target: target.to_string(),
                            transport: *kind,
                            calls,
                            errors,
                            cancelled,
                        })
                    })
            })
            .collect();
        let mut snapshot = MetricsSnapshot { transports, targets };
        snapshot.sort_targets();
        snapshot
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
#[derive(Clone)]
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
    /// The total latency of the calls in the histogram.
    pub latency_sum: Duration,
    latency: Histogram<u64>,
}

impl TransportMetrics {
    /// The `q`-quantile latency (`q` in 0..=1) of the calls that were not cancelled,
    /// within 1 %; `None` without such calls.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        (!self.latency.is_empty())
            .then(|| Duration::from_nanos(self.latency.value_at_quantile(q.clamp(0.0, 1.0))))
    }

    /// How many calls the latency histogram holds (`calls - cancelled`).
    pub fn latency_count(&self) -> u64 {
        self.latency.len()
    }

    /// For each bound (in increasing order), how many calls took at most that long
    /// (within the histogram's 1 %): the cumulative buckets of a Prometheus histogram.
    pub fn latency_at_most(&self, bounds: &[Duration]) -> Vec<u64> {
        let mut counts = vec![0; bounds.len()];
        for value in self.latency.iter_recorded() {
            let nanos = Duration::from_nanos(self.latency.highest_equivalent(value.value_iterated_to()));
            let first = bounds.partition_point(|bound| *bound < nanos);
            for count in &mut counts[first..] {
                *count += value.count_at_value();
            }
        }
        counts
    }
}

impl fmt::Debug for TransportMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportMetrics")
            .field("transport", &self.transport)
            .field("calls", &self.calls)
            .field("errors", &self.errors)
            .field("cancelled", &self.cancelled)
            .field("p50", &self.latency_quantile(0.5))
            .field("p99", &self.latency_quantile(0.99))
            .finish_non_exhaustive()
    }
}

/// The calls to one target component over one transport, at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetMetrics {
    /// The target component's id.
    pub target: String,
    /// The transport that carried them.
    pub transport: TransportKind,
    /// Calls finished (successful or not).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Calls whose caller gave up before any result arrived.
    pub cancelled: u64,
}

/// The host's metrics at one moment: per transport, and per target component.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// One entry per transport kind, in [`TransportKind::ALL`] order.
    pub transports: Vec<TransportMetrics>,
    /// One entry per target component and transport that carried a call to it, sorted
    /// by target, then transport.
    pub targets: Vec<TargetMetrics>,
}

impl TargetMetrics {
    /// No calls yet to `target` over `transport`.
    pub(crate) fn idle(target: &str, transport: TransportKind) -> Self {
        Self {
            target: target.to_string(),
            transport,
            calls: 0,
            errors: 0,
            cancelled: 0,
        }
    }
}

impl MetricsSnapshot {
    pub(crate) fn sort_targets(&mut self) {
        self.targets
            .sort_unstable_by(|a, b| (&a.target, index(a.transport)).cmp(&(&b.target, index(b.transport))));
    }

    /// The metrics of `kind`.
    pub fn transport(&self, kind: TransportKind) -> &TransportMetrics {
        &self.transports[index(kind)]
    }
}

/// What a host holds at one moment: its ring pools and, per component served here,
/// its calls in progress and queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostGauges {
    /// The local ring transport's pools (`None` on another transport).
    pub pool: Option<crate::PoolStats>,
    /// One entry per component served here, sorted by id.
    pub components: Vec<ComponentGauges>,
}

/// One served component's calls at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentGauges {
    /// The component's id.
    pub component: String,
    /// Calls it is serving now: each holds one of its `limits.max_instances` permits
    /// and one instance.
    pub instances_in_use: usize,
    /// Calls queued for it on the `ring` transport and not yet taken up (at most
    /// `limits.max_queued` per function).
    pub queued: usize,
}

/// `d` in the unit that keeps three or four digits (`812ns`, `3.41µs`, `12.3ms`).
pub(crate) fn short(d: Duration) -> String {
    let nanos = d.as_nanos();
    let (value, unit) = match nanos {
        0..1_000 => return format!("{nanos}ns"),
        1_000..1_000_000 => (nanos as f64 / 1e3, "µs"),
        1_000_000..1_000_000_000 => (nanos as f64 / 1e6, "ms"),
        _ => (nanos as f64 / 1e9, "s"),
    };
    let decimals = match value {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    };
    format!("{value:.decimals$}{unit}")
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "path", "calls", "errors", "cancelled", "p50", "p90", "p99", "max"
        )?;
        for t in &self.transports {
            let q = |q| t.latency_quantile(q).map_or("-".to_string(), short);
            writeln!(
                f,
                "{:<8} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
                t.transport.as_str(),
                t.calls,
                t.errors,
                t.cancelled,
                q(0.5),
                q(0.9),
                q(0.99),
                q(1.0)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent() {
        let metrics = Metrics::default();
        let target = metrics.target(&Arc::from("c"));
        for micros in 1..=1000 {
            metrics.record(
                TransportKind::Ring,
                &target,
                Duration::from_micros(micros),
                Outcome::Ok,
            );
        }
        metrics.record(
            TransportKind::Ring,
            &target,
            Duration::from_secs(1),
            Outcome::Cancelled,
        );
        metrics.record(
            TransportKind::Ring,
            &target,
            Duration::from_micros(7),
            Outcome::Failed,
        );
        let snapshot = metrics.snapshot();
        let ring = snapshot.transport(TransportKind::Ring);
        assert_eq!((ring.calls, ring.errors, ring.cancelled), (1002, 1, 1));
        assert_eq!(ring.latency_count(), 1001);
        for (q, expected) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = ring.latency_quantile(q).unwrap().as_secs_f64() * 1e6;
            assert!((got - expected).abs() <= expected * 0.01, "q{q}: {got} µs");
        }
        let at_most = ring.latency_at_most(&[Duration::from_micros(100), Duration::from_secs(10)]);
        assert!((99..=102).contains(&at_most[0]), "{at_most:?}");
        assert_eq!(at_most[1], 1001);
        assert_eq!(
            snapshot.targets,
            vec![TargetMetrics {
                target: "c".into(),
                transport: TransportKind::Ring,
                calls: 1002,
                errors: 1,
                cancelled: 1,
            }]
        );
        assert!(
            snapshot
                .transport(TransportKind::Nats)
                .latency_quantile(0.5)
                .is_none()
        );
    }

    #[test]
    fn short_durations_keep_three_digits() {
        assert_eq!(short(Duration::from_nanos(812)), "812ns");
        assert_eq!(short(Duration::from_nanos(3_412)), "3.41µs");
        assert_eq!(short(Duration::from_nanos(12_345_678)), "12.3ms");
        assert_eq!(short(Duration::from_secs(2)), "2.00s");
    }
}
