//! The host configuration: one TOML file, overridable by environment variables.
//!
//! Every key, its default and its variable are documented in `docs/config.md`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The default `limits.max_queued`.
pub const DEFAULT_MAX_QUEUED: usize = 1024;

/// The longest `limits.invocation_timeout` accepted: 30 days.
pub const MAX_INVOCATION_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The prefix of every environment variable that overrides a config key.
pub const ENV_PREFIX: &str = "WRPC_RING_";

/// Which transport carries calls between components of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Pooled lock-free rings ([`Ring`](crate::Ring)): the fast local path.
    #[default]
    Ring,
    /// Baseline: wRPC framing over `tokio::io::duplex`.
    Duplex,
    /// Baseline: wRPC framing over `tokio::sync::mpsc<Bytes>` byte streams.
    Mpsc,
    /// Baseline: every call through NATS, even a local one (upstream's behaviour).
    Nats,
}

impl TransportKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [TransportKind; 4] = [Self::Ring, Self::Duplex, Self::Mpsc, Self::Nats];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ring => "ring",
            Self::Duplex => "duplex",
            Self::Mpsc => "mpsc",
            Self::Nats => "nats",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TransportKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let valid: Vec<_> = Self::ALL.iter().map(|k| format!("`{k}`")).collect();
            format!("unknown transport `{s}`, expected one of {}", valid.join(", "))
        })
    }
}

/// A size in bytes, written as a number with an optional unit: `65536`, `64KiB`,
/// `1 MiB`, `2GiB` (binary), or `64KB`, `1MB` (decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (number, unit) = split_number(s);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{s}` is not a size (expected e.g. `65536`, `64KiB`, `1MiB`)"))?;
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" | "k" => 1 << 10,
            "mib" | "m" => 1 << 20,
            "gib" | "g" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            _ => {
                return Err(format!(
                    "unknown size unit `{unit}` in `{s}` (use B, KiB, MiB, GiB, KB, MB or GB)"
                ));
            }
        };
        number
            .checked_mul(scale)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

/// A duration, written as a number with a unit: `10s`, `500ms`, `2m`, `1h`, `250us`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(s);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (expected e.g. `10s`, `500ms`)"))?;
    let duration = match unit {
        "us" | "µs" => Duration::from_micros(number),
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        "" => return Err(format!("duration `{s}` needs a unit (us, ms, s, m or h)")),
        _ => {
            return Err(format!(
                "unknown duration unit `{unit}` in `{s}` (use us, ms, s, m or h)"
            ));
        }
    };
    Ok(duration)
}

fn split_number(s: &str) -> (&str, &str) {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

/// A size given either as a TOML integer (bytes) or a string with a unit.
fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Str(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(ByteSize(n)),
        Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// `[ring]`: the rings of the `ring` transport.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingConfig {
    /// Bytes per ring (one direction of one call, or one async value).
    #[serde(deserialize_with = "de_size")]
    pub capacity: ByteSize,
    /// Idle rings the pool keeps for reuse.
    pub pool_idle: usize,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            capacity: ByteSize(64 * 1024),
            pool_idle: 256,
        }
    }
}

