//! The host config: defaults, every validation error, environment overrides.
#![cfg(feature = "host")]

use std::time::Duration;

use wrpc_ring::host::{ByteSize, ConfigError, HostConfig, TransportKind};

fn err(text: &str) -> String {
    HostConfig::from_toml(text).unwrap_err().to_string()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn an_empty_config_runs_embedded_on_rings() {
    let config = HostConfig::from_toml("").unwrap();
    assert_eq!(config, HostConfig::default());
    assert_eq!(config.transport, TransportKind::Ring);
    assert_eq!(config.lattice, "default");
    assert_eq!(config.ring.capacity, ByteSize(64 * 1024));
    assert_eq!(config.ring.pool_idle, 256);
    assert_eq!(config.nats.url, None);
    assert_eq!(config.limits.invocation_timeout, Duration::from_secs(10));
    assert_eq!(config.limits.max_instances, 100);
}

#[test]
fn the_documented_example_parses() {
    let config = HostConfig::from_toml(
        r#"
        transport = "ring"          # ring | duplex | mpsc | nats
        lattice = "default"
        [ring]
        capacity = "64KiB"
        pool_idle = 256
        [nats]
        url = "nats://127.0.0.1:4222"
        [limits]
        invocation_timeout = "10s"
        max_instances = 100
        "#,
    )
    .unwrap();
    assert_eq!(config.nats.url.as_deref(), Some("nats://127.0.0.1:4222"));
}

#[test]
fn sizes_and_durations_take_units() {
    let config =
        HostConfig::from_toml("[ring]\ncapacity = \"1 MiB\"\n[limits]\ninvocation_timeout = \"250ms\"")
            .unwrap();
    assert_eq!(config.ring.capacity, ByteSize(1 << 20));
    assert_eq!(config.limits.invocation_timeout, Duration::from_millis(250));
    assert_eq!(
        HostConfig::from_toml("[ring]\ncapacity = 4096")
            .unwrap()
            .ring
            .capacity,
        ByteSize(4096)
    );
    assert_eq!(
        HostConfig::from_toml("[ring]\ncapacity = \"64KB\"")
            .unwrap()
            .ring
            .capacity,
        ByteSize(64_000)
    );
}

#[test]
fn an_unknown_key_is_named() {
    let msg = err("transprot = \"ring\"");
    assert!(msg.contains("unknown field `transprot`"), "{msg}");
    let msg = err("[ring]\ncapacty = 5");
    assert!(msg.contains("unknown field `capacty`"), "{msg}");
}

#[test]
fn an_unknown_transport_lists_the_valid_ones() {
    let msg = err("transport = \"tcp\"");
    assert!(msg.contains("unknown variant `tcp`"), "{msg}");
    assert!(msg.contains("`ring`, `duplex`, `mpsc`, `nats`"), "{msg}");
}

#[test]
fn a_bad_size_is_explained() {
    let msg = err("[ring]\ncapacity = \"lots\"");
    assert!(msg.contains("`lots` is not a size"), "{msg}");
    let msg = err("[ring]\ncapacity = \"64XB\"");
    assert!(msg.contains("unknown size unit `XB`"), "{msg}");
    let msg = err("[ring]\ncapacity = 0");
    assert!(
        msg.contains("ring.capacity") && msg.contains("at least 1 byte"),
        "{msg}"
    );
}

#[test]
fn a_bad_duration_is_explained() {
    let msg = err("[limits]\ninvocation_timeout = \"10\"");
    assert!(msg.contains("needs a unit"), "{msg}");
    let msg = err("[limits]\ninvocation_timeout = \"0s\"");
    assert!(msg.contains("limits.invocation_timeout"), "{msg}");
}

#[test]
fn nats_transport_needs_a_url() {
    let msg = err("transport = \"nats\"");
    assert!(msg.contains("transport") && msg.contains("[nats] url"), "{msg}");
    HostConfig::from_toml("transport = \"nats\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"").unwrap();
}

#[test]
fn other_invalid_values_are_named() {
    assert!(err("[limits]\nmax_instances = 0").contains("limits.max_instances"));
    assert!(err("lattice = \"a.b\"").contains("lattice"));
    assert!(err("[nats]\nurl = \" \"").contains("nats.url"));
    assert!(err("transport = 5").contains("transport"));
    assert!(err("[limits]\nmax_queued = 0").contains("limits.max_queued"));
    assert!(err("[runtime]\npooled_instances = 0").contains("runtime.pooled_instances"));
    assert!(err("[runtime]\ndecommit_batch_size = 0").contains("runtime.decommit_batch_size"));
    assert!(
        err("[runtime]\nlinear_memory_keep_resident = \"4GiB\"")
            .contains("runtime.linear_memory_keep_resident")
    );
    assert!(err("[runtime]\npagemap_scan = \"maybe\"").contains("auto"));
    assert!(
        err("[[component]]\nid = \"a\"\npath = \"a.wasm\"\ninstances = \"warm\"").contains("reuse"),
        "an unknown instance mode lists the valid ones"
    );
    assert!(
        err("[[component]]\nid = \"a\"\npath = \"a.wasm\"\ninstances = \"reuse\"\nmax_uses = 0")
            .contains("component.max_uses")
    );
}

/// A timeout too far away to be a deadline is rejected with its key instead of
/// overflowing `Instant::now() + timeout` (a panic) on the first call.
#[test]
fn a_huge_invocation_timeout_is_rejected_not_a_panic() {
    let message = err("[limits]\ninvocation_timeout = \"18446744073709551615s\"");
    assert!(
        message.contains("limits.invocation_timeout") && message.contains("720h"),
        "{message}"
    );
    assert!(HostConfig::from_toml("[limits]\ninvocation_timeout = \"720h\"").is_ok());
}

/// The `[runtime]` table and a component's instance mode parse with their defaults.
#[test]
fn runtime_keys_and_instance_modes_parse() {
    let config = HostConfig::from_toml(
        "[runtime]\nlinear_memory_keep_resident = \"2MiB\"\npagemap_scan = \"no\"\nconcurrency_support = true\nfast_path = false\n\
         [[component]]\nid = \"a\"\npath = \"a.wasm\"\ninstances = \"reuse\"\nmax_uses = 7\n\
         [[component]]\nid = \"b\"\npath = \"b.wasm\"",
    )
    .unwrap();
    assert_eq!(config.runtime.linear_memory_keep_resident, ByteSize(2 << 20));
    assert_eq!(config.runtime.pagemap_scan, wrpc_ring::host::PagemapScan::No);
    assert!(config.runtime.concurrency_support && !config.runtime.fast_path);
    assert_eq!(
        config.runtime.table_keep_resident,
        ByteSize(64 << 10),
        "default kept"
    );
    assert_eq!(
        config.component[0].instances,
        wrpc_ring::host::InstanceMode::Reuse
    );
    assert_eq!(config.component[0].max_uses, 7);
    assert_eq!(
        config.component[1].instances,
        wrpc_ring::host::InstanceMode::Fresh
    );
    assert_eq!(config.component[1].max_uses, wrpc_ring::host::DEFAULT_MAX_USES);
}

#[test]
fn environment_variables_override_the_file() {
    let mut config = HostConfig::from_toml("transport = \"duplex\"").unwrap();
    config
        .apply_env(env(&[
            ("WRPC_RING_TRANSPORT", "mpsc"),
            ("WRPC_RING_LATTICE", "prod"),
            ("WRPC_RING_RING_CAPACITY", "1MiB"),
            ("WRPC_RING_RING_POOL_IDLE", "8"),
            ("WRPC_RING_NATS_URL", "nats://127.0.0.1:4999"),
            ("WRPC_RING_INVOCATION_TIMEOUT", "3s"),
            ("WRPC_RING_MAX_INSTANCES", "7"),
            ("WRPC_RING_MAX_QUEUED", "9"),
            ("PATH", "/usr/bin"), // not ours: ignored
        ]))
        .unwrap();
    assert_eq!(config.transport, TransportKind::Mpsc);
    assert_eq!(config.lattice, "prod");
    assert_eq!(config.ring.capacity, ByteSize(1 << 20));
    assert_eq!(config.ring.pool_idle, 8);
    assert_eq!(config.nats.url.as_deref(), Some("nats://127.0.0.1:4999"));
    assert_eq!(config.limits.invocation_timeout, Duration::from_secs(3));
    assert_eq!(config.limits.max_instances, 7);
    assert_eq!(config.limits.max_queued, 9);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let mut config = HostConfig::default();
    let e = config
        .apply_env(env(&[("WRPC_RING_TRANSPORT", "udp")]))
        .unwrap_err();
    assert!(matches!(e, ConfigError::Env { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("WRPC_RING_TRANSPORT") && msg.contains("`ring`, `duplex`, `mpsc`, `nats`"),
        "{msg}"
    );
    let msg = config
        .apply_env(env(&[("WRPC_RING_MAX_INSTANCES", "many")]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("WRPC_RING_MAX_INSTANCES"), "{msg}");
    let msg = config
        .apply_env(env(&[("WRPC_RING_TRANSPRT", "ring")]))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unknown variable") && msg.contains("WRPC_RING_TRANSPORT"),
        "{msg}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let msg = HostConfig::load("/nonexistent/host.toml")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/nonexistent/host.toml"), "{msg}");
}

#[test]
fn a_file_error_names_the_file() {
    let dir = std::env::temp_dir().join(format!("wrpc-ring-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("host.toml");
    std::fs::write(&path, "transport = \"ring\"\nbogus = 1\n").unwrap();
    let msg = HostConfig::load(&path).unwrap_err().to_string();
    assert!(msg.contains("host.toml") && msg.contains("bogus"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn components_links_and_entry_are_validated() {
    let msg =
        err("[[component]]\nid = \"a\"\npath = \"a.wasm\"\n[[component]]\nid = \"a\"\npath = \"b.wasm\"");
    assert!(
        msg.contains("component.id") && msg.contains("`a` is declared twice"),
        "{msg}"
    );
    let msg = err("[[link]]\nsource = \"ghost\"\ninterface = \"x:y/z\"\ntarget = \"b\"");
    assert!(msg.contains("link.source") && msg.contains("`ghost`"), "{msg}");
    let msg = err("[entry]\ncomponent = \"nope\"\nfunction = \"x:y/z.f\"");
    assert!(msg.contains("entry.component") && msg.contains("`nope`"), "{msg}");
    let msg = err("[limits]\nmax_memory = \"1KiB\"");
    assert!(msg.contains("limits.max_memory"), "{msg}");
    let msg = err("[[component]]\nid = \"a\"\npath = \"a.wasm\"\ncolour = \"red\"");
    assert!(msg.contains("unknown field `colour`"), "{msg}");
    let config = HostConfig::from_toml(
        "[[component]]\nid = \"a\"\npath = \"a.wasm\"\n[[link]]\nsource = \"a\"\ninterface = \"x:y/z\"\ntarget = \"b\"",
    )
    .unwrap();
    assert_eq!(config.link[0].name, "default");
    let component = "[[component]]\nid = \"a\"\npath = \"a.wasm\"\n";
    let msg = err(&format!(
        "{component}[[link]]\nsource = \"a\"\ninterface = \"x:y/z\"\ntarget = \"svc.v2\""
    ));
    assert!(msg.contains("link.target") && msg.contains("`svc.v2`"), "{msg}");
    let twice = "[[link]]\nsource = \"a\"\ninterface = \"x:y/z@0.1.0\"\ntarget = \"b\"\n\
                 [[link]]\nsource = \"a\"\ninterface = \"x:y/z\"\ntarget = \"c\"\n";
    let msg = err(&format!("{component}{twice}"));
    assert!(
        msg.contains("twice") && msg.contains("`b`") && msg.contains("`c`"),
        "{msg}"
    );
    // The same interface under another link name is a second link, not a duplicate.
    HostConfig::from_toml(&format!("{component}{twice}name = \"other\"\n")).unwrap();
}

#[test]
fn component_paths_are_relative_to_the_config_file() {
    let dir = std::env::temp_dir().join(format!("wrpc-ring-config-rel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("host.toml");
    std::fs::write(&path, "[[component]]\nid = \"a\"\npath = \"wasm/a.wasm\"\n").unwrap();
    let config = HostConfig::load(&path).unwrap();
    assert_eq!(config.component[0].path, dir.join("wasm/a.wasm"));
    std::fs::remove_dir_all(&dir).unwrap();
}
