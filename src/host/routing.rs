//! Who calls what: the calling context ([`CallContext`]) and the routing table that
//! resolves a call to its target component and the local transport that reaches it.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Semaphore;

use super::local::LocalTransport;
use super::metrics::TargetCounters;
use crate::Headers;
use crate::transport::hash::FxHashMap;

/// The link name used when a call names none, as in wasmCloud.
pub const DEFAULT_LINK_NAME: &str = "default";

/// The header carrying the calling component's id to the callee.
///
/// A remote peer on the same NATS lattice can set it to anything: it says who claims
/// to call, and is not an authorization boundary.
pub const SOURCE_ID_HEADER: &str = "source-id";

/// The header carrying the link name the caller called through.
pub const LINK_NAME_HEADER: &str = "link-name";

/// Who is calling, and through which link: the [`Dispatcher`](super::Dispatcher)'s
/// invocation context.
///
/// It carries the headers its calls send (`source-id`, `link-name`), built once when
/// the context is made: every call through it shares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    source: Arc<str>,
    link_name: Option<Arc<str>>,
    headers: Headers,
}

impl CallContext {
    /// A call from component `source` through the default link.
    pub fn new(source: impl Into<Arc<str>>) -> Self {
        let source = source.into();
        let headers = Self::headers_for(&source, DEFAULT_LINK_NAME);
        Self {
            source,
            link_name: None,
            headers,
        }
    }

    /// The same call through link `name`.
    #[must_use]
    pub fn with_link_name(mut self, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        self.headers = Self::headers_for(&self.source, &name);
        self.link_name = Some(name);
        self
    }

    fn headers_for(source: &str, link_name: &str) -> Headers {
        let mut headers = Headers::new();
        headers.insert(SOURCE_ID_HEADER, source.to_string());
        headers.insert(LINK_NAME_HEADER, link_name.to_string());
        headers
    }

    /// The calling component.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The link name (`"default"` unless set).
    pub fn link_name(&self) -> &str {
        self.link_name.as_deref().unwrap_or(DEFAULT_LINK_NAME)
    }

    /// The headers a call in this context sends.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// `interface` without its `@version`, the form links are keyed by.
pub(crate) fn unversioned(interface: &str) -> &str {
    interface.split_once('@').map_or(interface, |(name, _)| name)
}

/// A component served in this host.
#[derive(Debug, Clone)]
pub(crate) struct LocalComponent {
    /// The local transport under this component's prefix (`None` with `transport = "nats"`).
    pub(crate) transport: Option<LocalTransport>,
    /// Calls the component may serve at once (`limits.max_instances`), shared by
    /// every serving of it (a component replaced on reload keeps its limit).
    pub(crate) permits: Arc<Semaphore>,
    /// `add_component`s not yet undone by a `remove_component`: the component leaves
    /// the table at 0.
    pub(crate) added: usize,
}

/// Where a link leads: the target component, and the counts of calls to it.
#[derive(Debug, Clone)]
pub(crate) struct LinkTarget {
    pub(crate) id: Arc<str>,
    pub(crate) counters: Arc<TargetCounters>,
}

/// Interface (unversioned) → target component, for one source and link name.
pub(crate) type Targets = FxHashMap<Arc<str>, LinkTarget>;

/// The routing table; replaced as a whole on every change, so that a call holds a
/// consistent snapshot without holding any lock. Its keys (component ids, link names,
/// interfaces) come from the host's config, never from a peer, so they are hashed with
/// FxHash, not SipHash: three lookups per call.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoutingTable {
    /// source → link name → interface (unversioned) → target component.
    pub(crate) links: FxHashMap<Arc<str>, FxHashMap<Arc<str>, Targets>>,
    pub(crate) local: FxHashMap<Arc<str>, LocalComponent>,
}

impl RoutingTable {
    /// The interface (as the link table spells it) and the target of a call from `cx`
    /// to `instance`.
    ///
    /// # Errors
    ///
    /// If no link matches, naming the caller, the interface and the link name.
    pub(crate) fn resolve(
        &self,
        cx: &CallContext,
        instance: &str,
    ) -> anyhow::Result<(&Arc<str>, &LinkTarget)> {
        self.links
            .get(cx.source())
            .and_then(|by_name| by_name.get(cx.link_name()))
            .and_then(|by_interface| by_interface.get_key_value(unversioned(instance)))
            .with_context(|| {
                format!(
                    "no link from component `{}` for interface `{instance}` on link `{}`",
                    cx.source(),
                    cx.link_name()
                )
            })
    }
}