/// `[nats]`: the connection used for calls to components on other hosts, and who this
/// host is to the NATS server.
///
/// # Secrets
///
/// The config names where each secret is (a file, or an environment variable), never
/// the secret itself: a password, token or seed is read when the host connects, and is
/// never part of this struct, its `Debug` output or an error. A `url` that carries
/// credentials (`nats://user:pass@host`) is rejected for the same reason.
///
/// At most one way to authenticate: `credentials_file` (a user JWT and its nkey seed,
/// as `nsc` writes them), an nkey seed, a token, or `user` with a password.
///
/// # Examples
///
/// ```
/// use wrpc_ring::host::HostConfig;
///
/// let config = HostConfig::from_toml(r#"
///     [nats]
///     url = "nats://nats.internal:4222"
///     user = "host-a"
///     password_env = "NATS_PASSWORD"
///     [nats.tls]
///     ca_file = "/etc/wrpc-ring/ca.pem"
/// "#)?;
/// assert_eq!(config.nats.user.as_deref(), Some("host-a"));
/// assert!(config.nats.tls.unwrap().required);
///
/// let err = HostConfig::from_toml(r#"
///     [nats]
///     url = "nats://nats.internal:4222"
///     token_env = "NATS_TOKEN"
///     user = "host-a"
///     password_env = "NATS_PASSWORD"
/// "#).unwrap_err();
/// assert!(err.to_string().contains("at most one way to authenticate"));
/// # Ok::<_, wrpc_ring::host::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222`. Without it the host runs
    /// embedded: local calls only.
    pub url: Option<String>,
    /// A credentials file: a user JWT and its nkey seed (decentralized auth).
    pub credentials_file: Option<PathBuf>,
    /// A file holding an nkey user seed (`SU…`).
    pub nkey_seed_file: Option<PathBuf>,
    /// The environment variable holding an nkey user seed.
    pub nkey_seed_env: Option<String>,
    /// A file holding a token.
    pub token_file: Option<PathBuf>,
    /// The environment variable holding a token.
    pub token_env: Option<String>,
    /// The user name (not a secret); its password comes from `password_file` or
    /// `password_env`.
    pub user: Option<String>,
    /// A file holding `user`'s password.
    pub password_file: Option<PathBuf>,
    /// The environment variable holding `user`'s password.
    pub password_env: Option<String>,
    /// `[nats.tls]`: TLS to the server, and this host's client certificate.
    pub tls: Option<NatsTlsConfig>,
}

/// `[nats.tls]`: how the host checks the NATS server, and proves itself with a client
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsTlsConfig {
    /// PEM certificates of the CAs that sign the server's certificate, trusted instead
    /// of the system's roots (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// This host's client certificate chain (PEM), for a server that verifies clients;
    /// needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
    /// Refuse a connection without TLS, even to a server that does not ask for it
    /// (default `true`).
    pub required: bool,
}

impl Default for NatsTlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            cert_file: None,
            key_file: None,
            required: true,
        }
    }
}

