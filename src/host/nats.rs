//! The host's one NATS connection, and the wRPC NATS clients built on it: one per
//! served component, and callers' clients, each lent to one call at a time.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use std::time::Instant;

use anyhow::Context as _;
use async_nats::connection::State;
use async_nats::{ConnectErrorKind, ConnectOptions};

use super::config::{NatsConfig, NatsTlsConfig};

/// How long to wait for a TCP connection to the NATS server per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest the first connection attempt (TCP, TLS, authentication) may take before
/// the host gives up waiting and starts, connecting in the background: the TCP connect
/// is bounded by [`CONNECT_TIMEOUT`], this bounds a server that accepts but never
/// answers.
const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);

pub(crate) struct NatsLink {
    url: String,
    client: async_nats::Client,
    /// Callers' wRPC clients between calls ([`NatsLink::lease`]); built on `client`,
    /// so they share its connection.
    idle: IdleClients,
}

impl NatsLink {
    /// Connects to `url` as `config` says (credentials, TLS).
    ///
    /// The first attempt is made here. If the server cannot be reached, the host starts
    /// anyway and the connection is retried in the background (and re-established after
    /// a loss) for as long as it runs. If the server answers but rejects this host (its
    /// credentials, its certificate, or the server's certificate), this fails: retrying
    /// would not help, and a host that silently never joins the lattice is worse.
    ///
    /// # Errors
    ///
    /// An invalid url, a secret or certificate file that cannot be read, a variable
    /// that is not set, or a server that rejects the connection. No message contains a
    /// secret: they name the key, file or variable it came from.
    pub(crate) async fn connect(url: &str, config: &NatsConfig) -> anyhow::Result<Self> {
        let auth = Auth::load(config)?;
        if let Some(tls) = &config.tls {
            check_tls_files(tls)?;
        }
        let options = || -> anyhow::Result<ConnectOptions> {
            let mut options = auth.apply(
                ConnectOptions::new()
                    .connection_timeout(CONNECT_TIMEOUT)
                    .reconnect_delay_callback(|attempts| {
                        Duration::from_millis((100 * attempts as u64).min(1000))
                    })
                    .event_callback(|event| async move { log_event(event) }),
            )?;
            if let Some(tls) = &config.tls {
                options = options.require_tls(tls.required);
                if let Some(ca) = &tls.ca_file {
                    options = options.add_root_certificates(ca.clone());
                }
                if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                    options = options.add_client_certificate(cert.clone(), key.clone());
                }
            }
            Ok(options)
        };
        let first = tokio::time::timeout(FIRST_ATTEMPT_TIMEOUT, options()?.connect(url)).await;
        let client = match first {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => match rejection(&err) {
                Some(Rejection::Url) => return Err(err).with_context(|| format!("invalid NATS url `{url}`")),
                Some(Rejection::Auth) => anyhow::bail!(
                    "NATS server `{url}` rejected this host's credentials ({}): {err}",
                    auth.describe()
                ),
                Some(Rejection::Signing) => anyhow::bail!(
                    "cannot answer NATS server `{url}`'s challenge with {} (not a valid user nkey seed?): {err}",
                    auth.describe()
                ),
                Some(Rejection::Tls(reason, plain)) => {
                    let hint = if plain {
                        " (the server does not speak TLS on this port: check the url, or set `nats.tls.required = false`)"
                    } else {
                        tls_hint(config)
                    };
                    anyhow::bail!("TLS with NATS server `{url}` failed: {reason}{hint}")
                }
                None => {
                    tracing::warn!(url, error = %err, "NATS unreachable at start: connecting in the background");
                    options()?
                        .retry_on_initial_connect()
                        .connect(url)
                        .await
                        .with_context(|| format!("invalid NATS url `{url}`"))?
                }
            },
            Err(_elapsed) => {
                tracing::warn!(url, "NATS did not answer at start: connecting in the background");
                options()?
                    .retry_on_initial_connect()
                    .connect(url)
                    .await
                    .with_context(|| format!("invalid NATS url `{url}`"))?
            }
        };
        Ok(Self {
            url: url.to_string(),
            client,
            idle: IdleClients::default(),
        })
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Fails at once, naming the server, unless the connection is up.
    pub(crate) fn ensure_connected(&self) -> anyhow::Result<()> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => anyhow::bail!(
                "NATS server `{}` is unreachable (connection {}); only components on this host can be called",
                self.url,
                match state {
                    State::Pending => "not yet established",
                    _ => "lost, reconnecting",
                }
            ),
        }
    }

    /// A wRPC client for one call to `prefix`, lent to that call alone until it ends
    /// (the [`ClientLease`] is dropped), then rested for [`CLIENT_REST`] before
    /// another call may take it.
    ///
    /// Why a call does not share its client: wrpc-transport-nats 0.31 routes a client's
    /// replies in one task, which learns of each call's reply subjects from a command
    /// that `invoke` sends down a tokio mpsc channel before it publishes the
    /// invocation. That channel is FIFO per sender only: a slot that another sender has
    /// claimed but not yet written hides every later slot from the receiver, so a
    /// command whose `send` has returned can still be invisible to it. With one client
    /// per target, other calls send on the same channel (their subscriptions, and the
    /// unsubscriptions that dropped streams send from spawned tasks); when one of them
    /// is descheduled mid-send, the router finds no subscriber for the callee's
    /// handshake and its results, drops them, and the caller waits until its timeout.
    /// `wrpc-ring run --transport nats` lost 1–4 calls this way in 6 of 44 rounds of
    /// 10,000 pipeline calls; the router's log showed exactly the lost calls'
    /// handshakes dropped "with no subscriber" (docs/benchmarks.md, "Session 7").
    ///
    /// A lent client has one other sender at most: the unsubscriptions of its previous
    /// call, sent from tasks spawned when that call's streams dropped. The rest gives
    /// them time to run. A new client per call would leave no other sender at all, but
    /// it halved the NATS path's throughput (a `SUB` and an `UNSUB` per call, each of
    /// which resets the server's subject cache).
    pub(crate) async fn lease(&self, prefix: &Arc<str>) -> anyhow::Result<ClientLease> {
        self.ensure_connected()?;
        let rested = {
            let mut idle = lock(&self.idle);
            let now = Instant::now();
            idle.get_mut(prefix).and_then(|clients| {
                let (since, _) = clients.front()?;
                if now.saturating_duration_since(*since) < CLIENT_REST {
                    return None;
                }
                clients.pop_front().map(|(_, client)| client)
            })
        };
        let client = match rested {
            Some(client) => client,
            None => wrpc_transport_nats::Client::new(self.client.clone(), prefix.clone(), None)
                .await
                .with_context(|| {
                    format!(
                        "failed to set up a wRPC client for `{prefix}` on NATS `{}`",
                        self.url
                    )
                })?,
        };
        Ok(ClientLease {
            client: Some(client),
            prefix: prefix.clone(),
            idle: self.idle.clone(),
        })
    }

    /// Clients for `prefix` given back and not lent again (resting or rested).
    #[cfg(test)]
    pub(crate) fn idle_clients(&self, prefix: &str) -> usize {
        lock(&self.idle).get(prefix).map_or(0, VecDeque::len)
    }
}

