//! The dispatcher: routes each call to the local transport or to NATS.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Context as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use wrpc_transport::Invoke;

use super::config::{HostConfig, LimitsConfig, LinkConfig, TransportKind};
use super::local::{LocalTransport, invoke_ring};
use super::metrics::{ComponentGauges, HostGauges, Metrics, MetricsSnapshot, TargetMetrics};
use super::nats::{ClientLease, NatsLink};
use super::record::{RecordPool, RecordRef};
use super::routing::{CallContext, LinkTarget, LocalComponent, RoutingTable, Targets, unversioned};
use super::server::{ComponentServer, ServerKind};
use super::streams::{AnyIncoming, AnyOutgoing, CallIncoming, CallOutgoing};
use crate::Headers;
use crate::transport::hash::FxHashMap;

/// How often [`Dispatcher::nats_server_once_connected`] checks whether NATS is reached.
#[cfg(feature = "wasmtime")]
const NATS_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

struct Inner {
    lattice: String,
    limits: LimitsConfig,
    /// The local transport with the empty prefix, or `None` for `transport = "nats"`.
    local: Option<LocalTransport>,
    routes: RwLock<Arc<RoutingTable>>,
    nats: Option<NatsLink>,
    metrics: Arc<Metrics>,
    records: RecordPool,
}

