//! Whose code allocates on a warm greeter call over the ring: every allocation of every
//! thread during the calls is traced back to the first frame that belongs to a known
//! owner — wasmtime, the wRPC codec, this crate (the host), or the calling test — and
//! the host's own share must be 0 (issue: runtime fast path, "allocations per warm
//! greeter call over the ring").
//!
//! Counted, not timed: the counts do not depend on the machine's load. A debug build
//! takes the same allocations as a release build on this path (no allocation depends on
//! `debug_assertions`), so the test runs in the ordinary test profile.
#![cfg(feature = "wasmtime")]

mod common;

use std::backtrace::Backtrace;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use wrpc_ring::host::{CallContext, ComponentConfig, InstanceMode, TransportKind};
use wrpc_transport::InvokeExt as _;

use common::host::{TestHost, wasm};

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

const GREETER: &str = "wrpc-ring:examples/greeter";
const NO_PATHS: &[&[Option<usize>]] = &[];

/// Calls traced, after as many untraced warm-up calls.
const CALLS: usize = 20;

/// Who an allocation is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    /// wasmtime and its parts (instances, stores, the guest's calls).
    Wasmtime,
    /// wRPC's codec and helpers (`wrpc-transport`, `wrpc-runtime-wasmtime`, `wasm-tokio`).
    Codec,
    /// This crate: the dispatcher, the transport, the runtime.
    Host,
    /// The test itself (the parameters it builds).
    Caller,
    /// No known owner on the stack (a runtime's own bookkeeping).
    Unknown,
}

/// Crates whose frames say nothing about who wanted the memory: the allocation is
/// charged to the first frame below them that is not one of these.
const TRANSPARENT: &[&str] = &[
    "std",
    "core",
    "alloc",
    "tokio",
    "tokio_util",
    "futures",
    "futures_util",
    "futures_core",
    "bytes",
    "hashbrown",
    "tracing",
    "tracing_core",
    "anyhow",
    "pin_project_lite",
    "sync_wrapper",
    "rtrb",
    "atomic_waker",
    "crossbeam_utils",
    "__rustc",
    "__rust_alloc",
    "__rust_realloc",
    "__rdl_alloc",
    "__rdl_realloc",
];

/// Self types of inherent and trait impls in `core` and `alloc`.
const PRIMITIVE: &[&str] = &[
    "", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64",
    "bool", "char", "str", "T", "A", "F", "U",
];

fn owner_of_crate(name: &str) -> Option<Owner> {
    if name == "wasmtime"
        || name.starts_with("wasmtime_")
        || name.starts_with("cranelift")
        || name == "wasmparser"
        || name == "wit_parser"
    {
        Some(Owner::Wasmtime)
    } else if matches!(name, "wrpc_transport" | "wrpc_runtime_wasmtime" | "wasm_tokio") {
        Some(Owner::Codec)
    } else if name == "wrpc_ring" {
        Some(Owner::Host)
    } else if name == "allocations" {
        Some(Owner::Caller)
    } else {
        None
    }
}

/// Whether a frame of crate `name` leaves the allocation to the frame below it: a
/// crate of `TRANSPARENT`, or a primitive self type (`<[u8]>::to_vec`, `<str as
/// ToOwned>`, `[_]`), whose frame is `alloc`'s or `core`'s.
fn is_transparent(name: &str) -> bool {
    TRANSPARENT.contains(&name) || PRIMITIVE.contains(&name.trim_matches('_'))
}

/// The crate a demangled symbol belongs to: `<wrpc_ring::X as tokio::io::AsyncWrite>::f`
/// belongs to `wrpc_ring`, `<T as alloc::slice::ConvertVec>::to_vec` (a generic or
/// primitive self type) to `alloc`, `core::ptr::drop_in_place<...>` to `core`.
fn crate_of(symbol: &str) -> &str {
    let mut symbol = symbol
        .trim_start_matches(['<', '[', '&', '*'])
        .trim_start_matches("mut ");
    if let Some((self_type, rest)) = symbol.split_once(" as ") {
        let self_path = self_type.split(['<', '>', ' ']).next().unwrap_or("");
        if !self_path.contains("::") {
            symbol = rest.trim_start_matches(['<', '[', '&', '*']);
        }
    }
    let end = symbol
        .find([':', '<', ' ', '>', '(', '[', ']'])
        .unwrap_or(symbol.len());
    &symbol[..end]
}

/// The crate whose source file a frame's code is in, for frames whose name has no path:
/// with line tables only (the dev profile), an inlined function is named without its
/// module (`with_capacity_in<alloc::alloc::Global>`), but its file still says whose it is.
/// `/rustc/<hash>/library/alloc/src/..` is `alloc`'s; `../registry/src/<index>/
/// wasmtime-environ-45.0.0/src/..` is `wasmtime_environ`'s; `./src/..` is this crate's,
/// and `./tests/..` the test's.
fn crate_of_file(file: &str) -> Option<String> {
    if let Some(rest) = file.strip_prefix("/rustc/") {
        let (_, rest) = rest.split_once("/library/")?;
        return Some(rest.split('/').next()?.to_string());
    }
    if let Some((_, rest)) = file.split_once("/registry/src/") {
        let dir = rest.split('/').nth(1)?;
        let (name, version) = dir.rsplit_once('-')?;
        version
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| name.replace('-', "_"))
    } else if file.starts_with("./src/") || file.starts_with(concat!(env!("CARGO_MANIFEST_DIR"), "/src/")) {
        Some("wrpc_ring".to_string())
    } else if file.starts_with("./tests/") || file.starts_with(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/"))
    {
        Some("allocations".to_string())
    } else {
        None
    }
}