/// How long a caller's wRPC client rests after its call before another call may take
/// it ([`NatsLink::lease`]): long enough for the previous call's spawned
/// unsubscriptions to have run, unless a thread was descheduled for that long.
const CLIENT_REST: Duration = Duration::from_millis(50);

/// Callers' clients kept per target prefix, resting or ready; a client given back
/// beyond that is dropped. At 2,000 calls/s to one target about 100 rest at once.
const IDLE_CLIENTS: usize = 256;

/// Callers' wRPC clients by target prefix, each with the time its last call ended,
/// oldest first.
type IdleClients = Arc<Mutex<HashMap<Arc<str>, VecDeque<(Instant, wrpc_transport_nats::Client)>>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One call's wRPC client ([`NatsLink::lease`]); given back, to rest, when dropped.
pub(crate) struct ClientLease {
    client: Option<wrpc_transport_nats::Client>,
    prefix: Arc<str>,
    idle: IdleClients,
}

impl ClientLease {
    pub(crate) fn client(&self) -> &wrpc_transport_nats::Client {
        self.client
            .as_ref()
            .expect("a lease holds its client until dropped")
    }
}

impl fmt::Debug for ClientLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLease")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for ClientLease {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut idle = lock(&self.idle);
        let clients = idle.entry(self.prefix.clone()).or_default();
        if clients.len() < IDLE_CLIENTS {
            clients.push_back((Instant::now(), client));
        }
    }
}

