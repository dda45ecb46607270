//! `wrpc-ring run`: calls an export `--count` times, `--concurrency` at once, and
//! reports the latency percentiles (HdrHistogram, 3 significant digits), the
//! throughput and the calls per path, as text or as one JSON object
//! (docs/run-json.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use wasmtime::component::Val;
use wrpc_ring::host::{HostConfig, MetricsSnapshot};
use wrpc_ring::runtime::{Component, Host};

use super::values::{format_vals, parse_args};
use crate::RunArgs;

/// The longest call latency told apart, in nanoseconds (longer ones count as this).
const HIGHEST_NANOS: u64 = 3_600 * 1_000_000_000;

/// The reported percentiles: name and quantile.
const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p999", 0.999),
    ("max", 1.0),
];

/// What `call_many` measured.
struct Measured {
    latency: Histogram<u64>,
    failed: u64,
    elapsed: Duration,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = super::load_config(&args.config, args.transport)?;
    let (component, function, call_args) = match (&args.invoke, &config.entry) {
        (Some(invoke), _) => (invoke[0].clone(), invoke[1].clone(), args.args.clone()),
        (None, Some(entry)) => {
            let call_args = if args.args.is_empty() {
                entry.args.clone()
            } else {
                args.args.clone()
            };
            (entry.component.clone(), entry.function.clone(), call_args)
        }
        (None, None) => {
            bail!("nothing to call: pass `--invoke COMPONENT INSTANCE.FUNC` or add an [entry] to the config")
        }
    };
    if args.count == 0 || args.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let (instance_name, func) = split_function(&function).with_context(|| {
        format!("`{function}` is not INSTANCE.FUNC (e.g. `wrpc-ring:examples/greeter.greet`)")
    })?;

    let host = Host::start(&config).await?;
    let target = host.component(&component)?.clone();
    let export = target.export(instance_name, func)?;
    let params = parse_args(export.params(), &call_args)
        .with_context(|| format!("bad arguments for `{instance_name}#{func}`"))?;
    let (instance_name, func) = (export.interface().to_string(), export.name().to_string());

    // The first call shows the result (and fails fast on a bad setup).
    let first = target.call_values(&instance_name, &func, &params).await?;
    let result = format_vals(&first);
    if !args.json {
        println!(
            "{component} {instance_name}#{func}({}) = {result}",
            call_args.join(", ")
        );
    }

    let measured = call_many(&target, &instance_name, &func, &params, &args).await;
    let metrics = host.dispatcher().metrics();
    if args.json {
        let report = json_report(
            &config, &args, &component, &function, &result, &measured, &metrics,
        );
        println!("{report}");
    } else {
        print_report(&config, &args, &measured, &metrics);
    }
    outcome(measured.failed, args.count)
}

/// The run's exit: an error (exit status 1) when any measured call failed, after the
/// report, so that a script cannot take a run of failures for a measurement.
fn outcome(failed: u64, count: u64) -> anyhow::Result<()> {
    if failed > 0 {
        bail!("{failed} of {count} calls failed (the figures above are of the calls that succeeded)");
    }
    Ok(())
}

/// Calls the export `count` times with `concurrency` calls in flight.
async fn call_many(
    target: &Arc<Component>,
    instance: &str,
    func: &str,
    params: &[Val],
    args: &RunArgs,
) -> Measured {
    let (count, concurrency) = (args.count, args.concurrency);
    let progress = (count >= 1000 && !args.json).then(|| {
        let bar = indicatif::ProgressBar::new(count);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} calls {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(count) {
        let (target, next, failures, progress) =
            (target.clone(), next.clone(), failures.clone(), progress.clone());
        let (instance, func, params) = (instance.to_string(), func.to_string(), params.to_vec());
        workers.spawn(async move {
            let mut latency = new_histogram();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let start = Instant::now();
                // Join the back of the run queue first, as the call of an independent
                // client would. Without this, the task that the previous call's last
                // wake-up just resumed starts its next call at once, ahead of the
                // calls already waiting for the worker (docs/benchmarks.md, "The
                // example host under load"). The wait counts in the latency.
                tokio::task::yield_now().await;
                match target.call_values(&instance, &func, &params).await {
                    Ok(_) => {
                        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        latency.saturating_record(nanos.max(1));
                    }
                    Err(err) => {
                        if failures.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("call failed: {err:#}");
                        }
                    }
                }
                if let Some(bar) = &progress {
                    bar.inc(1);
                }
            }
            latency
        });
    }
    let mut latency = new_histogram();
    while let Some(result) = workers.join_next().await {
        match result {
            // Same bounds and precision on both sides: adding cannot fail.
            Ok(worker) => {
                let _ = latency.add(worker);
            }
            // Its latencies are lost with it: say so rather than report fewer calls.
            Err(err) => eprintln!("a client task ended early, its calls' latencies are lost: {err}"),
        }
    }
    let elapsed = started.elapsed();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let failed = failures.load(Ordering::Relaxed);
    Measured {
        latency,
        failed,
        elapsed,
    }
}

fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds (1 ≤ low, high ≥ 2·low, 3 digits): this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_NANOS, 3).expect("valid histogram bounds")
}

fn quantile(latency: &Histogram<u64>, q: f64) -> Option<Duration> {
    (!latency.is_empty()).then(|| Duration::from_nanos(latency.value_at_quantile(q)))
}

fn throughput(measured: &Measured) -> f64 {
    measured.latency.len() as f64 / measured.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn print_report(config: &HostConfig, args: &RunArgs, measured: &Measured, metrics: &MetricsSnapshot) {
    let shown: Vec<String> = PERCENTILES
        .iter()
        .map(|(name, q)| {
            let value = quantile(&measured.latency, *q).map_or("-".to_string(), |d| format!("{d:.2?}"));
            format!("{name} {value}")
        })
        .collect();
    println!(
        "{} calls, concurrency {}, transport `{}`: {}; {:.0} calls/s{}",
        args.count,
        args.concurrency.min(args.count),
        config.transport,
        shown.join(" "),
        throughput(measured),
        if measured.failed > 0 {
            format!(" ({} failed)", measured.failed)
        } else {
            String::new()
        }
    );
    println!("component-to-component calls by path:");
    print!("{metrics}");
}

fn micros(d: Option<Duration>) -> serde_json::Value {
    d.map_or(serde_json::Value::Null, |d| (d.as_secs_f64() * 1e6).into())
}

fn json_report(
    config: &HostConfig,
    args: &RunArgs,
    component: &str,
    function: &str,
    result: &str,
    measured: &Measured,
    metrics: &MetricsSnapshot,
) -> serde_json::Value {
    let mut latency = serde_json::Map::new();
    for (name, q) in PERCENTILES {
        latency.insert(name.to_string(), micros(quantile(&measured.latency, q)));
    }
    latency.insert(
        "mean".into(),
        if measured.latency.is_empty() {
            serde_json::Value::Null
        } else {
            (measured.latency.mean() / 1e3).into()
        },
    );
    let paths: Vec<_> = metrics
        .transports
        .iter()
        .map(|t| {
            serde_json::json!({
                "transport": t.transport.as_str(),
                "calls": t.calls,
                "errors": t.errors,
                "cancelled": t.cancelled,
                "latency_us": {
                    "p50": micros(t.latency_quantile(0.5)),
                    "p99": micros(t.latency_quantile(0.99)),
                },
            })
        })
        .collect();
    let targets: Vec<_> = metrics
        .targets
        .iter()
        .map(|t| {
            serde_json::json!({
                "target": t.target,
                "transport": t.transport.as_str(),
                "calls": t.calls,
                "errors": t.errors,
                "cancelled": t.cancelled,
            })
        })
        .collect();
    serde_json::json!({
        "schema": 1,
        "component": component,
        "function": function,
        "result": result,
        "count": args.count,
        "concurrency": args.concurrency.min(args.count),
        "transport": config.transport.as_str(),
        "ok": measured.latency.len(),
        "failed": measured.failed,
        "elapsed_s": measured.elapsed.as_secs_f64(),
        "throughput_per_s": throughput(measured),
        "latency_us": latency,
        "paths": paths,
        "targets": targets,
    })
}

/// `INSTANCE#FUNC` or `INSTANCE.FUNC` split at its last `#`, or else at its last `.`
/// (so that a versioned interface, `ns:pkg/iface@0.1.0#func`, keeps its dots).
fn split_function(function: &str) -> Option<(&str, &str)> {
    function.rsplit_once('#').or_else(|| function.rsplit_once('.'))
}

#[cfg(test)]
mod tests {
    use super::{outcome, split_function};

    #[test]
    fn a_run_with_failed_calls_ends_in_an_error() {
        assert!(outcome(0, 10).is_ok());
        let err = outcome(3, 10).unwrap_err().to_string();
        assert!(err.starts_with("3 of 10 calls failed"), "{err}");
    }

    #[test]
    fn a_function_splits_at_its_hash_before_any_dot() {
        assert_eq!(
            split_function("wrpc-ring:examples/greeter.greet"),
            Some(("wrpc-ring:examples/greeter", "greet"))
        );
        assert_eq!(
            split_function("ns:pkg/greeter@0.1.0#greet"),
            Some(("ns:pkg/greeter@0.1.0", "greet"))
        );
        assert_eq!(split_function("greet"), None);
    }
}