/// One frame of a backtrace: its symbol and, where the backtrace has it, the crate of
/// its source file.
struct Frame {
    symbol: String,
    file_crate: Option<String>,
}

impl Frame {
    /// The crate the frame belongs to: by its name's path where it has one that is
    /// known, else by its file, else whatever its name starts with.
    fn crate_name(&self) -> &str {
        let by_name = crate_of(&self.symbol);
        match &self.file_crate {
            Some(file_crate) if owner_of_crate(by_name).is_none() && !is_transparent(by_name) => file_crate,
            _ => by_name,
        }
    }
}

/// The frames of a backtrace, innermost first.
fn frames(site: &Backtrace) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in format!("{site}").lines() {
        let line = line.trim_start();
        if let Some(file) = line.strip_prefix("at ") {
            if let Some(frame) = frames.last_mut().filter(|f| f.file_crate.is_none()) {
                frame.file_crate = crate_of_file(file);
            }
        } else if let Some((number, symbol)) = line.split_once(": ")
            && number.parse::<usize>().is_ok()
        {
            frames.push(Frame {
                symbol: symbol.to_string(),
                file_crate: None,
            });
        }
    }
    frames
}

/// The owner of one allocation, and the frame that decided it.
fn classify(site: &Backtrace) -> (Owner, String) {
    let frames = frames(site);
    // Skip the allocator and the recording itself.
    let start = frames
        .iter()
        .rposition(|f| f.symbol.contains("common::alloc") || f.symbol.contains("GlobalAlloc"))
        .map_or(0, |i| i + 1);
    for frame in &frames[start..] {
        let name = frame.crate_name();
        if let Some(owner) = owner_of_crate(name) {
            return (owner, frame.symbol.clone());
        }
        if !is_transparent(name) {
            // A crate not listed: say so, so that a new dependency is classified on
            // purpose, not by accident.
            return (Owner::Unknown, frame.symbol.clone());
        }
    }
    (
        Owner::Unknown,
        frames.first().map(|f| f.symbol.clone()).unwrap_or_default(),
    )
}

/// Traces `CALLS` warm greeter calls through the dispatcher over the ring and returns
/// the allocations per owner, with the deciding frames of the host's (for the failure
/// message).
async fn trace(mode: InstanceMode) -> (BTreeMap<Owner, usize>, String) {
    let greeter = match mode {
        InstanceMode::Fresh => ComponentConfig::new("greeter", wasm("greeter")),
        InstanceMode::Reuse => ComponentConfig::new("greeter", wasm("greeter")).reuse(1_000_000),
    };
    let host = TestHost::start_with(
        common::host::config(TransportKind::Ring, None),
        &[greeter],
        &[("test", GREETER, "greeter")],
    )
    .await;
    let dispatcher = host.runtime.dispatcher().clone();
    let cx = CallContext::new("test");
    let greet = || {
        let dispatcher = dispatcher.clone();
        let cx = cx.clone();
        async move {
            let (greeting,): (String,) = dispatcher
                .invoke_values_blocking(cx, GREETER, "greet", ("world".to_string(),), NO_PATHS)
                .await
                .expect("greet");
            assert_eq!(greeting, "Hello, world!");
        }
    };
    for _ in 0..CALLS {
        greet().await;
    }
    common::alloc::start_sites();
    for _ in 0..CALLS {
        greet().await;
    }
    let sites = common::alloc::stop_sites();
    let mut per_owner = BTreeMap::new();
    let mut per_frame = BTreeMap::<(Owner, String), usize>::new();
    for site in &sites {
        let (owner, frame) = classify(site);
        *per_owner.entry(owner).or_insert(0) += 1;
        *per_frame.entry((owner, frame)).or_insert(0) += 1;
    }
    // Every deciding frame, for `--nocapture`; the host's go into the failure message.
    println!("{mode:?}, allocations in {CALLS} calls by deciding frame:");
    let mut report = String::new();
    for ((owner, frame), n) in &per_frame {
        println!("  {n:>4} × {owner:?}: {frame}");
        if matches!(owner, Owner::Host | Owner::Unknown) {
            let _ = writeln!(report, "  {n:>4} × {owner:?}: {frame}");
        }
    }
    // The whole stack of the first allocation of each host frame, to find it quickly.
    let mut shown = std::collections::BTreeSet::new();
    for site in &sites {
        let (owner, frame) = classify(site);
        if matches!(owner, Owner::Host | Owner::Unknown) && shown.insert(frame.clone()) {
            let _ = writeln!(report, "stack of {frame}:\n{site}");
        }
    }
    (per_owner, report)
}

fn per_call(counts: &BTreeMap<Owner, usize>) -> String {
    counts
        .iter()
        .map(|(owner, n)| format!("{owner:?} {:.2}", *n as f64 / CALLS as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The host's own share of a warm greeter call's allocations is 0, with a warm instance
/// (`instances = "reuse"`) and with a fresh one; wasmtime's and the codec's shares are
/// printed (`--nocapture`).
#[tokio::test]
async fn a_greeter_call_over_the_ring_allocates_nothing_in_the_host() {
    let mut failures = String::new();
    for mode in [InstanceMode::Reuse, InstanceMode::Fresh] {
        let (counts, report) = trace(mode).await;
        println!("allocations per call, {mode:?}: {}", per_call(&counts));
        let host = counts.get(&Owner::Host).copied().unwrap_or(0)
            + counts.get(&Owner::Unknown).copied().unwrap_or(0);
        if host != 0 {
            let _ = writeln!(
                failures,
                "{mode:?}: the host (or an unknown owner) made {host} allocations in {CALLS} calls:\n{report}"
            );
        }
    }
    assert!(failures.is_empty(), "{failures}");
}