/// Waits until the NATS server has processed every command this connection sent so far
/// (subscriptions in particular), by a round trip through the server.
///
/// `Client::flush` only writes out the connection's buffer: a subscription flushed that
/// way may not be known to the server yet when another connection publishes to it (and
/// gets "no responders"). A message to our own fresh inbox comes back only after the
/// server has handled everything sent before it on this connection.
pub(crate) async fn confirm_subscriptions(nats: &async_nats::Client) -> anyhow::Result<()> {
    use futures::StreamExt as _;

    let inbox = nats.new_inbox();
    let mut echo = nats
        .subscribe(inbox.clone())
        .await
        .context("failed to subscribe to a confirmation inbox")?;
    nats.publish(inbox, bytes::Bytes::new())
        .await
        .context("failed to publish a confirmation")?;
    tokio::time::timeout(CONNECT_TIMEOUT, echo.next())
        .await
        .context("the NATS server did not confirm the subscription in time")?
        .context("the NATS connection closed while confirming a subscription")?;
    Ok(())
}

/// Logs what the connection reports in the background: after a start while NATS was
/// down, a server that later rejects this host is seen only here.
fn log_event(event: async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Connected => tracing::info!("NATS connected"),
        Event::Disconnected => tracing::warn!("NATS disconnected: reconnecting"),
        Event::ServerError(err) => tracing::error!(error = %err, "NATS server error"),
        Event::ClientError(err) => tracing::error!(error = %err, "NATS connection error"),
        other => tracing::debug!(event = %other, "NATS event"),
    }
}

/// Why a server that answered refused this host, or `None` when it could not be
/// reached (worth retrying).
enum Rejection {
    /// The url does not parse.
    Url,
    /// The server refused the credentials.
    Auth,
    /// The nkey seed could not sign the server's nonce.
    Signing,
    /// The TLS handshake failed: why, and whether the server answered in plain text.
    Tls(String, bool),
}

fn rejection(err: &async_nats::ConnectError) -> Option<Rejection> {
    match err.kind() {
        ConnectErrorKind::ServerParse => return Some(Rejection::Url),
        ConnectErrorKind::AuthorizationViolation => return Some(Rejection::Auth),
        ConnectErrorKind::Authentication => return Some(Rejection::Signing),
        ConnectErrorKind::Tls => return Some(Rejection::Tls(err.to_string(), false)),
        _ => {}
    }
    // A failed handshake, or a certificate the server refused (an alert read after the
    // handshake), reaches us as an I/O error around a rustls error.
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        let tls = e.downcast_ref::<async_nats::rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<async_nats::rustls::Error>())
        });
        if let Some(tls) = tls {
            let plain = matches!(tls, async_nats::rustls::Error::InvalidMessage(_));
            return Some(Rejection::Tls(tls.to_string(), plain));
        }
        source = e.source();
    }
    None
}