impl NatsConfig {
    /// The files this section names, resolved against `base` (the config file's folder)
    /// when relative.
    fn resolve_paths(&mut self, base: &Path) {
        let tls = self.tls.as_mut();
        let files = [
            &mut self.credentials_file,
            &mut self.nkey_seed_file,
            &mut self.token_file,
            &mut self.password_file,
        ]
        .into_iter()
        .chain(
            tls.into_iter()
                .flat_map(|t| [&mut t.ca_file, &mut t.cert_file, &mut t.key_file]),
        );
        for path in files.flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Checks `[nats]`: one way to authenticate, each secret from one place, a client
    /// certificate with its key, and no credentials in the url.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if let Some(url) = &self.url {
            if url.trim().is_empty() || url.contains(char::is_whitespace) {
                return invalid(
                    "nats.url",
                    "must be a server address such as `nats://127.0.0.1:4222`".into(),
                );
            }
            // `scheme://authority/...`: userinfo is whatever precedes an `@` in the
            // authority. The message does not repeat the url: it holds a secret.
            let has_userinfo = url.split(',').any(|server| {
                let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
                rest.split('/')
                    .next()
                    .is_some_and(|authority| authority.contains('@'))
            });
            if has_userinfo {
                return invalid(
                    "nats.url",
                    "must not carry credentials (`user:password@`, `token@`): set `user` with \
                     `password_file`/`password_env`, or `token_file`/`token_env`"
                        .into(),
                );
            }
        }
        for (file_key, file, env_key, env) in [
            (
                "nats.nkey_seed_file",
                &self.nkey_seed_file,
                "nats.nkey_seed_env",
                &self.nkey_seed_env,
            ),
            (
                "nats.token_file",
                &self.token_file,
                "nats.token_env",
                &self.token_env,
            ),
            (
                "nats.password_file",
                &self.password_file,
                "nats.password_env",
                &self.password_env,
            ),
        ] {
            if file.is_some() && env.is_some() {
                return invalid(
                    file_key,
                    format!("give the secret in a file or `{env_key}`, not both"),
                );
            }
            if env
                .as_deref()
                .is_some_and(|var| var.is_empty() || var.contains(['=', '\0']))
            {
                return invalid(env_key, "must be the name of an environment variable".into());
            }
        }
        let has_password = self.password_file.is_some() || self.password_env.is_some();
        if self.user.is_some() != has_password {
            return invalid(
                if self.user.is_some() {
                    "nats.user"
                } else {
                    "nats.password_file"
                },
                "`user` and a password (`password_file` or `password_env`) go together".into(),
            );
        }
        if self.user.as_deref().is_some_and(str::is_empty) {
            return invalid("nats.user", "must not be empty".into());
        }
        let ways: Vec<&str> = [
            (self.credentials_file.is_some(), "`credentials_file`"),
            (
                self.nkey_seed_file.is_some() || self.nkey_seed_env.is_some(),
                "an nkey seed",
            ),
            (self.token_file.is_some() || self.token_env.is_some(), "a token"),
            (self.user.is_some(), "`user` and password"),
        ]
        .into_iter()
        .filter_map(|(set, way)| set.then_some(way))
        .collect();
        if ways.len() > 1 {
            return invalid(
                "nats",
                format!(
                    "at most one way to authenticate, but {} are set",
                    ways.join(" and ")
                ),
            );
        }
        if let Some(tls) = &self.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return invalid(
                    "nats.tls.cert_file",
                    "a client certificate needs its key: set both `cert_file` and `key_file`, or neither"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// `[serve]`: how `wrpc-ring serve` runs: its metrics endpoint and its shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Where to serve the Prometheus metrics over HTTP (`GET /metrics`), e.g.
    /// `127.0.0.1:9464`; port 0 picks a free port (printed at start). None by default.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// On SIGTERM or Ctrl-C, how long the calls in flight may take to finish before
    /// they are aborted.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            metrics_addr: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// `[limits]`: what every call is held to, local or remote.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The longest a call may take, from invoke to the last result byte; also the
    /// longest a guest may run for one call (epoch interruption).
    #[serde(deserialize_with = "de_duration")]
    pub invocation_timeout: Duration,
    /// Calls one component may serve at once.
    pub max_instances: usize,
    /// Calls that may wait, per served function, while the component serves
    /// `max_instances` others; a call beyond it fails at once as overloaded. Bounds the
    /// memory a flood of calls can hold (their parameters) on the `ring` transport.
    pub max_queued: usize,
    /// The most linear memory one component instance may grow to.
    #[serde(deserialize_with = "de_size")]
    pub max_memory: ByteSize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            invocation_timeout: Duration::from_secs(10),
            max_instances: 100,
            max_queued: DEFAULT_MAX_QUEUED,
            max_memory: ByteSize(256 << 20),
        }
    }
}

/// `pagemap_scan` of the pooling allocator: whether resetting a slot asks the kernel
/// (Linux ≥ 6.7, `PAGEMAP_SCAN`) which kept-resident pages were dirtied, and resets
/// only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PagemapScan {
    /// Use it when the kernel has it.
    #[default]
    Auto,
    /// Require it: the engine fails to build on a kernel without it.
    Yes,
    /// Never: reset every kept-resident page.
    No,
}

