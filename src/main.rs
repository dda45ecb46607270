//! `wrpc-ring`: a small host that runs WebAssembly components and makes the calls
//! between them over the ring transport (or a baseline), and over NATS across hosts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use wasmtime::component::{Type, Val};
use wrpc_ring::host::{HostConfig, TransportKind};
use wrpc_ring::runtime::{Component, Host};

/// Runs WebAssembly components whose calls to each other take a lock-free in-process
/// ring (or a baseline transport), and NATS to reach other hosts.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the config's components and links, call an entry export, print the results
    /// and latencies per transport.
    Run(RunArgs),
    /// Load the config's components and serve their exports (locally, and over NATS
    /// for other hosts when `[nats] url` is set) until interrupted; then print metrics.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The host config (TOML); see docs/config.md.
    config: PathBuf,
    /// The component and export to call, as `COMPONENT INSTANCE.FUNC`
    /// (default: the config's `[entry]`).
    #[arg(long, num_args = 2, value_names = ["COMPONENT", "INSTANCE.FUNC"])]
    invoke: Option<Vec<String>>,
    /// An argument of the call, one per parameter, parsed by the parameter's type
    /// (default: the config's `[entry] args`).
    #[arg(long = "arg", value_name = "VALUE")]
    args: Vec<String>,
    /// How many calls to make.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// How many calls to have in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: u64,
    /// Override the config's transport (`ring`, `duplex`, `mpsc`, `nats`).
    #[arg(long)]
    transport: Option<TransportKind>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The host config (TOML); see docs/config.md.
    config: PathBuf,
    /// Override the config's transport (`ring`, `duplex`, `mpsc`, `nats`).
    #[arg(long)]
    transport: Option<TransportKind>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WRPC_RING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Serve(args) => serve(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &PathBuf, transport: Option<TransportKind>) -> anyhow::Result<HostConfig> {
    let mut config = HostConfig::load(path)?;
    if let Some(transport) = transport {
        config.transport = transport;
        config.validate()?;
    }
    Ok(config)
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config, args.transport)?;
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
    let (instance_name, func) = function
        .rsplit_once('.')
        .or_else(|| function.rsplit_once('#'))
        .with_context(|| {
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
    println!(
        "{component} {instance_name}#{func}({}) = {}",
        call_args.join(", "),
        format_vals(&first)
    );

    let started = Instant::now();
    let latencies = call_many(
        &target,
        &instance_name,
        &func,
        &params,
        args.count,
        args.concurrency,
    )
    .await;
    let elapsed = started.elapsed();
    report(&config, &host, &latencies, elapsed, args.count, args.concurrency);
    Ok(())
}

/// Calls the export `count` times with `concurrency` calls in flight; returns the
/// latency of every successful call, printing failures.
async fn call_many(
    target: &Arc<Component>,
    instance: &str,
    func: &str,
    params: &[Val],
    count: u64,
    concurrency: u64,
) -> Vec<Duration> {
    let progress = (count >= 1000).then(|| {
        let bar = indicatif::ProgressBar::new(count);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} calls {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(count) {
        let (target, next, failures, progress) =
            (target.clone(), next.clone(), failures.clone(), progress.clone());
        let (instance, func, params) = (instance.to_string(), func.to_string(), params.to_vec());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let start = Instant::now();
                match target.call_values(&instance, &func, &params).await {
                    Ok(_) => latencies.push(start.elapsed()),
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
            latencies
        });
    }
    let mut all = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    while let Some(result) = workers.join_next().await {
        all.extend(result.unwrap_or_default());
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} of {count} calls failed");
    }
    all
}

fn report(
    config: &HostConfig,
    host: &Host,
    latencies: &[Duration],
    elapsed: Duration,
    count: u64,
    concurrency: u64,
) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let pick = |q: f64| -> String {
        if sorted.is_empty() {
            return "-".into();
        }
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        format!("{:?}", sorted[i])
    };
    let throughput = latencies.len() as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "{count} calls, concurrency {concurrency}, transport `{}`: p50 {} p90 {} p99 {} max {}, {throughput:.0} calls/s",
        config.transport,
        pick(0.5),
        pick(0.9),
        pick(0.99),
        pick(1.0)
    );
    println!("component-to-component calls by path:");
    print!("{}", host.dispatcher().metrics());
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config, args.transport)?;
    if config.component.is_empty() {
        bail!("`{}` declares no [[component]] to serve", args.config.display());
    }
    let host = Host::start(&config).await?;
    let ids: Vec<_> = config.component.iter().map(|c| c.id.as_str()).collect();
    let remote = config
        .nats
        .url
        .as_deref()
        .map_or("embedded, no NATS".to_string(), |url| format!("NATS {url}"));
    println!(
        "serving {} over `{}` and {remote}; Ctrl-C to stop",
        ids.join(", "),
        config.transport
    );
    wait_for_shutdown().await;
    println!("component-to-component calls by path:");
    print!("{}", host.dispatcher().metrics());
    Ok(())
}

