//! A whole host built from its config: dispatcher, runtime, components, links.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Component, Runtime, Serving};
use crate::host::{Dispatcher, HostConfig};

/// A host: the [`Dispatcher`], the [`Runtime`], and every `[[component]]` of the config
/// loaded, linked as its `[[link]]`s say, and served.
#[derive(Debug)]
pub struct Host {
    runtime: Runtime,
    components: HashMap<String, Arc<Component>>,
    _serving: Vec<Serving>,
}

impl Host {
    /// Builds the host of `config` and starts serving its components.
    ///
    /// # Errors
    ///
    /// If a component cannot be read, compiled or linked, or a link names a target
    /// neither here nor reachable (no NATS url), each naming what was wrong.
    pub async fn start(config: &HostConfig) -> anyhow::Result<Self> {
        let dispatcher = Dispatcher::new(config).await?;
        let runtime = Runtime::new(dispatcher.clone(), &config.limits, &config.runtime)?;
        let mut components = HashMap::new();
        for component in &config.component {
            let instance = runtime.load_config(component)?;
            components.insert(component.id.clone(), instance);
        }
        for link in &config.link {
            if !components.contains_key(&link.target) && config.nats.url.is_none() {
                anyhow::bail!(
                    "link from `{}` for `{}` targets `{}`, which is not a [[component]] of this host, \
                     and no [nats] url is configured to reach it on another host",
                    link.source,
                    link.interface,
                    link.target
                );
            }
            dispatcher.link(&link.source, &link.interface, &link.name, &link.target);
        }
        let mut serving = Vec::new();
        for instance in components.values() {
            serving.push(runtime.serve(instance.clone()).await?);
        }
        Ok(Self {
            runtime,
            components,
            _serving: serving,
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        self.runtime.dispatcher()
    }

    /// The loaded component `id`.
    ///
    /// # Errors
    ///
    /// If there is none, listing the ones there are.
    pub fn component(&self, id: &str) -> anyhow::Result<&Arc<Component>> {
        self.components.get(id).ok_or_else(|| {
            let mut known: Vec<_> = self.components.keys().map(String::as_str).collect();
            known.sort_unstable();
            anyhow::anyhow!(
                "no component `{id}` in this host (components: {})",
                known.join(", ")
            )
        })
    }
}