/// `[runtime]`: the wasmtime engine and its pooling instance allocator.
///
/// The defaults are the fastest measured on this project's benchmarks for a fresh
/// instance per call (`docs/benchmarks.md`, "Instantiation levers").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Instances (and memories, tables) the pooling allocator reserves slots for,
    /// across all components; a call beyond it fails to instantiate.
    pub pooled_instances: u32,
    /// Bytes of each linear memory kept resident between instances and reset with a
    /// `memset` (or, with `pagemap_scan`, only the dirtied pages) instead of
    /// `madvise`.
    #[serde(deserialize_with = "de_size")]
    pub linear_memory_keep_resident: ByteSize,
    /// Bytes of each table kept resident, as for memories.
    #[serde(deserialize_with = "de_size")]
    pub table_keep_resident: ByteSize,
    /// Bytes of each async fiber stack kept resident (matters only with stack
    /// zeroing, which this host does not turn on).
    #[serde(deserialize_with = "de_size")]
    pub async_stack_keep_resident: ByteSize,
    /// Reset only the kept-resident pages that were written (`auto`, `yes`, `no`).
    pub pagemap_scan: PagemapScan,
    /// Slots whose memory is decommitted together in one batch (1: at once).
    pub decommit_batch_size: usize,
    /// Unused slots kept warm (with their memory image) for reuse.
    pub max_unused_warm_slots: u32,
    /// wasmtime's component-model concurrency machinery (`Config::concurrency_support`).
    /// Off by default: no component this host can serve uses component-model-async,
    /// and it makes every call slower.
    pub concurrency_support: bool,
    /// Call byte-shaped and scalar signatures through wasmtime's typed API (the fast
    /// path, `docs/runtime.md`); `false` sends every call through `Val`s, as
    /// `wrpc-runtime-wasmtime` does. Both put the same bytes on the wire.
    pub fast_path: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            pooled_instances: 1000,
            linear_memory_keep_resident: ByteSize(1 << 20),
            table_keep_resident: ByteSize(64 << 10),
            async_stack_keep_resident: ByteSize(0),
            pagemap_scan: PagemapScan::Auto,
            decommit_batch_size: 1,
            max_unused_warm_slots: 100,
            concurrency_support: false,
            fast_path: true,
        }
    }
}

/// Where the calls of a component get their instance: `instances` of a `[[component]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    /// A fresh instance for every call: no call sees another's state (wasmCloud 1.x).
    #[default]
    Fresh,
    /// Warm instances kept in a bounded pool and reused, up to `max_uses` calls each:
    /// faster, but a call sees the guest state that earlier calls left behind. An
    /// instance whose call trapped (or ran past its time or memory limit) is thrown
    /// away.
    Reuse,
}

impl InstanceMode {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Reuse => "reuse",
        }
    }
}

/// The default `max_uses` of a `[[component]]` with `instances = "reuse"`.
pub const DEFAULT_MAX_USES: u32 = 1000;

fn default_max_uses() -> u32 {
    DEFAULT_MAX_USES
}

/// A `[[component]]`: a WebAssembly component this host runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The component id: its wRPC prefix is `{lattice}.{id}`.
    pub id: String,
    /// The `.wasm` file, relative to the config file.
    pub path: std::path::PathBuf,
    /// `fresh` (default: an instance per call) or `reuse` (warm instances).
    #[serde(default)]
    pub instances: InstanceMode,
    /// With `instances = "reuse"`: the most calls one instance serves before it is
    /// replaced by a fresh one.
    #[serde(default = "default_max_uses")]
    pub max_uses: u32,
}

impl ComponentConfig {
    /// A component `id` loaded from `path`, with a fresh instance per call.
    pub fn new(id: impl Into<String>, path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            id: id.into(),
            path: path.into(),
            instances: InstanceMode::Fresh,
            max_uses: DEFAULT_MAX_USES,
        }
    }

    /// The same component with `instances = "reuse"`, up to `max_uses` calls each.
    #[must_use]
    pub fn reuse(mut self, max_uses: u32) -> Self {
        self.instances = InstanceMode::Reuse;
        self.max_uses = max_uses;
        self
    }
}

fn default_link_name() -> String {
    crate::host::DEFAULT_LINK_NAME.to_string()
}

/// `[entry]`: the export `wrpc-ring run` invokes when no `--invoke` is given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryConfig {
    /// The component to call.
    pub component: String,
    /// `instance.func`, e.g. `wrpc-ring:examples/stage.run`.
    pub function: String,
    /// The arguments, one per parameter, parsed by the parameter's type.
    #[serde(default)]
    pub args: Vec<String>,
}

/// A `[[link]]`: where a component's import of an interface goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The importing component.
    pub source: String,
    /// The imported interface, e.g. `wrpc-ring:examples/stage` (a version is ignored).
    pub interface: String,
    /// The component that serves it, here or on another host.
    pub target: String,
    /// The link name (default `"default"`).
    #[serde(default = "default_link_name")]
    pub name: String,
}