/// Routes each invocation to the component that serves it: over the configured local
/// transport when that component runs in this host, over NATS otherwise.
///
/// A target is resolved the way a wasmCloud 1.x host does: the calling component, the
/// imported interface and the link name (default `"default"`) name a target component
/// id; the wRPC prefix of that component is `{lattice}.{target}`. The callee receives the
/// caller's id and link name as the `source-id` and `link-name` headers.
///
/// Both paths apply the same rules: the invocation timeout (from invoke to the last
/// result byte), the callee's concurrency limit (`max_instances`, applied where it is
/// served, see [`Dispatcher::servers`]), a `tracing` span per call, and metrics per
/// transport ([`Dispatcher::metrics`]).
///
/// Routing changes ([`link`](Self::link), [`add_component`](Self::add_component), …)
/// swap in a new table: calls in flight keep the table they started with, and no lock
/// is held while a call runs, so nested calls (A → B → C) cannot deadlock on it.
///
/// # Examples
///
/// ```
/// use futures::StreamExt as _;
/// use wrpc_ring::host::{CallContext, Dispatcher, HostConfig};
/// use wrpc_transport::{InvokeExt as _, ServeExt as _};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let host = Dispatcher::new(&HostConfig::default()).await?; // ring, no NATS
/// host.add_component("greeter");
/// host.link("caller", "example:hello/greeter", "default", "greeter");
///
/// for server in host.servers("greeter").await? {
///     let calls = server
///         .serve_values::<(String,), (String,)>("example:hello/greeter", "greet", Vec::<Box<[Option<usize>]>>::new())
///         .await?;
///     tokio::spawn(calls.for_each(|call| async move {
///         let (headers, (name,), _io, respond) = call.unwrap();
///         let caller = headers.as_ref().and_then(|h| h.get("source-id")).unwrap_or("?").to_string();
///         respond((format!("hello {name}, from {caller}"),)).await.unwrap();
///     }));
/// }
///
/// let (reply,) = host
///     .invoke_values_blocking::<_, _, (String,)>(
///         CallContext::new("caller"),
///         "example:hello/greeter",
///         "greet",
///         ("you".to_string(),),
///         &[] as &[&[Option<usize>]],
///     )
///     .await?;
/// assert_eq!(reply, "hello you, from caller");
/// assert_eq!(host.metrics().transport(wrpc_ring::host::TransportKind::Ring).calls, 1);
/// # anyhow::Ok(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl Dispatcher {
    /// Builds the dispatcher for `config`. With a NATS url, connects to it (with the
    /// `[nats]` credentials and TLS); while NATS is unreachable the host starts anyway
    /// (and local calls work), connecting in the background.
    ///
    /// # Errors
    ///
    /// If the config is invalid, the NATS url cannot be parsed, a `[nats]` secret or
    /// certificate cannot be read, or the NATS server rejects the host's credentials or
    /// TLS. The message names the key, file or variable at fault, never a secret.
    pub async fn new(config: &HostConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let nats = match &config.nats.url {
            Some(url) => Some(NatsLink::connect(url, &config.nats).await?),
            None => None,
        };
        let metrics = Arc::<Metrics>::default();
        Ok(Self {
            inner: Arc::new(Inner {
                lattice: config.lattice.clone(),
                limits: config.limits.clone(),
                local: LocalTransport::from_config(config),
                routes: RwLock::default(),
                nats,
                records: RecordPool::new(metrics.clone()),
                metrics,
            }),
        })
    }

    /// The transport used between components of this host.
    pub fn transport(&self) -> TransportKind {
        self.inner
            .local
            .as_ref()
            .map_or(TransportKind::Nats, LocalTransport::kind)
    }

    /// The wRPC prefix of `component`: `{lattice}.{component}`.
    pub fn prefix(&self, component: &str) -> String {
        format!("{}.{component}", self.inner.lattice)
    }

    fn routes(&self) -> Arc<RoutingTable> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut RoutingTable)) {
        let mut routes = self.inner.routes.write().unwrap_or_else(PoisonError::into_inner);
        change(Arc::make_mut(&mut routes));
    }

    /// Declares that `component` runs in this host: calls to it take the local path.
    ///
    /// Adding a component that is already here keeps its concurrency limit (a
    /// component replaced by a new version shares its `max_instances` with the old
    /// one while both serve); each `add_component` is undone by one
    /// [`remove_component`](Self::remove_component).
    pub fn add_component(&self, component: &str) {
        self.update(|routes| {
            if let Some(local) = routes.local.get_mut(component) {
                local.added += 1;
                return;
            }
            let local = LocalComponent {
                transport: self
                    .inner
                    .local
                    .as_ref()
                    .map(|t| t.with_prefix(&self.prefix(component))),
                permits: Arc::new(Semaphore::new(self.inner.limits.max_instances)),
                added: 1,
            };
            routes.local.insert(component.into(), local);
        });
    }

    /// Undoes one [`add_component`](Self::add_component): once every one is undone,
    /// `component` no longer runs here and later calls to it go over NATS.
    pub fn remove_component(&self, component: &str) {
        self.update(|routes| {
            if let Some(local) = routes.local.get_mut(component) {
                local.added -= 1;
                if local.added == 0 {
                    routes.local.remove(component);
                }
            }
        });
    }

    /// Links `source`'s import of `interface` (with or without `@version`) on link
    /// `link_name` to component `target`, replacing any previous target.
    pub fn link(&self, source: &str, interface: &str, link_name: &str, target: &str) {
        let target = self.link_target(target);
        self.update(|routes| {
            routes
                .links
                .entry(source.into())
                .or_default()
                .entry(link_name.into())
                .or_default()
                .insert(unversioned(interface).into(), target);
        });
    }

    fn link_target(&self, target: &str) -> LinkTarget {
        let id: Arc<str> = target.into();
        LinkTarget {
            counters: self.inner.metrics.target(&id),
            id,
        }
    }

    /// Replaces every link at once with `links`: a call sees either all of the old
    /// links or all of the new ones, and calls in flight finish on the table they
    /// started with (what `wrpc-ring serve` does on SIGHUP).
    pub fn set_links(&self, links: &[LinkConfig]) {
        let mut table: FxHashMap<Arc<str>, FxHashMap<Arc<str>, Targets>> = FxHashMap::default();
        for link in links {
            table
                .entry(link.source.as_str().into())
                .or_default()
                .entry(link.name.as_str().into())
                .or_default()
                .insert(
                    unversioned(&link.interface).into(),
                    self.link_target(&link.target),
                );
        }
        self.update(|routes| routes.links = table);
    }

    /// Removes the link of `source`'s `interface` on `link_name`; returns whether it
    /// existed.
    pub fn unlink(&self, source: &str, interface: &str, link_name: &str) -> bool {
        let mut removed = false;
        self.update(|routes| {
            if let Some(by_interface) = routes.links.get_mut(source).and_then(|m| m.get_mut(link_name)) {
                removed = by_interface.remove(unversioned(interface)).is_some();
            }
        });
        removed
    }

    /// Where a call from `cx` to `instance` goes now: the target component and the
    /// transport that would carry it.
    ///
    /// # Errors
    ///
    /// If no link matches, naming the caller, the interface and the link name.
    pub fn route(&self, cx: &CallContext, instance: &str) -> anyhow::Result<(String, TransportKind)> {
        let routes = self.routes();
        let (_, target) = routes.resolve(cx, instance)?;
        let target = &target.id;
        let kind = match routes.local.get(target).and_then(|c| c.transport.as_ref()) {
            Some(local) => local.kind(),
            None => TransportKind::Nats,
        };
        Ok((target.to_string(), kind))
    }

    /// The metrics of every call made through this dispatcher so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.inner.metrics.snapshot();
        // A linked target without calls yet shows as zeros on the path it would take,
        // so that its series exist (and rates can be taken) from the start.
        let routes = self.routes();
        let mut idle: Vec<TargetMetrics> = Vec::new();
        for target in routes
            .links
            .values()
            .flat_map(HashMap::values)
            .flat_map(HashMap::values)
        {
            let id = &*target.id;
            if snapshot.targets.iter().chain(&idle).any(|t| t.target == id) {
                continue;
            }
            let transport = match routes.local.get(id).and_then(|c| c.transport.as_ref()) {
                Some(local) => local.kind(),
                None => TransportKind::Nats,
            };
            idle.push(TargetMetrics::idle(id, transport));
        }
        if !idle.is_empty() {
            snapshot.targets.extend(idle);
            snapshot.sort_targets();
        }
        snapshot
    }

    /// What the host holds now: ring pool counters, and each local component's calls
    /// in progress and queued.
    pub fn gauges(&self) -> HostGauges {
        let routes = self.routes();
        let mut components: Vec<ComponentGauges> = routes
            .local
            .iter()
            .map(|(id, local)| ComponentGauges {
                component: id.to_string(),
                instances_in_use: self
                    .inner
                    .limits
                    .max_instances
                    .saturating_sub(local.permits.available_permits()),
                queued: local.transport.as_ref().map_or(0, LocalTransport::queued),
            })
            .collect();
        components.sort_unstable_by(|a, b| a.component.cmp(&b.component));
        HostGauges {
            pool: self.inner.local.as_ref().and_then(LocalTransport::pool_stats),
            components,
        }
    }

    /// The servers on which `component` (added with
    /// [`add_component`](Self::add_component)) must serve its exports: the local
    /// transport (unless `transport = "nats"`), and NATS when a url is configured and
    /// the server is reachable, so that other hosts can call it. Each applies the
    /// component's concurrency limit.
    ///
    /// While NATS is unreachable the NATS server is left out (with a warning) so that
    /// the host still serves its own components; with `transport = "nats"` that is an
    /// error instead, since the component could not be called at all.
    /// The runtime's `Runtime::serve` (feature `wasmtime`) adds the NATS server once
    /// NATS is reached.
    ///
    /// # Errors
    ///
    /// If `component` was not added, or no server could be set up.
    pub async fn servers(&self, component: &str) -> anyhow::Result<Vec<ComponentServer>> {
        Ok(self.servers_now(component).await?.0)
    }

    /// [`servers`](Self::servers), and whether the NATS server was left out because
    /// NATS is not reached yet (then `nats_server_once_connected` gives it).
    pub(crate) async fn servers_now(&self, component: &str) -> anyhow::Result<(Vec<ComponentServer>, bool)> {
        let local = self.local_of(component)?;
        let mut servers = Vec::new();
        if let Some(transport) = local.transport {
            servers.push(ComponentServer {
                kind: ServerKind::Local(transport),
                permits: local.permits.clone(),
            });
        }
        if let Some(nats) = &self.inner.nats {
            if !nats.is_connected() && !servers.is_empty() {
                tracing::warn!(
                    component,
                    url = nats.url(),
                    "NATS unreachable: serving on this host only until it is reached"
                );
                return Ok((servers, true));
            }
            nats.ensure_connected()?;
            servers.push(self.nats_server(component, local.permits).await?);
        }
        Ok((servers, false))
    }

    /// The NATS server of `component`, once NATS is connected: waits for that,
    /// checking every [`NATS_WAIT`].
    ///
    /// # Errors
    ///
    /// If no NATS url is configured, `component` is no longer part of this host, or
    /// the server cannot be set up.
    #[cfg(feature = "wasmtime")]
    pub(crate) async fn nats_server_once_connected(
        &self,
        component: &str,
    ) -> anyhow::Result<ComponentServer> {
        let nats = self.inner.nats.as_ref().context("no NATS url is configured")?;
        while !nats.is_connected() {
            tokio::time::sleep(NATS_WAIT).await;
        }
        let permits = self.local_of(component)?.permits;
        self.nats_server(component, permits).await
    }

    /// The local routes' entry of `component`.
    fn local_of(&self, component: &str) -> anyhow::Result<LocalComponent> {
        self.routes().local.get(component).cloned().with_context(|| {
            format!("component `{component}` is not part of this host (add_component first)")
        })
    }

    /// `component`'s server on NATS, applying `permits`.
    async fn nats_server(&self, component: &str, permits: Arc<Semaphore>) -> anyhow::Result<ComponentServer> {
        let nats = self.inner.nats.as_ref().context("no NATS url is configured")?;
        let prefix: Arc<str> = self.prefix(component).into();
        let group: Arc<str> = prefix.clone();
        let client = wrpc_transport_nats::Client::new(nats.client().clone(), prefix, Some(group))
            .await
            .with_context(|| format!("failed to serve `{component}` on NATS `{}`", nats.url()))?;
        Ok(ComponentServer {
            kind: ServerKind::Nats(client, nats.client().clone()),
            permits,
        })
    }

    /// A call over NATS, on a client lent to it: the client is the call's until its
    /// record ends, and the caller hands it to the record.
    async fn invoke_nats<P>(
        &self,
        target: &str,
        headers: Option<Headers>,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: &[P],
    ) -> anyhow::Result<(AnyOutgoing, AnyIncoming, ClientLease)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        let Some(nats) = &self.inner.nats else {
            anyhow::bail!(
                "component `{target}` does not run in this host, and no NATS url is configured to reach other hosts"
            );
        };
        nats.ensure_connected()?;
        let prefix: Arc<str> = self.prefix(target).into();
        let lease = nats.lease(&prefix).await?;
        let client = lease.client();
        let headers = headers.map(|h| {
            let mut map = async_nats::HeaderMap::new();
            for (name, value) in h.iter() {
                map.append(name, value);
            }
            map
        });
        let (o, i) = client.invoke(headers, instance, func, params, paths).await?;
        Ok((AnyOutgoing::NatsParams(Box::new(o)), AnyIncoming::nats(i), lease))
    }
}

