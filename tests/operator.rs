//! What an operator does with the real `wrpc-ring` binary: scrape `/metrics` with a
//! real HTTP client while calls run, read `run --json`, relink with SIGHUP, stop with
//! SIGTERM while calls are in flight, and read JSON logs. Calls come from a real wRPC
//! NATS client through a real `nats-server`, as from another host.
#![cfg(feature = "cli")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cli::{Line, STARTUP, Served, component_path, root, run, scratch, text};
use common::nats::NatsServer;
use common::tls::Pki;
use wrpc_transport::InvokeExt as _;

const NO_PATHS: &[&[Option<usize>]] = &[];

/// The longest a single call from a test may take before the test fails.
const CALL_LIMIT: Duration = Duration::from_secs(60);

fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn components(list: &[(&str, &str)]) -> String {
    list.iter()
        .map(|(id, file)| {
            format!(
                "[[component]]\nid = \"{id}\"\npath = \"{}\"\n",
                component_path(file)
            )
        })
        .collect()
}

fn stage_links(list: &[(&str, &str)]) -> String {
    list.iter()
        .map(|(source, target)| {
            format!(
                "[[link]]\nsource = \"{source}\"\ninterface = \"wrpc-ring:examples/stage\"\ntarget = \"{target}\"\n"
            )
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A wRPC client on NATS for the component `id` served by a host of lattice `default`.
async fn client(nats: &NatsServer, id: &str) -> wrpc_transport_nats::Client {
    let conn = async_nats::connect(nats.url()).await.unwrap();
    wrpc_transport_nats::Client::new(conn, format!("default.{id}"), None)
        .await
        .unwrap()
}

async fn stage(client: &wrpc_transport_nats::Client, input: &str) -> anyhow::Result<String> {
    let call = client.invoke_values_blocking::<_, _, (String,)>(
        None,
        "wrpc-ring:examples/stage",
        "run",
        (input.to_string(),),
        NO_PATHS,
    );
    let (out,) = tokio::time::timeout(CALL_LIMIT, call).await??;
    Ok(out)
}

async fn sleep_call(client: &wrpc_transport_nats::Client, ms: u32) -> anyhow::Result<u32> {
    let (out,) = client
        .invoke_values_blocking::<_, _, (u32,)>(None, "wrpc-ring:examples/faults", "sleep", (ms,), NO_PATHS)
        .await?;
    Ok(out)
}

/// Starts `faults.sleep(ms)` on the component `slow` over NATS, as a caller on another
/// host would; the caller gives up after `limit`.
fn sleep_in_flight(
    rt: &tokio::runtime::Runtime,
    nats: &NatsServer,
    ms: u32,
    limit: Duration,
) -> tokio::task::JoinHandle<Result<anyhow::Result<u32>, tokio::time::error::Elapsed>> {
    let url = nats.url();
    rt.spawn(async move {
        let conn = async_nats::connect(url).await.unwrap();
        let slow = wrpc_transport_nats::Client::new(conn, "default.slow", None)
            .await
            .unwrap();
        tokio::time::timeout(limit, sleep_call(&slow, ms)).await
    })
}

/// `name{labels} value` lines of a Prometheus text exposition, by `name{labels}`.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn scrape(url: &str) -> HashMap<String, f64> {
    let mut response = ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let body = response.body_mut().read_to_string().unwrap();
    assert!(body.ends_with("# EOF\n"), "not a complete exposition:\n{body}");
    samples(&body)
}

fn metrics_url(served: &mut Served) -> String {
    let line = served.seen_or_wait_for_out("metrics at ");
    line.trim_start_matches("metrics at ").trim().to_string()
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample `{key}` in {:#?}", samples.keys().collect::<Vec<_>>()))
}

/// A pipeline a → b → c over the ring, called from NATS while `/metrics` is scraped:
/// every scrape is consistent (counts only grow, never past the calls made), and at
/// the end the calls per target and the histogram count add up to the calls made.
#[test]
fn metrics_endpoint_adds_up_to_the_calls_made() {
    const CALLS: usize = 40;
    let nats = NatsServer::start();
    let dir = scratch("metrics", &[]);
    let config = write_config(
        &dir,
        "host.toml",
        &format!(
            "[nats]\nurl = \"{}\"\n{}{}",
            nats.url(),
            components(&[("a", "pipeline-a"), ("b", "pipeline-b"), ("c", "pipeline-c")]),
            stage_links(&[("a", "b"), ("b", "c")])
        ),
    );
    let mut served = Served::start(&config, &["--metrics-addr", "127.0.0.1:0"]);
    let url = metrics_url(&mut served);

    // Before any call, every linked target's series exists, at zero.
    let before = scrape(&url);
    assert_eq!(
        value(&before, r#"wrpc_ring_calls_total{transport="ring",target="b"}"#),
        0.0
    );
    assert_eq!(
        value(&before, r#"wrpc_ring_calls_total{transport="ring",target="c"}"#),
        0.0
    );

    let rt = runtime();
    let calls = rt.spawn({
        let url = nats.url();
        async move {
            let conn = async_nats::connect(url).await.unwrap();
            let client = wrpc_transport_nats::Client::new(conn, "default.a", None)
                .await
                .unwrap();
            let mut tasks = tokio::task::JoinSet::new();
            let client = std::sync::Arc::new(client);
            for i in 0..CALLS {
                let client = client.clone();
                tasks.spawn(async move { stage(&client, &format!("x{i}")).await });
                if i % 4 == 3 {
                    // Four at a time, so the scrapes below see the calls progress.
                    while !tasks.is_empty() {
                        let out = tasks.join_next().await.unwrap().unwrap().unwrap();
                        assert!(out.starts_with("a(b(c(x"), "{out}");
                    }
                }
            }
        }
    });
    let key = r#"wrpc_ring_calls_total{transport="ring",target="b"}"#;
    let mut last = 0.0;
    let mut scrapes = 0;
    while !calls.is_finished() {
        let now = scrape(&url);
        let seen = value(&now, key);
        assert!(
            seen >= last && seen <= CALLS as f64,
            "{key} went from {last} to {seen}"
        );
        last = seen;
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.block_on(calls).unwrap();

    // A caller has its results before the callee's task has given back its
    // instance permit and rings, so the gauges settle a moment after the last
    // call returns: scrape until they read zero, and assert on that scrape.
    let gauges: Vec<String> = ["a", "b", "c"]
        .iter()
        .flat_map(|c| {
            [
                format!(r#"wrpc_ring_instances_in_use{{component="{c}"}}"#),
                format!(r#"wrpc_ring_queued_calls{{component="{c}"}}"#),
            ]
        })
        .chain(["wrpc_ring_pool_rings_in_use".to_string()])
        .collect();
    let settle_by = Instant::now() + STARTUP;
    let after = loop {
        let now = scrape(&url);
        if gauges.iter().all(|g| value(&now, g) == 0.0) || Instant::now() > settle_by {
            break now;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let n = CALLS as f64;
    for target in ["b", "c"] {
        assert_eq!(
            value(
                &after,
                &format!(r#"wrpc_ring_calls_total{{transport="ring",target="{target}"}}"#)
            ),
            n
        );
        assert_eq!(
            value(
                &after,
                &format!(r#"wrpc_ring_call_errors_total{{transport="ring",target="{target}"}}"#)
            ),
            0.0
        );
        assert_eq!(
            value(
                &after,
                &format!(r#"wrpc_ring_calls_cancelled_total{{transport="ring",target="{target}"}}"#)
            ),
            0.0
        );
    }
    assert_eq!(
        value(
            &after,
            r#"wrpc_ring_call_duration_seconds_count{transport="ring"}"#
        ),
        2.0 * n
    );
    assert_eq!(
        value(
            &after,
            r#"wrpc_ring_call_duration_seconds_bucket{le="+Inf",transport="ring"}"#
        ),
        2.0 * n
    );
    assert!(value(&after, r#"wrpc_ring_call_duration_seconds_sum{transport="ring"}"#) > 0.0);
    assert_eq!(
        value(
            &after,
            r#"wrpc_ring_call_duration_seconds_count{transport="nats"}"#
        ),
        0.0
    );
    // Every ring is back in its pool, and the pool was used.
    assert_eq!(value(&after, "wrpc_ring_pool_rings_in_use"), 0.0);
    assert!(value(&after, "wrpc_ring_pool_hits_total") + value(&after, "wrpc_ring_pool_misses_total") > 0.0);
    for component in ["a", "b", "c"] {
        assert_eq!(
            value(
                &after,
                &format!(r#"wrpc_ring_instances_in_use{{component="{component}"}}"#)
            ),
            0.0
        );
        assert_eq!(
            value(
                &after,
                &format!(r#"wrpc_ring_queued_calls{{component="{component}"}}"#)
            ),
            0.0
        );
    }
    assert!(scrapes > 0);

    // A path other than /metrics is a 404, not the metrics.
    let base = url.trim_end_matches("/metrics");
    match ureq::get(&format!("{base}/other")).call() {
        Err(ureq::Error::StatusCode(404)) => {}
        other => panic!("expected 404, got {other:?}"),
    }
}

/// `run --json` prints one JSON object with the documented fields (docs/run-json.md).
#[test]
fn run_json_is_one_object_with_the_documented_fields() {
    let config = root().join("examples/host.toml");
    let out = run(&[
        "run",
        config.to_str().unwrap(),
        "--count",
        "60",
        "--concurrency",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{stdout}"));
    assert_eq!(report["schema"], 1);
    assert_eq!(report["component"], "pipeline-a");
    assert_eq!(report["function"], "wrpc-ring:examples/stage.run");
    assert_eq!(report["result"], "\"a(b(c(x)))\"");
    assert_eq!(report["count"], 60);
    assert_eq!(report["concurrency"], 3);
    assert_eq!(report["transport"], "ring");
    assert_eq!(report["ok"], 60);
    assert_eq!(report["failed"], 0);
    assert!(report["throughput_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["elapsed_s"].as_f64().unwrap() > 0.0);
    let latency = &report["latency_us"];
    let at = |name: &str| {
        latency[name]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_us.{name}: {latency}"))
    };
    assert!(at("p50") > 0.0 && at("p50") <= at("p90") && at("p90") <= at("p99"));
    assert!(at("p99") <= at("p999") && at("p999") <= at("max"));
    assert!(at("mean") > 0.0);
    // 61 calls of a (the first shows the result), each a → b and b → c over the ring.
    let paths = report["paths"].as_array().unwrap();
    let ring = paths.iter().find(|p| p["transport"] == "ring").unwrap();
    assert_eq!(ring["calls"], 122);
    assert_eq!(ring["errors"], 0);
    assert!(ring["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    let targets = report["targets"].as_array().unwrap();
    for target in ["pipeline-b", "pipeline-c"] {
        let t = targets
            .iter()
            .find(|t| t["target"] == target)
            .unwrap_or_else(|| panic!("{target} in {targets:?}"));
        assert_eq!(t["calls"], 61);
        assert_eq!(t["transport"], "ring");
    }
}

/// SIGHUP re-reads the config: links retargeted, components added and removed, in
/// one step; a call in flight on a removed component still finishes; a bad config is
/// rejected and the running one stays in force.
#[test]
fn sighup_relinks_and_a_bad_config_changes_nothing() {
    let nats = NatsServer::start();
    let dir = scratch("sighup", &[]);
    let head = format!(
        "[nats]\nurl = \"{}\"\n[limits]\ninvocation_timeout = \"60s\"\n",
        nats.url()
    );
    let before = format!(
        "{head}{}{}",
        components(&[
            ("a", "pipeline-a"),
            ("b", "pipeline-b"),
            ("c", "pipeline-c"),
            ("slow", "faults")
        ]),
        stage_links(&[("a", "b"), ("b", "c")])
    );
    let config = write_config(&dir, "host.toml", &before);
    let mut served = Served::start(&config, &[]);
    let rt = runtime();

    rt.block_on(async {
        let a = client(&nats, "a").await;
        assert_eq!(stage(&a, "x").await.unwrap(), "a(b(c(x)))");
    });
    // A call that stays in flight across the reload, on a component it removes.
    let in_flight = sleep_in_flight(&rt, &nats, 3000, CALL_LIMIT);
    std::thread::sleep(Duration::from_millis(500));

    let after = format!(
        "{head}{}{}",
        components(&[("a", "pipeline-a"), ("c", "pipeline-c"), ("greeter", "greeter")]),
        stage_links(&[("a", "c")])
    );
    std::fs::write(&config, after).unwrap();
    served.signal("-HUP");
    let reloaded = served.wait_for_out("reloaded");
    assert!(
        reloaded.contains("added: greeter") && reloaded.contains("removed: b, slow"),
        "{reloaded}"
    );
    assert!(
        reloaded.contains("links added: 0, removed: 1, retargeted: 1"),
        "{reloaded}"
    );

    rt.block_on(async {
        let a = client(&nats, "a").await;
        assert_eq!(stage(&a, "y").await.unwrap(), "a(c(y))");
        let greeter = client(&nats, "greeter").await;
        let (hello,) = tokio::time::timeout(
            CALL_LIMIT,
            greeter.invoke_values_blocking::<_, _, (String,)>(
                None,
                "wrpc-ring:examples/greeter",
                "greet",
                ("ops".to_string(),),
                NO_PATHS,
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(hello, "Hello, ops!");
        // `b` is gone from this host: nobody answers for it.
        let b = client(&nats, "b").await;
        assert!(stage(&b, "z").await.is_err());
    });
    let slept = rt.block_on(in_flight).unwrap();
    assert_eq!(slept.expect("the call in flight hung").unwrap(), 3000);

    // A config that does not parse is rejected; the one in force stays.
    std::fs::write(&config, "[[component]]\nid = ").unwrap();
    served.signal("-HUP");
    let rejected = served.wait_for(
        "the rejection",
        STARTUP,
        |l| matches!(l, Line::Err(t) if t.contains("rejected")),
    );
    let Line::Err(rejected) = rejected else {
        unreachable!()
    };
    assert!(rejected.contains("stays in force"), "{rejected}");
    // A config that changes a table needing a restart is rejected too, naming it.
    std::fs::write(&config, format!("transport = \"duplex\"\n{before}")).unwrap();
    served.signal("-HUP");
    let rejected = served.wait_for(
        "the second rejection",
        STARTUP,
        |l| matches!(l, Line::Err(t) if t.contains("rejected")),
    );
    let Line::Err(rejected) = rejected else {
        unreachable!()
    };
    assert!(
        rejected.contains("`transport` changed") && rejected.contains("restart"),
        "{rejected}"
    );
    rt.block_on(async {
        let a = client(&nats, "a").await;
        assert_eq!(stage(&a, "w").await.unwrap(), "a(c(w))");
    });

    served.signal("-TERM");
    assert!(served.wait_exit(STARTUP).success(), "{}", served.printed());
}

fn faults_host(dir: &Path, nats: &NatsServer, shutdown_timeout: &str) -> PathBuf {
    write_config(
        dir,
        "host.toml",
        &format!(
            "[nats]\nurl = \"{}\"\n[limits]\ninvocation_timeout = \"120s\"\n[serve]\nshutdown_timeout = \"{shutdown_timeout}\"\n{}",
            nats.url(),
            components(&[("slow", "faults")])
        ),
    )
}

/// Waits until the host's `/metrics` shows `n` calls in progress on `component`.
fn wait_in_use(url: &str, component: &str, n: f64) {
    let key = format!(r#"wrpc_ring_instances_in_use{{component="{component}"}}"#);
    let deadline = Instant::now() + STARTUP;
    while value(&scrape(url), &key) != n {
        assert!(Instant::now() < deadline, "{key} never reached {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `faults` host served with `shutdown_timeout`, with one `sleep(ms)` call in flight
/// on it from another host (whose caller gives up after `limit`).
struct CallInFlight {
    served: Served,
    rt: tokio::runtime::Runtime,
    call: tokio::task::JoinHandle<Result<anyhow::Result<u32>, tokio::time::error::Elapsed>>,
    _nats: NatsServer,
}

impl CallInFlight {
    fn start(name: &str, shutdown_timeout: &str, ms: u32, limit: Duration) -> Self {
        let nats = NatsServer::start();
        let dir = scratch(name, &[]);
        let config = faults_host(&dir, &nats, shutdown_timeout);
        let mut served = Served::start(&config, &["--metrics-addr", "127.0.0.1:0"]);
        let url = metrics_url(&mut served);
        let rt = runtime();
        let call = sleep_in_flight(&rt, &nats, ms, limit);
        wait_in_use(&url, "slow", 1.0);
        Self {
            served,
            rt,
            call,
            _nats: nats,
        }
    }

    /// The call's outcome: `None` if its caller gave up.
    fn outcome(self) -> Option<anyhow::Result<u32>> {
        self.rt.block_on(self.call).unwrap().ok()
    }
}

/// SIGTERM with a call in flight: the host stops accepting, lets the call finish,
/// prints its metrics and exits 0.
#[test]
fn sigterm_lets_the_calls_in_flight_finish() {
    let mut host = CallInFlight::start("sigterm-finish", "60s", 5000, CALL_LIMIT);
    host.served.signal("-TERM");
    let slept = host.rt.block_on(&mut host.call).unwrap();
    assert_eq!(slept.expect("the call in flight hung").unwrap(), 5000);
    let status = host.served.wait_exit(STARTUP);
    let printed = host.served.printed();
    assert!(status.success(), "exit {status}: {printed}");
    assert!(printed.contains("SIGTERM: stopped accepting"), "{printed}");
    assert!(printed.contains("for 1 call(s) in flight"), "{printed}");
    assert!(printed.contains("calls by path"), "{printed}");
    assert!(!printed.contains("aborting"), "{printed}");
}

/// SIGTERM with a call that outlasts `shutdown_timeout`: the host says which calls
/// it aborts, and still prints its metrics and exits 0; the call does not succeed.
#[test]
fn sigterm_aborts_the_calls_past_the_shutdown_timeout() {
    // Far longer than the shutdown timeout; the caller gives up after 20 s.
    let mut host = CallInFlight::start("sigterm-abort", "300ms", 100_000, Duration::from_secs(20));
    host.served.signal("-TERM");
    let status = host.served.wait_exit(STARTUP);
    let printed = host.served.printed();
    assert!(status.success(), "exit {status}: {printed}");
    assert!(
        printed.contains("1 call(s) still in flight after shutdown_timeout 300ms (slow: 1); aborting them"),
        "{printed}"
    );
    assert!(printed.contains("calls by path"), "{printed}");
    if let Some(Ok(ms)) = host.outcome() {
        panic!("an aborted call returned {ms}");
    }
}

/// A second SIGTERM while the host waits for its calls in flight ends the wait: the
/// host aborts them and exits 0 at once, instead of waiting out `shutdown_timeout`.
#[test]
fn a_second_sigterm_stops_waiting_for_the_calls_in_flight() {
    let mut host = CallInFlight::start("sigterm-twice", "600s", 100_000, Duration::from_secs(20));
    host.served.signal("-TERM");
    host.served.wait_for_out("SIGTERM: stopped accepting");
    host.served.signal("-TERM");
    let status = host.served.wait_exit(STARTUP);
    let printed = host.served.printed();
    assert!(status.success(), "exit {status}: {printed}");
    assert!(
        printed.contains("SIGTERM again: not waiting for the calls in flight"),
        "{printed}"
    );
    assert!(printed.contains("1 call(s) still in flight"), "{printed}");
    assert!(printed.contains("calls by path"), "{printed}");
    if let Some(Ok(ms)) = host.outcome() {
        panic!("an aborted call returned {ms}");
    }
}

/// `--log-format json` writes one JSON object per line; at debug level each call's
/// span carries its source, target, function and transport.
#[test]
fn json_logs_carry_the_call_span() {
    let config = root().join("examples/host.toml");
    let out = common::cli::bin()
        .args([
            "--log-format",
            "json",
            "run",
            config.to_str().unwrap(),
            "--count",
            "3",
        ])
        .env("WRPC_RING_LOG", "wrpc_ring=debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let invoke = lines
        .iter()
        .find(|l| l["span"]["name"] == "invoke" && l["span"]["target"] == "pipeline-b")
        .unwrap_or_else(|| panic!("no invoke span of a call to pipeline-b in:\n{stderr}"));
    let span = &invoke["span"];
    assert_eq!(span["source"], "pipeline-a", "{span}");
    assert_eq!(span["function"], "run", "{span}");
    assert_eq!(span["transport"], "ring", "{span}");
    assert_eq!(span["interface"], "wrpc-ring:examples/stage", "{span}");
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["name"] == "serve" && l["span"]["component"] == "pipeline-c"),
        "no serve span for pipeline-c in:\n{stderr}"
    );
}

/// `serve` on a NATS server that wants TLS (from a CA made here) and a token: with the
/// right token from a file it serves, and a client on the same terms calls it; with a
/// wrong token it fails at start, naming the key, never printing either token.
#[test]
fn serve_with_a_token_over_tls_and_a_wrong_token_fails_at_start() {
    const TOKEN: &str = "s3cret-token-0f9a";
    const WRONG: &str = "wrong-token-77c1";
    let dir = scratch("tls-token", &[]);
    let pki = Pki::new("wrpc-ring operator test CA");
    let (cert, key) = pki.issue(&["127.0.0.1", "localhost"]);
    let ca = write_config(&dir, "ca.pem", &pki.ca_pem);
    let server_config = write_config(
        &dir,
        "nats.conf",
        &format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  timeout: 5\n}}\nauthorization {{\n  token: {TOKEN:?}\n}}\n",
            write_config(&dir, "server.pem", &cert),
            write_config(&dir, "server-key.pem", &key),
        ),
    );
    let nats = NatsServer::start_with_config(&server_config);
    let host = |token: &str| {
        write_config(&dir, "token", token);
        write_config(
            &dir,
            "host.toml",
            &format!(
                "[nats]\nurl = \"{}\"\ntoken_file = \"token\"\n[nats.tls]\nca_file = {ca:?}\n{}",
                nats.url(),
                components(&[("greeter", "greeter")])
            ),
        )
    };

    let config = host(TOKEN);
    let mut served = Served::start(&config, &[]);
    let rt = runtime();
    rt.block_on(async {
        let conn = async_nats::ConnectOptions::with_token(TOKEN.into())
            .add_root_certificates(ca.clone())
            .require_tls(true)
            .connect(nats.url())
            .await
            .unwrap();
        let greeter = wrpc_transport_nats::Client::new(conn, "default.greeter", None)
            .await
            .unwrap();
        let (hello,) = tokio::time::timeout(
            CALL_LIMIT,
            greeter.invoke_values_blocking::<_, _, (String,)>(
                None,
                "wrpc-ring:examples/greeter",
                "greet",
                ("tls".to_string(),),
                NO_PATHS,
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(hello, "Hello, tls!");
    });
    served.signal("-TERM");
    assert!(served.wait_exit(STARTUP).success(), "{}", served.printed());
    assert!(!served.printed().contains(TOKEN), "{}", served.printed());

    let config = host(WRONG);
    let mut child = common::cli::Child(
        common::cli::bin()
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + STARTUP;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve with a wrong token did not fail at start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut printed = String::new();
    for pipe in [
        child
            .0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        child
            .0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        std::io::Read::read_to_string(&mut pipe, &mut printed).unwrap();
    }
    assert!(!status.success(), "{printed}");
    assert!(printed.contains("rejected this host's credentials"), "{printed}");
    assert!(printed.contains("nats.token_file"), "{printed}");
    assert!(!printed.contains(WRONG) && !printed.contains(TOKEN), "{printed}");
}
