//! `wrpc-ring serve`: serves the config's components until SIGTERM or Ctrl-C, with
//! a Prometheus endpoint, relinking on SIGHUP and a graceful shutdown.

use anyhow::bail;
use wrpc_ring::host::HostConfig;
use wrpc_ring::runtime::Host;

use crate::ServeArgs;

/// What the signal loop was told.
enum Signal {
    Reload,
    Stop(&'static str),
}

#[cfg(unix)]
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            hangup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// The next stop signal; reloads asked for meanwhile are ignored.
    async fn next_stop(&mut self) -> &'static str {
        loop {
            if let Signal::Stop(why) = self.next().await {
                return why;
            }
        }
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hangup.recv() => Signal::Reload,
            _ = self.terminate.recv() => Signal::Stop("SIGTERM"),
            _ = tokio::signal::ctrl_c() => Signal::Stop("Ctrl-C"),
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop("Ctrl-C")
    }

    async fn next_stop(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// The config, with the command line's overrides.
fn config(args: &ServeArgs) -> anyhow::Result<HostConfig> {
    let mut config = super::load_config(&args.config, args.transport)?;
    if let Some(addr) = args.metrics_addr {
        config.serve.metrics_addr = Some(addr);
    }
    if let Some(timeout) = args.shutdown_timeout {
        config.serve.shutdown_timeout = timeout;
    }
    config.validate()?;
    Ok(config)
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    if config.component.is_empty() {
        bail!("`{}` declares no [[component]] to serve", args.config.display());
    }
    // Listen before serving, so that a signal sent once "serving" is printed is
    // never missed.
    let mut signals = Signals::new()?;
    let mut host = Host::start(&config).await?;
    let metrics = match config.serve.metrics_addr {
        Some(addr) => {
            let mut registry = prometheus_client::registry::Registry::default();
            host.dispatcher().register_metrics(&mut registry);
            let (bound, task) = super::http::serve_metrics(addr, registry).await?;
            println!("metrics at http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };
    let mut ids: Vec<_> = config.component.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    let remote = config
        .nats
        .url
        .as_deref()
        .map_or("embedded, no NATS".to_string(), |url| format!("NATS {url}"));
    println!(
        "serving {} over `{}` and {remote}; SIGHUP reloads the config, SIGTERM or Ctrl-C stops",
        ids.join(", "),
        config.transport
    );

    let why = loop {
        match signals.next().await {
            Signal::Reload => reload(&args, &mut host).await,
            Signal::Stop(why) => break why,
        }
    };

    let timeout = host.config().serve.shutdown_timeout;
    let in_flight = total(&host.calls_in_flight());
    println!(
        "{why}: stopped accepting calls from other hosts; waiting up to {timeout:?} for {in_flight} call(s) in flight \
         (SIGTERM or Ctrl-C again: stop waiting)"
    );
    // A second stop signal ends the wait: an operator can always stop the host.
    let left = tokio::select! {
        left = host.drain(timeout) => left,
        again = signals.next_stop() => {
            eprintln!("shutdown: {again} again: not waiting for the calls in flight");
            host.calls_in_flight()
        }
    };
    if !left.is_empty() {
        let each: Vec<_> = left.iter().map(|(id, n)| format!("{id}: {n}")).collect();
        eprintln!(
            "shutdown: {} call(s) still in flight after shutdown_timeout {timeout:?} ({}); aborting them",
            total(&left),
            each.join(", ")
        );
    }
    println!("component-to-component calls by path:");
    print!("{}", host.dispatcher().metrics());
    drop(host);
    if let Some(task) = metrics {
        task.abort();
    }
    Ok(())
}

fn total(calls: &[(String, usize)]) -> usize {
    calls.iter().map(|(_, n)| n).sum()
}

/// Re-reads the config and applies it; a bad one is reported and changes nothing.
async fn reload(args: &ServeArgs, host: &mut Host) {
    let path = args.config.display();
    let applied = match config(args) {
        Ok(config) => {
            let unchanged_serve = config.serve.metrics_addr == host.config().serve.metrics_addr;
            match host.reload(&config).await {
                Ok(summary) => Ok((summary, unchanged_serve)),
                Err(err) => Err(err),
            }
        }
        Err(err) => Err(err),
    };
    match applied {
        Ok((summary, unchanged_serve)) => {
            println!("reloaded `{path}`: {summary}");
            if !unchanged_serve {
                eprintln!("note: a new `[serve] metrics_addr` takes effect at the next start");
            }
        }
        Err(err) => eprintln!("reload of `{path}` rejected, the running config stays in force: {err:#}"),
    }
}