impl Dispatcher {
    /// Routes a call and starts it. The ring answers here, without a future; the other
    /// transports' invocations are boxed with their deadline and the call's end, so that
    /// [`Invoke::invoke`]'s future, which the caller's nest of futures moves several
    /// times, holds little more than its arguments.
    fn start<'a, P>(
        &'a self,
        cx: CallContext,
        instance: &'a str,
        func: &'a str,
        params: Bytes,
        paths: &'a [P],
    ) -> Started<'a>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        let routes = self.routes();
        let (interface, LinkTarget { id: target, counters }) = match routes.resolve(&cx, instance) {
            Ok((interface, target)) => (interface.clone(), target.clone()),
            Err(err) => return Started::Answered(Err(err)),
        };
        let local = routes.local.get(&target).and_then(|c| c.transport.clone());
        drop(routes);
        let kind = local.as_ref().map_or(TransportKind::Nats, LocalTransport::kind);
        let span = tracing::debug_span!(
            "invoke",
            source = cx.source(),
            target = &*target,
            interface = instance,
            function = func,
            transport = kind.as_str(),
        );
        let timeout = self.inner.limits.invocation_timeout;
        let record = self
            .inner
            .records
            .start(kind, timeout, &target, &interface, &counters);
        let headers = Some(cx.headers().clone());
        // The call's one deadline: the record's, which its streams keep to.
        let deadline = record.deadline();
        let end = CallEnd {
            record,
            deadline,
            instance,
            func,
            target,
            kind,
            timeout,
        };
        match local {
            Some(LocalTransport::Ring(ring)) => {
                let result = span.in_scope(|| invoke_ring(&ring, headers, instance, func, params, paths));
                Started::Answered(end.finish(Ok(result)))
            }
            Some(local) => Started::Waiting(Box::pin(async move {
                let call = local.invoke(headers, instance, func, params, paths);
                let result = within(deadline, call).instrument(span).await;
                end.finish(result)
            })),
            None => Started::Waiting(Box::pin(async move {
                let call = self.invoke_nats(&end.target, headers, instance, func, params, paths);
                let result = within(deadline, call).instrument(span).await;
                // The client stays this call's until the call ends.
                let result = result.map(|invoked| {
                    invoked.map(|(outgoing, incoming, lease)| {
                        end.record.hold(lease);
                        (outgoing, incoming)
                    })
                });
                end.finish(result)
            })),
        }
    }
}