/// What to check after a TLS failure, from what the config has.
fn tls_hint(config: &NatsConfig) -> &'static str {
    match &config.tls {
        None => " (the server requires TLS? configure `[nats.tls]`)",
        Some(NatsTlsConfig { ca_file: None, .. }) => {
            " (the server's certificate is checked against the system's roots; set `nats.tls.ca_file` for a private CA)"
        }
        Some(NatsTlsConfig { cert_file: None, .. }) => {
            " (check `nats.tls.ca_file`; a server that verifies clients needs `nats.tls.cert_file` and `key_file`)"
        }
        Some(_) => " (check `nats.tls.ca_file`, `cert_file` and `key_file`)",
    }
}

/// Fails, naming the key and file, unless each file `[nats.tls]` names can be read and
/// holds PEM; async-nats would otherwise report a bad file only once the server is up.
fn check_tls_files(tls: &NatsTlsConfig) -> anyhow::Result<()> {
    for (key, path) in [
        ("nats.tls.ca_file", &tls.ca_file),
        ("nats.tls.cert_file", &tls.cert_file),
        ("nats.tls.key_file", &tls.key_file),
    ] {
        let Some(path) = path else { continue };
        let text = Secret::from_file(key, path)?;
        if !text.expose().contains("-----BEGIN ") {
            anyhow::bail!("`{key}` `{}` is not a PEM file", path.display());
        }
    }
    Ok(())
}

/// A secret read from a file or an environment variable: a password, token, nkey seed
/// or credentials file. Its `Debug` output is `<redacted>`, and it has no `Display`.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }

    /// The contents of `path`, given by `key`.
    fn from_file(key: &str, path: &Path) -> anyhow::Result<Self> {
        std::fs::read_to_string(path)
            .map(Self)
            .with_context(|| format!("cannot read `{key}` `{}`", path.display()))
    }

    /// A one-line secret from `file` or `var` (whichever is set, if any); a trailing
    /// newline is not part of it.
    fn from_file_or_env(
        (file_key, file): (&str, &Option<PathBuf>),
        (env_key, var): (&str, &Option<String>),
    ) -> anyhow::Result<Option<(Self, String)>> {
        let (secret, source) = match (file, var) {
            (Some(path), _) => (
                Self::from_file(file_key, path)?,
                format!("`{file_key}` `{}`", path.display()),
            ),
            (None, Some(var)) => {
                let value = std::env::var(var).map_err(|e| match e {
                    std::env::VarError::NotPresent => {
                        anyhow::anyhow!("`{env_key}` names the variable `{var}`, which is not set")
                    }
                    std::env::VarError::NotUnicode(_) => {
                        anyhow::anyhow!("`{env_key}` names the variable `{var}`, whose value is not UTF-8")
                    }
                })?;
                (Self(value), format!("`{env_key}` `{var}`"))
            }
            (None, None) => return Ok(None),
        };
        let trimmed = secret.0.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!trimmed.is_empty(), "the secret in {source} is empty");
        Ok(Some((Self(trimmed.to_string()), source)))
    }
}

/// How this host proves who it is to the server, with where each secret came from
/// (for messages: they name the source, never the secret).
#[derive(Debug)]
enum Auth {
    None,
    Credentials {
        source: String,
        text: Secret,
    },
    Nkey {
        source: String,
        seed: Secret,
    },
    Token {
        source: String,
        token: Secret,
    },
    User {
        user: String,
        source: String,
        password: Secret,
    },
}

