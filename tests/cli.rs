//! The `wrpc-ring` binary as an operator uses it: help, errors, the example host, and
//! two host processes on one `nats-server`.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{Child, bin, component_path, root, run, scratch, text};
use common::nats::NatsServer;

#[test]
fn every_command_has_help() {
    for args in [&["--help"][..], &["run", "--help"], &["serve", "--help"]] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("Usage"), "{args:?}: {}", text(&out));
    }
}

#[test]
fn the_example_host_runs_out_of_the_box() {
    let config = root().join("examples/host.toml");
    let out = run(&[
        "run",
        config.to_str().unwrap(),
        "--count",
        "50",
        "--concurrency",
        "2",
    ]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("\"a(b(c(x)))\""), "{shown}");
    assert!(shown.contains("p50") && shown.contains("p99"), "{shown}");
    // 51 calls of A (the first shows the result), each making two ring calls.
    assert_eq!(calls_on(&shown, "ring").as_deref(), Some("102"), "{shown}");
}

#[test]
fn invoke_picks_another_export_and_parses_arguments() {
    let config = root().join("examples/host.toml");
    let out = run(&[
        "run",
        config.to_str().unwrap(),
        "--invoke",
        "greeter",
        "wrpc-ring:examples/greeter.greet",
        "--arg",
        "operator",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("\"Hello, operator!\""), "{}", text(&out));
    let out = run(&[
        "run",
        config.to_str().unwrap(),
        "--invoke",
        "blob",
        "wrpc-ring:examples/blob.fetch",
        "--arg",
        "lots",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("`lots` is not a u32"), "{}", text(&out));
}

#[test]
fn a_missing_config_is_named() {
    let out = run(&["run", "/nonexistent/host.toml"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent/host.toml"), "{}", text(&out));
}

/// `serve` of a host with `config` before one component, `junk`, that is not wasm: it
/// stops right after reading the config.
fn serve_junk(name: &str, config: &str) -> std::process::Output {
    let dir = scratch(name, &[("junk.wasm", "not wasm".into())]);
    std::fs::write(
        dir.join("host.toml"),
        format!("{config}[[component]]\nid = \"junk\"\npath = \"junk.wasm\"\n"),
    )
    .unwrap();
    run(&["serve", dir.join("host.toml").to_str().unwrap()])
}

#[test]
fn a_bad_component_is_named() {
    let out = serve_junk("bad", "");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("`junk` is not a valid WebAssembly component"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_pool_smaller_than_the_limits_is_a_warning() {
    let out = serve_junk("small-pool", "[runtime]\npooled_instances = 10\n\n");
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("WARN")
            && shown.contains("may run 100 instances at once, but runtime.pooled_instances = 10"),
        "{shown}"
    );
}

#[test]
fn an_unknown_export_lists_the_exports() {
    let config = root().join("examples/host.toml");
    let out = run(&[
        "run",
        config.to_str().unwrap(),
        "--invoke",
        "greeter",
        "wrpc-ring:examples/greeter.shout",
    ]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("does not export `wrpc-ring:examples/greeter#shout`") && shown.contains("greet"),
        "{shown}"
    );
}

#[test]
fn an_unknown_link_target_is_named() {
    let config = format!(
        "[[component]]\nid = \"a\"\npath = \"{}\"\n[[link]]\nsource = \"a\"\ninterface = \"wrpc-ring:examples/stage\"\ntarget = \"nobody\"\n",
        component_path("pipeline-a")
    );
    let dir = scratch("link", &[("host.toml", config)]);
    let out = run(&["serve", dir.join("host.toml").to_str().unwrap()]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("`nobody`") && shown.contains("not a [[component]]"),
        "{shown}"
    );
}

/// The call count a host printed for `path` in its metrics table.
fn calls_on(shown: &str, path: &str) -> Option<String> {
    let prefix = format!("{path} ");
    shown
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
}

fn write_host(
    dir: &Path,
    name: &str,
    nats: &str,
    components: &[(&str, &str)],
    links: &[(&str, &str)],
) -> PathBuf {
    let mut toml = format!("[nats]\nurl = \"{nats}\"\n");
    for (id, file) in components {
        toml += &format!(
            "[[component]]\nid = \"{id}\"\npath = \"{}\"\n",
            component_path(file)
        );
    }
    for (source, target) in links {
        toml += &format!(
            "[[link]]\nsource = \"{source}\"\ninterface = \"wrpc-ring:examples/stage\"\ntarget = \"{target}\"\n"
        );
    }
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path
}

/// Two host processes and one `nats-server`: on host 1, `a1` calls `b` on host 2 over
/// NATS (and `b` calls `c` back on host 1 over NATS), while `a2` calls `c` on host 1
/// over the ring; each host's metrics show which path each call took.
#[test]
fn two_hosts_split_calls_between_the_ring_and_nats() {
    let nats = NatsServer::start();
    let dir = scratch("two-hosts", &[]);
    let host1 = write_host(
        &dir,
        "host1.toml",
        &nats.url(),
        &[("a1", "pipeline-a"), ("a2", "pipeline-a"), ("c", "pipeline-c")],
        &[("a1", "b"), ("a2", "c")],
    );
    let host2 = write_host(
        &dir,
        "host2.toml",
        &nats.url(),
        &[("b", "pipeline-b")],
        &[("b", "c")],
    );

    // Host 2 serves `b` until told to stop.
    let mut server = Child(
        bin()
            .args(["serve", host2.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Wait for its "serving" line: its subscriptions are confirmed by then.
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("host 2 did not start");
        if line.starts_with("serving") {
            break;
        }
    }

    // Host 1 runs `a1` (→ b on host 2 → c back on host 1) and `a2` (→ c, local).
    let remote = run(&[
        "run",
        host1.to_str().unwrap(),
        "--invoke",
        "a1",
        "wrpc-ring:examples/stage.run",
        "--arg",
        "x",
    ]);
    let shown = text(&remote);
    assert!(remote.status.success(), "{shown}");
    assert!(shown.contains("\"a(b(c(x)))\""), "{shown}");
    let nats_calls = |shown: &str| calls_on(shown, "nats");
    let ring_calls = |shown: &str| calls_on(shown, "ring");
    // Two calls of a1 (the result, then --count 1): each a1 → b over NATS.
    assert_eq!(nats_calls(&shown).as_deref(), Some("2"), "{shown}");
    assert_eq!(ring_calls(&shown).as_deref(), Some("0"), "{shown}");

    let local = run(&[
        "run",
        host1.to_str().unwrap(),
        "--invoke",
        "a2",
        "wrpc-ring:examples/stage.run",
        "--arg",
        "y",
    ]);
    let shown = text(&local);
    assert!(local.status.success(), "{shown}");
    assert!(shown.contains("\"a(c(y))\""), "{shown}");
    assert_eq!(ring_calls(&shown).as_deref(), Some("2"), "{shown}");
    assert_eq!(nats_calls(&shown).as_deref(), Some("0"), "{shown}");

    // Host 2 made its b → c calls over NATS; it prints its metrics when stopped.
    let pid = server.0.id();
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let mut rest = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        rest += &line;
        rest.push('\n');
    }
    assert_eq!(nats_calls(&rest).as_deref(), Some("2"), "host 2 printed: {rest}");
}
