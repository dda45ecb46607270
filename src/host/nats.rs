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
        Ok(Self {
            url: url.to_string(),
            client,
            wrpc: Mutex::default(),
        })
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