/// The host configuration. An empty file is valid: ring transport, embedded (no NATS).
///
/// # Examples
///
/// ```
/// use wrpc_ring::host::{HostConfig, TransportKind};
///
/// let config = HostConfig::from_toml(r#"
///     transport = "duplex"
///     [ring]
///     capacity = "1MiB"
/// "#)?;
/// assert_eq!(config.transport, TransportKind::Duplex);
/// assert_eq!(config.ring.capacity.0, 1 << 20);
/// assert_eq!(config.lattice, "default");
///
/// let err = HostConfig::from_toml(r#"transport = "carrier-pigeon""#).unwrap_err();
/// assert!(err.to_string().contains("expected one of `ring`, `duplex`, `mpsc`, `nats`"));
/// # Ok::<_, wrpc_ring::host::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// How calls between this host's components travel.
    pub transport: TransportKind,
    /// The lattice: the first part of every wRPC subject prefix (`{lattice}.{component}`).
    pub lattice: String,
    /// `[ring]`.
    pub ring: RingConfig,
    /// `[nats]`.
    pub nats: NatsConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[runtime]`: the wasmtime engine.
    pub runtime: RuntimeConfig,
    /// `[serve]`: `wrpc-ring serve`'s metrics endpoint and shutdown.
    pub serve: ServeConfig,
    /// `[[component]]`: the components this host runs.
    pub component: Vec<ComponentConfig>,
    /// `[[link]]`: where their imports go.
    pub link: Vec<LinkConfig>,
    /// `[entry]`: what `wrpc-ring run` calls by default.
    pub entry: Option<EntryConfig>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            transport: TransportKind::default(),
            lattice: "default".to_string(),
            ring: RingConfig::default(),
            nats: NatsConfig::default(),
            limits: LimitsConfig::default(),
            runtime: RuntimeConfig::default(),
            serve: ServeConfig::default(),
            component: Vec::new(),
            link: Vec::new(),
            entry: None,
        }
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, or has an unknown key or a value of the wrong form.
    #[error("invalid config{}: {message}", .path.as_ref().map(|p| format!(" `{p}`")).unwrap_or_default())]
    Parse {
        /// The file, if the config came from one.
        path: Option<String>,
        /// The parser's message, naming the key and position.
        message: String,
    },
    /// An environment variable's value is invalid.
    #[error("invalid environment variable {var}={value:?}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// The values parse but do not make sense together.
    #[error("invalid config: {key}: {message}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl HostConfig {
    /// Parses and validates a config from TOML text (no environment overrides).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`], naming the key at fault.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: None,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path`, applies the `WRPC_RING_*` environment variables, and validates.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`]; each names the file, key or variable at fault.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: Some(path.display().to_string()),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for component in &mut config.component {
            if component.path.is_relative() {
                component.path = base.join(&component.path);
            }
        }
        config.nats.resolve_paths(base);
        config.apply_env(std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    /// Applies overrides from `(variable, value)` pairs; variables without the
    /// `WRPC_RING_` prefix are ignored. See `docs/config.md` for the list.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] for a value that does not parse, or an unknown
    /// `WRPC_RING_*` variable (a typo would otherwise be silently ignored).
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
        for (var, value) in vars {
            let Some(key) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let env_err = |message: String| ConfigError::Env {
                var: var.clone(),
                value: value.clone(),
                message,
            };
            match key {
                "TRANSPORT" => self.transport = value.parse().map_err(env_err)?,
                "LATTICE" => self.lattice = value.clone(),
                "RING_CAPACITY" => self.ring.capacity = value.parse().map_err(env_err)?,
                "RING_POOL_IDLE" => {
                    self.ring.pool_idle = value.parse().map_err(|e| env_err(format!("not a count: {e}")))?
                }
                "NATS_URL" => self.nats.url = (!value.is_empty()).then(|| value.clone()),
                "INVOCATION_TIMEOUT" => {
                    self.limits.invocation_timeout = parse_duration(&value).map_err(env_err)?
                }
                "MAX_MEMORY" => self.limits.max_memory = value.parse().map_err(env_err)?,
                "MAX_QUEUED" => {
                    self.limits.max_queued =
                        value.parse().map_err(|e| env_err(format!("not a count: {e}")))?
                }
                "MAX_INSTANCES" => {
                    self.limits.max_instances =
                        value.parse().map_err(|e| env_err(format!("not a count: {e}")))?
                }
                "METRICS_ADDR" => {
                    self.serve.metrics_addr = if value.is_empty() {
                        None
                    } else {
                        Some(
                            value
                                .parse()
                                .map_err(|e| env_err(format!("not a socket address: {e}")))?,
                        )
                    }
                }
                "SHUTDOWN_TIMEOUT" => {
                    self.serve.shutdown_timeout = parse_duration(&value).map_err(env_err)?
                }
                // Read by the test harness, the CLI and the benchmarks, not config keys.
                "NATS_SERVER" | "LOG" => {}
                key if key.starts_with("BENCH_") => {}
                _ => {
                    return Err(env_err(format!(
                        "unknown variable; the overrides are {}",
                        ENV_VARS.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Settings that are valid but probably not what was meant, one sentence each; the
    /// `wrpc-ring` commands log them as warnings when they load a config.
    ///
    /// ```
    /// use wrpc_ring::host::HostConfig;
    ///
    /// let mut config = HostConfig::from_toml(
    ///     r#"
    ///     [[component]]
    ///     id = "a"
    ///     path = "a.wasm"
    ///
    ///     [runtime]
    ///     pooled_instances = 10
    ///     "#,
    /// )?;
    /// assert_eq!(config.warnings().len(), 1, "100 instances of `a` at once, 10 in the pool");
    /// config.limits.max_instances = 10;
    /// assert!(config.warnings().is_empty());
    /// # Ok::<(), wrpc_ring::host::ConfigError>(())
    /// ```
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // Each component may run `max_instances` instances at once, and every instance
        // (fresh or kept warm) holds a slot of the one pool.
        let wanted = u64::try_from(self.component.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::try_from(self.limits.max_instances).unwrap_or(u64::MAX));
        if wanted > u64::from(self.runtime.pooled_instances) {
            warnings.push(format!(
                "{} components with limits.max_instances = {} may run {wanted} instances at once, \
                 but runtime.pooled_instances = {}: when they are all busy, calls beyond the pool \
                 fail to instantiate instead of waiting; raise runtime.pooled_instances or lower \
                 limits.max_instances",
                self.component.len(),
                self.limits.max_instances,
                self.runtime.pooled_instances
            ));
        }
        warnings
    }

    /// Checks that the values make sense together.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.transport == TransportKind::Nats && self.nats.url.is_none() {
            return invalid(
                "transport",
                "`nats` sends every call through NATS, so it needs `[nats] url`",
            );
        }
        if self.ring.capacity.0 == 0 {
            return invalid("ring.capacity", "must be at least 1 byte");
        }
        if usize::try_from(self.ring.capacity.0).is_err() || self.ring.capacity.0 > 1 << 32 {
            return invalid("ring.capacity", "must be at most 4GiB");
        }
        if self.lattice.is_empty() || self.lattice.contains(['.', ' ', '*', '>']) {
            return invalid(
                "lattice",
                "must be a non-empty NATS subject token (no `.`, space, `*` or `>`)",
            );
        }
        if self.limits.max_instances == 0 {
            return invalid("limits.max_instances", "must be at least 1");
        }
        if self.limits.max_queued == 0 {
            return invalid("limits.max_queued", "must be at least 1");
        }
        if self.limits.invocation_timeout.is_zero() {
            return invalid("limits.invocation_timeout", "must be longer than zero");
        }
        if self.limits.invocation_timeout > MAX_INVOCATION_TIMEOUT {
            return invalid(
                "limits.invocation_timeout",
                "must be at most 720h (30 days): a deadline further away cannot be represented on every platform",
            );
        }
        if self.serve.shutdown_timeout > MAX_INVOCATION_TIMEOUT {
            return invalid("serve.shutdown_timeout", "must be at most 720h (30 days)");
        }
        if self.limits.max_memory.0 < 64 * 1024 {
            return invalid("limits.max_memory", "must be at least one wasm page (64KiB)");
        }
        if self.runtime.pooled_instances == 0 {
            return invalid("runtime.pooled_instances", "must be at least 1");
        }
        if self.runtime.decommit_batch_size == 0 {
            return invalid("runtime.decommit_batch_size", "must be at least 1");
        }
        for (key, size) in [
            (
                "runtime.linear_memory_keep_resident",
                self.runtime.linear_memory_keep_resident,
            ),
            ("runtime.table_keep_resident", self.runtime.table_keep_resident),
            (
                "runtime.async_stack_keep_resident",
                self.runtime.async_stack_keep_resident,
            ),
        ] {
            if size.0 > self.limits.max_memory.0.max(1 << 30) {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!(
                        "{} bytes is more than limits.max_memory ({} bytes) and more than 1GiB",
                        size.0, self.limits.max_memory.0
                    ),
                });
            }
        }
        let mut ids = std::collections::HashSet::new();
        for component in &self.component {
            if component.id.is_empty() || component.id.contains(['.', ' ', '*', '>']) {
                return Err(ConfigError::Invalid {
                    key: "component.id",
                    message: format!("`{}` must be a non-empty NATS subject token", component.id),
                });
            }
            if component.instances == InstanceMode::Reuse && component.max_uses == 0 {
                return Err(ConfigError::Invalid {
                    key: "component.max_uses",
                    message: format!("`{}`: must be at least 1", component.id),
                });
            }
            if !ids.insert(component.id.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "component.id",
                    message: format!("`{}` is declared twice", component.id),
                });
            }
        }
        let mut links = std::collections::HashMap::new();
        for link in &self.link {
            if !ids.contains(link.source.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "link.source",
                    message: format!(
                        "`{}` (linking `{}` to `{}`) is not a [[component]] of this host",
                        link.source, link.interface, link.target
                    ),
                });
            }
            if link.target.is_empty() || link.interface.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "link",
                    message: format!("the link from `{}` needs an interface and a target", link.source),
                });
            }
            if link.target.contains(['.', ' ', '*', '>']) {
                // A target not in this host is a NATS subject token (`{lattice}.{target}`).
                return Err(ConfigError::Invalid {
                    key: "link.target",
                    message: format!(
                        "`{}` (linked from `{}` for `{}`) must be a component id: a NATS subject \
                         token, without `.`, space, `*` or `>`",
                        link.target, link.source, link.interface
                    ),
                });
            }
            let key = (
                link.source.as_str(),
                link.name.as_str(),
                super::routing::unversioned(&link.interface),
            );
            if let Some(first) = links.insert(key, link.target.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "link",
                    message: format!(
                        "`{}` links `{}` (link name `{}`) twice: to `{first}` and to `{}`",
                        link.source, link.interface, link.name, link.target
                    ),
                });
            }
        }
        if let Some(entry) = &self.entry {
            if !ids.contains(entry.component.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "entry.component",
                    message: format!("`{}` is not a [[component]] of this host", entry.component),
                });
            }
        }
        self.nats.validate()?;
        Ok(())
    }
}

/// The environment variables [`HostConfig::apply_env`] reads.
pub const ENV_VARS: &[&str] = &[
    "WRPC_RING_TRANSPORT",
    "WRPC_RING_LATTICE",
    "WRPC_RING_RING_CAPACITY",
    "WRPC_RING_RING_POOL_IDLE",
    "WRPC_RING_NATS_URL",
    "WRPC_RING_INVOCATION_TIMEOUT",
    "WRPC_RING_MAX_INSTANCES",
    "WRPC_RING_MAX_QUEUED",
    "WRPC_RING_MAX_MEMORY",
    "WRPC_RING_METRICS_ADDR",
    "WRPC_RING_SHUTDOWN_TIMEOUT",
];
