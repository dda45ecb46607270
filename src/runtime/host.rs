//! A whole host built from its config: dispatcher, runtime, components, links; and its
//! live changes (relinking on a new config) and graceful stop.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Component, Runtime, Serving};
use crate::host::{ComponentConfig, Dispatcher, HostConfig, LinkConfig};

/// A host: the [`Dispatcher`], the [`Runtime`], and every `[[component]]` of the config
/// loaded, linked as its `[[link]]`s say, and served.
#[derive(Debug)]
pub struct Host {
    runtime: Runtime,
    config: HostConfig,
    components: HashMap<String, Arc<Component>>,
    serving: HashMap<String, Serving>,
}

/// Checks that every link's target is a component of `components` or reachable over
/// NATS.
fn check_links(config: &HostConfig, is_component: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    for link in &config.link {
        if !is_component(&link.target) && config.nats.url.is_none() {
            anyhow::bail!(
                "link from `{}` for `{}` targets `{}`, which is not a [[component]] of this host, \
                 and no [nats] url is configured to reach it on another host",
                link.source,
                link.interface,
                link.target
            );
        }
    }
    Ok(())
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
        check_links(config, |id| components.contains_key(id))?;
        dispatcher.set_links(&config.link);
        let mut serving = HashMap::new();
        for (id, instance) in &components {
            serving.insert(id.clone(), runtime.serve(instance.clone()).await?);
        }
        Ok(Self {
            runtime,
            config: config.clone(),
            components,
            serving,
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

    /// The config the host runs now (as [`start`](Self::start)ed or last
    /// [`reload`](Self::reload)ed).
    pub fn config(&self) -> &HostConfig {
        &self.config
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

    /// Applies `config`'s components and links to the running host (what
    /// `wrpc-ring serve` does on SIGHUP):
    ///
    /// 1. components added, or whose `[[component]]` changed, are loaded; a change of
    ///    any other table is refused, since it needs a restart;
    /// 2. they start serving (a changed component serves in both versions for a moment,
    ///    sharing its `max_instances`);
    /// 3. every link is replaced at once, in one routing-table swap: a call sees all of
    ///    the old links or all of the new ones;
    /// 4. components removed, and the old versions of changed ones, stop serving.
    ///
    /// Calls in flight finish on the table and the instances they started with. On an
    /// error nothing has changed: the old config stays in force.
    ///
    /// # Errors
    ///
    /// If the new config is invalid, changes a table that needs a restart, names a
    /// component that cannot be loaded, or links to a target neither here nor
    /// reachable; each naming what was wrong.
    pub async fn reload(&mut self, config: &HostConfig) -> anyhow::Result<ReloadSummary> {
        config.validate()?;
        let old = &self.config;
        for (table, same) in [
            ("transport", old.transport == config.transport),
            ("lattice", old.lattice == config.lattice),
            ("[ring]", old.ring == config.ring),
            ("[nats]", old.nats == config.nats),
            ("[limits]", old.limits == config.limits),
            ("[runtime]", old.runtime == config.runtime),
        ] {
            if !same {
                anyhow::bail!("`{table}` changed: that takes a restart of the host");
            }
        }
        let old_components: BTreeMap<&str, &ComponentConfig> =
            old.component.iter().map(|c| (c.id.as_str(), c)).collect();
        let new_components: BTreeMap<&str, &ComponentConfig> =
            config.component.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut summary = ReloadSummary::default();
        let mut loaded = Vec::new();
        for (id, component) in &new_components {
            match old_components.get(id) {
                Some(before) if before == component => continue,
                Some(_) => summary.replaced.push(id.to_string()),
                None => summary.added.push(id.to_string()),
            }
            loaded.push(self.runtime.load_config(component)?);
        }
        summary.removed = old_components
            .keys()
            .filter(|id| !new_components.contains_key(*id))
            .map(|id| id.to_string())
            .collect();
        check_links(config, |id| new_components.contains_key(id))?;

        let mut started = Vec::with_capacity(loaded.len());
        for component in &loaded {
            // On an error the new servings made so far are dropped: each undoes its own
            // `add_component`, so the routes are as they were.
            started.push(self.runtime.serve(component.clone()).await?);
        }

        self.runtime.dispatcher().set_links(&config.link);
        summary.links = diff_links(&old.link, &config.link);

        for component in loaded {
            self.components.insert(component.id().to_string(), component);
        }
        for serving in started {
            // Replaces (and so drops, stopping) the old version of a changed component.
            self.serving.insert(serving.component().to_string(), serving);
        }
        for id in &summary.removed {
            self.components.remove(id);
            self.serving.remove(id);
        }
        self.config = config.clone();
        Ok(summary)
    }

    /// Stops accepting calls from other hosts (over NATS), while this host's own
    /// components keep calling each other: the first step of a graceful shutdown.
    pub fn stop_accepting_remote(&mut self) {
        for serving in self.serving.values_mut() {
            serving.stop_accepting_remote();
        }
    }

    /// Calls being served now, per component (only those with any), sorted by id.
    pub fn calls_in_flight(&self) -> Vec<(String, usize)> {
        self.dispatcher()
            .gauges()
            .components
            .into_iter()
            .filter(|c| c.instances_in_use + c.queued > 0)
            .map(|c| (c.component, c.instances_in_use + c.queued))
            .collect()
    }

    /// Stops accepting remote calls, then waits up to `timeout` for the calls in
    /// flight to finish. Returns the calls still in flight when it gave up (empty if
    /// all finished). Those run on their own tasks until the async runtime shuts down
    /// (`wrpc-ring serve` exits then, which aborts them: their callers read an abort
    /// or a closed connection).
    pub async fn drain(&mut self, timeout: Duration) -> Vec<(String, usize)> {
        self.stop_accepting_remote();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self.calls_in_flight();
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What a [`Host::reload`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadSummary {
    /// Components loaded and served for the first time.
    pub added: Vec<String>,
    /// Components whose `[[component]]` changed: loaded again, and served anew.
    pub replaced: Vec<String>,
    /// Components no longer served.
    pub removed: Vec<String>,
    /// Link changes.
    pub links: LinkChanges,
}

/// How the links changed in a [`Host::reload`], counted by (source, link name,
/// interface).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkChanges {
    /// New links.
    pub added: usize,
    /// Links gone.
    pub removed: usize,
    /// Links whose target changed.
    pub retargeted: usize,
}

fn diff_links(old: &[LinkConfig], new: &[LinkConfig]) -> LinkChanges {
    let key = |l: &LinkConfig| {
        let interface = l
            .interface
            .split_once('@')
            .map_or(l.interface.clone(), |(i, _)| i.to_string());
        ((l.source.clone(), l.name.clone(), interface), l.target.clone())
    };
    let old: BTreeMap<_, _> = old.iter().map(key).collect();
    let new: BTreeMap<_, _> = new.iter().map(key).collect();
    let mut changes = LinkChanges::default();
    for (k, target) in &new {
        match old.get(k) {
            None => changes.added += 1,
            Some(before) if before != target => changes.retargeted += 1,
            Some(_) => {}
        }
    }
    changes.removed = old.keys().filter(|k| !new.contains_key(*k)).count();
    changes
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &[String]| {
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        };
        write!(
            f,
            "components added: {}; replaced: {}; removed: {}; links added: {}, removed: {}, retargeted: {}",
            list(&self.added),
            list(&self.replaced),
            list(&self.removed),
            self.links.added,
            self.links.removed,
            self.links.retargeted
        )
    }
}
