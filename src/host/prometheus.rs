//! The host's metrics for Prometheus: a [`Collector`] that reads the [`Dispatcher`]'s
//! counters, histograms and gauges on each scrape (nothing is recorded twice).
//!
//! | series | type | labels |
//! |---|---|---|
//! | `wrpc_ring_calls_total` | counter | `transport`, `target` |
//! | `wrpc_ring_call_errors_total` | counter | `transport`, `target` |
//! | `wrpc_ring_calls_cancelled_total` | counter | `transport`, `target` |
//! | `wrpc_ring_call_duration_seconds` | histogram | `transport` |
//! | `wrpc_ring_pool_rings_in_use`, `wrpc_ring_pool_rings_idle` | gauge | |
//! | `wrpc_ring_pool_hits_total`, `wrpc_ring_pool_misses_total` | counter | |
//! | `wrpc_ring_instances_in_use` | gauge | `component` |
//! | `wrpc_ring_queued_calls` | gauge | `component` |

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::Dispatcher;

/// The latency histogram's bucket bounds, in seconds: 1–2.5–5 steps from 1 µs (a ring
/// hop is a few µs) to 10 s (the default `invocation_timeout`).
const BOUNDS: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Dispatcher {
    /// Registers this host's metrics in `registry` (see the table in
    /// `docs/config.md`, "Metrics"): every scrape of the registry reads them afresh.
    ///
    /// # Examples
    ///
    /// ```
    /// use wrpc_ring::host::{Dispatcher, HostConfig};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let host = Dispatcher::new(&HostConfig::default()).await?;
    /// host.link("caller", "example:hello/greeter", "default", "greeter");
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// host.register_metrics(&mut registry);
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry)?;
    /// // A linked target's series exist from the start, at zero.
    /// assert!(text.contains(r#"wrpc_ring_calls_total{transport="nats",target="greeter"} 0"#));
    /// assert!(text.contains(r#"wrpc_ring_call_duration_seconds_count{transport="ring"} 0"#));
    /// # anyhow::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(HostCollector(self.clone())));
    }
}

#[derive(Debug)]
struct HostCollector(Dispatcher);

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = ([(&'static str, String); 2], u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        let labels = [
            (labels[0].0, labels[0].1.as_str()),
            (labels[1].0, labels[1].1.as_str()),
        ];
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn component_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (String, usize)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (component, value) in series {
        let labels = [("component", component.as_str())];
        ConstGauge::new(value as i64).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let metrics = self.0.metrics();
        let gauges = self.0.gauges();
        let by_target = |pick: fn(&super::TargetMetrics) -> u64| {
            metrics.targets.iter().map(move |t| {
                (
                    [
                        ("transport", t.transport.to_string()),
                        ("target", t.target.clone()),
                    ],
                    pick(t),
                )
            })
        };
        counter(
            &mut encoder,
            "wrpc_ring_calls",
            "Calls made through this host's dispatcher, finished (successful or not)",
            by_target(|t| t.calls),
        )?;
        counter(
            &mut encoder,
            "wrpc_ring_call_errors",
            "Calls that failed (invoke, I/O or timeout)",
            by_target(|t| t.errors),
        )?;
        counter(
            &mut encoder,
            "wrpc_ring_calls_cancelled",
            "Calls whose caller gave up before any result arrived",
            by_target(|t| t.cancelled),
        )?;

        let bounds = BOUNDS.map(Duration::from_secs_f64);
        let mut family = encoder.encode_descriptor(
            "wrpc_ring_call_duration",
            "Latency of the calls that were not cancelled, from invoke to the end of the results",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for t in &metrics.transports {
            let at_most = t.latency_at_most(&bounds);
            let mut buckets = Vec::with_capacity(BOUNDS.len() + 1);
            let mut below = 0;
            for (bound, cumulative) in BOUNDS.iter().zip(&at_most) {
                buckets.push((*bound, cumulative - below));
                below = *cumulative;
            }
            buckets.push((f64::MAX, t.latency_count() - below));
            let transport = t.transport.to_string();
            family
                .encode_family(&[("transport", transport.as_str())])?
                .encode_histogram::<NoLabelSet>(
                    t.latency_sum.as_secs_f64(),
                    t.latency_count(),
                    &buckets,
                    None,
                )?;
        }

        let pool = gauges.pool.unwrap_or_default();
        for (name, help, value) in [
            (
                "wrpc_ring_pool_rings_in_use",
                "Rings leased from the pools now",
                pool.in_use,
            ),
            ("wrpc_ring_pool_rings_idle", "Rings idle in the pools", pool.idle),
        ] {
            ConstGauge::new(value as i64).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        for (name, help, value) in [
            (
                "wrpc_ring_pool_hits",
                "Rings leased from the idle list",
                pool.hits,
            ),
            (
                "wrpc_ring_pool_misses",
                "Rings allocated because none was idle",
                pool.misses,
            ),
        ] {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }

        component_gauge(
            &mut encoder,
            "wrpc_ring_instances_in_use",
            "Calls a component is serving now (one instance each, at most limits.max_instances)",
            gauges
                .components
                .iter()
                .map(|c| (c.component.clone(), c.instances_in_use)),
        )?;
        component_gauge(
            &mut encoder,
            "wrpc_ring_queued_calls",
            "Calls queued for a component and not yet taken up (ring transport; at most limits.max_queued per function)",
            gauges.components.iter().map(|c| (c.component.clone(), c.queued)),
        )?;
        Ok(())
    }
}
