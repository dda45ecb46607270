//! A real `nats-server` on a random loopback port, started by a test and stopped when
//! dropped.
//!
//! The binary is `$WRPC_RING_NATS_SERVER` if set, else `nats-server` on `PATH`, else
//! Debian's `/usr/sbin/nats-server` (`apt-get install nats-server`; `scripts/test` does).

#![allow(dead_code)] // each test binary uses a different part

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a freshly started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `nats-server`, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WRPC_RING_NATS_SERVER") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    on_path
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .expect(
            "nats-server not found: install it (apt-get install nats-server) or set WRPC_RING_NATS_SERVER",
        )
}

/// A loopback port reserved for as long as the listener lives: connections to it are
/// accepted by the kernel but never answered, like a NATS server that is down or hung.
/// Keeping it bound (rather than "a port that was free a moment ago") means no other
/// test can start a server on it meanwhile.
pub fn dead_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

impl NatsServer {
    /// Starts a server on a port the server picks itself (`-p -1`), so that tests
    /// running in parallel can never end up sharing one server.
    pub fn start() -> Self {
        Self::spawn("-1", &[])
    }

    /// Starts a server on `port` (for a restart on the port a stopped server had).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(&port.to_string(), &[])
    }

    /// Starts a server with the configuration file `config` (authorization, TLS,
    /// operator mode), on a port it picks itself as [`start`](Self::start) does: the
    /// command line's address and port override any in the file.
    pub fn start_with_config(config: &Path) -> Self {
        Self::start_with_args(&["-c".as_ref(), config.as_os_str()])
    }

    /// Starts a server with extra command-line arguments (`--user`, `--auth`, …).
    pub fn start_with_args(args: &[&OsStr]) -> Self {
        Self::spawn("-1", args)
    }

    fn spawn(port: &str, extra: &[&OsStr]) -> Self {
        let mut child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", port])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to start nats-server");
        // The server logs the address it listens on; read it, then keep draining the
        // log on a thread so that the server never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut tx = Some(tx);
            // Until it listens, keep what it says: a server that exits (a bad config
            // file) explains why in these lines.
            let mut log = String::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(addr.trim().to_string()));
                    }
                } else if tx.is_some() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(log));
            }
        });
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addr)) => addr,
            failed => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let log = match failed {
                    Ok(Err(log)) => log,
                    _ => format!("no listen address within {START_TIMEOUT:?}"),
                };
                panic!("nats-server (port {port}, args {extra:?}) did not start ({status}):\n{log}")
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .unwrap_or_else(|_| panic!("unexpected listen address `{addr}`"));
        let server = Self {
            child: Some(child),
            port: addr.port(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept on {addr} within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until the server has handled every command `conn` sent so far (its `serve`
/// subscriptions above all), by a round trip through the server.
///
/// `async_nats::Client::flush` only writes the connection's buffer out: a client on
/// another connection that publishes right after may still find no subscriber and get
/// "no responders" (NATS orders commands per connection, not across connections). The
/// host does the same before it reports a component served.
#[cfg(feature = "nats")]
pub async fn confirm_subscriptions(conn: &async_nats::Client) {
    use futures::StreamExt as _;

    let inbox = conn.new_inbox();
    let mut echo = conn.subscribe(inbox.clone()).await.unwrap();
    conn.publish(inbox, bytes::Bytes::new()).await.unwrap();
    tokio::time::timeout(START_TIMEOUT, echo.next())
        .await
        .expect("the NATS server did not echo a confirmation in time")
        .expect("the NATS connection closed while confirming subscriptions");
}
