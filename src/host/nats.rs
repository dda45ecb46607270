//! The host's one NATS connection, and the wRPC NATS clients built on it, one per
//! target prefix, created on first use and reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::connection::State;

/// How long to wait for a TCP connection to the NATS server per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct NatsLink {
    url: String,
    client: async_nats::Client,
    /// wRPC clients by prefix; built on `client`, so they share its connection.
    wrpc: Mutex<HashMap<Arc<str>, wrpc_transport_nats::Client>>,
}

impl NatsLink {
    /// Connects in the background: the host starts even when NATS is down, and the
    /// connection is retried (and re-established after a loss) for as long as it runs.
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(CONNECT_TIMEOUT)
            .reconnect_delay_callback(|attempts| Duration::from_millis((100 * attempts as u64).min(1000)))
            .connect(url)
            .await
            .with_context(|| format!("invalid NATS url `{url}`"))?;
        // Give a running server the moment it needs to accept us, so that a host
        // started next to a healthy NATS can serve over it at once; a server that is
        // down costs the host this much start-up time, no more.
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        while client.connection_state() != State::Connected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Self {
            url: url.to_string(),
            client,
            wrpc: Mutex::default(),
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

    /// The wRPC client for `prefix`, created once and cached.
    pub(crate) async fn wrpc(
        &self,
        prefix: &Arc<str>,
        queue_group: Option<Arc<str>>,
    ) -> anyhow::Result<wrpc_transport_nats::Client> {
        if let Some(client) = self
            .wrpc
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(prefix)
        {
            return Ok(client.clone());
        }
        self.ensure_connected()?;
        let client = wrpc_transport_nats::Client::new(self.client.clone(), prefix.clone(), queue_group)
            .await
            .with_context(|| {
                format!(
                    "failed to set up a wRPC client for `{prefix}` on NATS `{}`",
                    self.url
                )
            })?;
        let mut cache = self.wrpc.lock().unwrap_or_else(PoisonError::into_inner);
        // If another call raced us here, keep the first client and drop ours.
        Ok(cache.entry(prefix.clone()).or_insert(client).clone())
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