async fn wait_for_shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Parses one argument per parameter by the parameter's type.
fn parse_args(params: &[Type], args: &[String]) -> anyhow::Result<Vec<Val>> {
    if params.len() != args.len() {
        bail!(
            "expected {} argument(s) ({}), got {}",
            params.len(),
            describe(params),
            args.len()
        );
    }
    params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, (ty, arg))| parse_val(ty, arg).with_context(|| format!("argument {}", i + 1)))
        .collect()
}

fn describe(params: &[Type]) -> String {
    params
        .iter()
        .map(|t| type_name(t).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_name(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        _ => "a compound type",
    }
}

fn parse_val(ty: &Type, s: &str) -> anyhow::Result<Val> {
    let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("`{s}` is not a {}: {e}", type_name(ty));
    Ok(match ty {
        Type::Bool => Val::Bool(s.parse().map_err(|e| bad(&e))?),
        Type::S8 => Val::S8(s.parse().map_err(|e| bad(&e))?),
        Type::U8 => Val::U8(s.parse().map_err(|e| bad(&e))?),
        Type::S16 => Val::S16(s.parse().map_err(|e| bad(&e))?),
        Type::U16 => Val::U16(s.parse().map_err(|e| bad(&e))?),
        Type::S32 => Val::S32(s.parse().map_err(|e| bad(&e))?),
        Type::U32 => Val::U32(s.parse().map_err(|e| bad(&e))?),
        Type::S64 => Val::S64(s.parse().map_err(|e| bad(&e))?),
        Type::U64 => Val::U64(s.parse().map_err(|e| bad(&e))?),
        Type::Float32 => Val::Float32(s.parse().map_err(|e| bad(&e))?),
        Type::Float64 => Val::Float64(s.parse().map_err(|e| bad(&e))?),
        Type::Char => Val::Char(s.parse().map_err(|e| bad(&e))?),
        Type::String => Val::String(s.to_string()),
        other => bail!("parameters of type {other:?} cannot be given on the command line"),
    })
}

fn format_vals(vals: &[Val]) -> String {
    match vals {
        [] => "()".into(),
        [one] => format_val(one),
        many => format!("({})", many.iter().map(format_val).collect::<Vec<_>>().join(", ")),
    }
}

/// Shows a value; long lists are summarised.
fn format_val(val: &Val) -> String {
    match val {
        Val::String(s) => format!("{s:?}"),
        Val::List(items) if items.len() > 16 => {
            let bytes = items.iter().all(|v| matches!(v, Val::U8(_)));
            if bytes {
                format!("<{} bytes>", items.len())
            } else {
                format!("<list of {} items>", items.len())
            }
        }
        Val::List(items) => format!(
            "[{}]",
            items.iter().map(format_val).collect::<Vec<_>>().join(", ")
        ),
        other => format!("{other:?}"),
    }
}