impl Invoke for Dispatcher {
    type Context = CallContext;
    type Outgoing = CallOutgoing;
    type Incoming = CallIncoming;

    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        // Out of the `match` before the await, so that the future does not keep the
        // answer's room across it.
        let call = match self.start(cx, instance, func, params, paths.as_ref()) {
            Started::Answered(result) => return result,
            Started::Waiting(call) => call,
        };
        call.await
    }
}

/// A call as [`Dispatcher::start`] left it.
// Returned and matched at once, never stored: boxing the ring's answer would be the
// allocation this type exists to avoid.
#[allow(clippy::large_enum_variant)]
enum Started<'a> {
    /// Answered without waiting.
    Answered(anyhow::Result<(CallOutgoing, CallIncoming)>),
    /// Still to be awaited.
    Waiting(BoxFuture<'a, anyhow::Result<(CallOutgoing, CallIncoming)>>),
}

/// What ending a started call needs: its record, and the names its errors give.
struct CallEnd<'a> {
    record: RecordRef,
    deadline: Option<tokio::time::Instant>,
    instance: &'a str,
    func: &'a str,
    target: Arc<str>,
    kind: TransportKind,
    timeout: std::time::Duration,
}

impl CallEnd<'_> {
    /// The caller's streams of an invocation that went through, or the error that names
    /// the call; either way recorded.
    fn finish(
        self,
        result: Result<anyhow::Result<(AnyOutgoing, AnyIncoming)>, tokio::time::error::Elapsed>,
    ) -> anyhow::Result<(CallOutgoing, CallIncoming)> {
        let Self {
            instance,
            func,
            target,
            kind,
            ..
        } = &self;
        match result {
            Ok(Ok((outgoing, incoming))) => {
                self.record.started();
                Ok((
                    CallOutgoing::new(outgoing, self.record.clone(), self.deadline),
                    CallIncoming::new(incoming, self.record, self.deadline),
                ))
            }
            Ok(Err(err)) => {
                self.record.failed();
                Err(err.context(format!(
                    "call of `{instance}#{func}` on component `{target}` over {kind} failed"
                )))
            }
            Err(_) => {
                self.record.failed();
                anyhow::bail!(
                    "call of `{instance}#{func}` on component `{target}` over {kind} timed out after {:?} (limits.invocation_timeout)",
                    self.timeout
                )
            }
        }
    }
}