impl Auth {
    /// Reads the secrets `config` points at. The config was validated: at most one way.
    fn load(config: &NatsConfig) -> anyhow::Result<Self> {
        if let Some(path) = &config.credentials_file {
            return Ok(Self::Credentials {
                text: Secret::from_file("nats.credentials_file", path)?,
                source: format!("`nats.credentials_file` `{}`", path.display()),
            });
        }
        let nkey = Secret::from_file_or_env(
            ("nats.nkey_seed_file", &config.nkey_seed_file),
            ("nats.nkey_seed_env", &config.nkey_seed_env),
        )?;
        if let Some((seed, source)) = nkey {
            return Ok(Self::Nkey { source, seed });
        }
        let token = Secret::from_file_or_env(
            ("nats.token_file", &config.token_file),
            ("nats.token_env", &config.token_env),
        )?;
        if let Some((token, source)) = token {
            return Ok(Self::Token { source, token });
        }
        let password = Secret::from_file_or_env(
            ("nats.password_file", &config.password_file),
            ("nats.password_env", &config.password_env),
        )?;
        match (&config.user, password) {
            (Some(user), Some((password, source))) => Ok(Self::User {
                user: user.clone(),
                source,
                password,
            }),
            _ => Ok(Self::None),
        }
    }

    /// What the host presented, for an error message.
    fn describe(&self) -> String {
        match self {
            Self::None => "no credentials configured".to_string(),
            Self::Credentials { source, .. } => format!("the user JWT and nkey in {source}"),
            Self::Nkey { source, .. } => format!("the nkey seed in {source}"),
            Self::Token { source, .. } => format!("the token in {source}"),
            Self::User { user, source, .. } => format!("user `{user}` with the password in {source}"),
        }
    }

    fn apply(&self, options: ConnectOptions) -> anyhow::Result<ConnectOptions> {
        Ok(match self {
            Self::None => options,
            Self::Credentials { source, text } => options
                .credentials(text.expose())
                .with_context(|| format!("{source} is not a NATS credentials file"))?,
            Self::Nkey { seed, .. } => options.nkey(seed.expose().to_string()),
            Self::Token { token, .. } => options.token(token.expose().to_string()),
            Self::User { user, password, .. } => {
                options.user_and_password(user.clone(), password.expose().to_string())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let secret = "hunter2-secret-value";
        let auths = [
            Auth::Token {
                source: "`nats.token_env` `T`".into(),
                token: Secret(secret.into()),
            },
            Auth::User {
                user: "host-a".into(),
                source: "`nats.password_file` `p`".into(),
                password: Secret(secret.into()),
            },
            Auth::Nkey {
                source: "`nats.nkey_seed_env` `S`".into(),
                seed: Secret(secret.into()),
            },
            Auth::Credentials {
                source: "`nats.credentials_file` `c`".into(),
                text: Secret(secret.into()),
            },
        ];
        for auth in &auths {
            let shown = format!("{auth:?} {}", auth.describe());
            assert!(shown.contains("<redacted>") && !shown.contains(secret), "{shown}");
        }
    }

    /// A caller's client is its call's alone, and is not lent again until it has
    /// rested for [`CLIENT_REST`] (so that its previous call's unsubscriptions have
    /// run); then the same client is lent again rather than a new one built.
    #[tokio::test]
    async fn a_lent_client_rests_before_it_is_lent_again() {
        let server = crate::host::test_nats::NatsServer::start();
        let link = NatsLink::connect(&server.url(), &NatsConfig::default())
            .await
            .unwrap();
        let prefix: Arc<str> = "default.target".into();
        let idle = || link.idle_clients(&prefix);

        let first = link.lease(&prefix).await.unwrap();
        let second = link.lease(&prefix).await.unwrap(); // the first is lent: a new one
        assert_eq!(idle(), 0);
        drop(first);
        drop(second);
        assert_eq!(idle(), 2, "both given back, resting");
        let third = link.lease(&prefix).await.unwrap();
        assert_eq!(idle(), 2, "a resting client was lent again");
        tokio::time::sleep(CLIENT_REST + Duration::from_millis(20)).await;
        let fourth = link.lease(&prefix).await.unwrap();
        assert_eq!(idle(), 1, "a rested client was not lent again");
        drop((third, fourth));
        assert_eq!(idle(), 3);
    }
}
