//! `wrpc-ring`: a small host that runs WebAssembly components and makes the calls
//! between them over the ring transport (or a baseline), and over NATS across hosts.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::fmt::format::FmtSpan;
use wrpc_ring::host::{HostConfig, TransportKind};

/// Runs WebAssembly components whose calls to each other take a lock-free in-process
/// ring (or a baseline transport), and NATS to reach other hosts.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// How log lines are written to stderr: `text`, or `json` (one object per line,
    /// with the call's span: source, target, function, transport). The level comes
    /// from `WRPC_RING_LOG` (e.g. `debug`; default `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the config's components and links, call an entry export, print the results,
    /// the latency percentiles and the throughput.
    Run(RunArgs),
    /// Load the config's components and serve their exports (locally, and over NATS
    /// for other hosts when `[nats] url` is set) until SIGTERM or Ctrl-C; re-read the
    /// config on SIGHUP; print the metrics when stopped.
    Serve(ServeArgs),
}

/// `wrpc-ring run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The host config (TOML); see docs/config.md.
    pub(crate) config: PathBuf,
    /// The component and export to call, as `COMPONENT INSTANCE.FUNC`
    /// (default: the config's `[entry]`).
    #[arg(long, num_args = 2, value_names = ["COMPONENT", "INSTANCE.FUNC"])]
    pub(crate) invoke: Option<Vec<String>>,
    /// An argument of the call, one per parameter, parsed by the parameter's type
    /// (default: the config's `[entry] args`).
    #[arg(long = "arg", value_name = "VALUE")]
    pub(crate) args: Vec<String>,
    /// How many calls to make.
    #[arg(long, default_value_t = 1)]
    pub(crate) count: u64,
    /// How many calls to have in flight at once.
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrency: u64,
    /// Override the config's transport (`ring`, `duplex`, `mpsc`, `nats`).
    #[arg(long)]
    pub(crate) transport: Option<TransportKind>,
    /// Print one JSON object (docs/run-json.md) instead of text, and no progress bar.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `wrpc-ring serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The host config (TOML); see docs/config.md. Re-read on SIGHUP.
    pub(crate) config: PathBuf,
    /// Override the config's transport (`ring`, `duplex`, `mpsc`, `nats`).
    #[arg(long)]
    pub(crate) transport: Option<TransportKind>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (overrides `[serve]
    /// metrics_addr`); port 0 picks a free port, printed at start.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// How long calls in flight may take to finish on SIGTERM or Ctrl-C before they
    /// are aborted, e.g. `5s` (overrides `[serve] shutdown_timeout`, default 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) shutdown_timeout: Option<Duration>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let config = HostConfig::from_toml(&format!("[serve]\nshutdown_timeout = {s:?}\n")).map_err(|e| {
        let text = e.to_string();
        text.rsplit_once(": ")
            .map_or(text.clone(), |(_, m)| m.to_string())
    })?;
    Ok(config.serve.shutdown_timeout)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WRPC_RING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A call's span (debug level) is written when it closes, with its fields and
    // times: one line per call at `WRPC_RING_LOG=debug`.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::CLOSE);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
}

/// How long the async runtime waits, at exit, for tasks still running (calls aborted
/// by the shutdown deadline) before it drops them anyway.
const EXIT_GRACE: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => cli::run::run(args).await,
            Command::Serve(args) => cli::serve::serve(args).await,
        }
    });
    runtime.shutdown_timeout(EXIT_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