/// `call`, unless `deadline` passes first.
async fn within<F: Future>(
    deadline: Option<tokio::time::Instant>,
    call: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, call).await,
        None => Ok(call.await),
    }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("lattice", &self.inner.lattice)
            .field("transport", &self.transport())
            .field("nats", &self.inner.nats.as_ref().map(NatsLink::url))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::test_nats::NatsServer;

    const ECHO: &str = "test:echo/echo@0.1.0";
    const NO_PATHS: [Box<[Option<usize>]>; 0] = [];

    /// The invocation future holds its arguments and a box, not the ring path's answer
    /// or the other paths' timers: wRPC's `invoke_values` keeps it inside its own future,
    /// which callers move and keep for every call in flight (168 bytes when written; it
    /// was 880).
    #[tokio::test]
    async fn the_invocation_future_stays_small() {
        let dispatcher = Dispatcher::new(&HostConfig::default()).await.unwrap();
        let invoke = dispatcher.invoke(CallContext::new("test"), ECHO, "echo", Bytes::new(), NO_PATHS);
        let size = std::mem::size_of_val(&invoke);
        assert!(size <= 256, "Dispatcher::invoke's future takes {size} bytes");
    }

    /// A call over NATS keeps the wRPC client lent to it until the last of its streams
    /// is gone: given back earlier, another call could subscribe on it while this
    /// call's streams still send (docs/benchmarks.md, "Session 7").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nats_call_keeps_its_client_until_its_streams_are_dropped() {
        let nats = NatsServer::start();
        let mut config = HostConfig::default();
        config.nats.url = Some(nats.url());
        let caller = Dispatcher::new(&config).await.unwrap();
        caller.link("test", ECHO, "default", "elsewhere");
        let prefix = caller.prefix("elsewhere");
        let link = caller.inner.nats.as_ref().unwrap();

        // `echo("hi")`; nobody needs to answer for the call's streams to exist.
        let params = Bytes::from_static(b"\x02hi");
        let (outgoing, incoming) = caller
            .invoke(CallContext::new("test"), ECHO, "echo", params, NO_PATHS)
            .await
            .unwrap();
        assert_eq!(link.idle_clients(&prefix), 0, "lent");
        drop(outgoing);
        assert_eq!(
            link.idle_clients(&prefix),
            0,
            "given back while the results reader was still held"
        );
        drop(incoming);
        assert_eq!(
            link.idle_clients(&prefix),
            1,
            "not given back when the call ended"
        );
    }
}
