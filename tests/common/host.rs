//! A host of real components for the runtime tests: a [`Runtime`] serving
//! examples/components/wasm, linked as a test says, called as component `test`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wrpc_ring::host::{ByteSize, CallContext, ComponentConfig, HostConfig, TransportKind};

use wrpc_ring::runtime::{Component, Runtime, Serving};
use wrpc_transport::InvokeExt as _;

const NO_RESULT_PATHS: &[&[Option<usize>]] = &[];

/// The example component `name`'s file.
pub fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/components/wasm")
        .join(format!("{name}.wasm"))
}

/// The runtime tests' host config: `transport`, NATS at `nats` if given, a 20 s timeout
/// (a debug build on a loaded machine) and 64 MiB per instance.
pub fn config(transport: TransportKind, nats: Option<&super::nats::NatsServer>) -> HostConfig {
    let mut config = HostConfig {
        transport,
        ..HostConfig::default()
    };
    config.nats.url = nats.map(super::nats::NatsServer::url);
    config.limits.invocation_timeout = Duration::from_secs(20);
    config.limits.max_memory = ByteSize(64 << 20);
    config
}

/// A runtime and the components it serves.
pub struct TestHost {
    pub runtime: Runtime,
    pub components: Vec<Arc<Component>>,
    pub serving: Vec<Serving>,
}

/// A runtime on a dispatcher of its own for `config`, serving nothing yet.
pub async fn runtime(config: &HostConfig) -> Runtime {
    let dispatcher = wrpc_ring::host::Dispatcher::new(config).await.unwrap();
    Runtime::new(dispatcher, &config.limits, &config.runtime).unwrap()
}

impl TestHost {
    /// Loads and serves `components` (`(id, file)`, a fresh instance per call), links
    /// `links` (`(source, interface, target)`), and lets the test call as `test`.
    pub async fn start(
        config: HostConfig,
        components: &[(&str, &str)],
        links: &[(&str, &str, &str)],
    ) -> Self {
        let components: Vec<_> = components
            .iter()
            .map(|(id, file)| ComponentConfig::new(*id, wasm(file)))
            .collect();
        Self::start_with(config, &components, links).await
    }

    /// As [`start`](Self::start), with each component's instance mode as given.
    pub async fn start_with(
        config: HostConfig,
        components: &[ComponentConfig],
        links: &[(&str, &str, &str)],
    ) -> Self {
        let runtime = runtime(&config).await;
        let mut serving = Vec::new();
        let mut loaded = Vec::new();
        for component in components {
            let component = runtime.load_config(component).unwrap();
            loaded.push(component.clone());
            serving.push(runtime.serve(component).await.unwrap());
        }
        for (source, interface, target) in links {
            runtime.dispatcher().link(source, interface, "default", target);
        }
        Self {
            runtime,
            components: loaded,
            serving,
        }
    }

    /// Calls `interface#func` with `params` as component `test`, typed as generated
    /// bindings do.
    pub async fn call<P, R>(&self, interface: &str, func: &str, params: P) -> anyhow::Result<R>
    where
        P: wrpc_transport::TupleEncode<wrpc_ring::host::CallOutgoing> + Send,
        R: wrpc_transport::TupleDecode<wrpc_ring::host::CallIncoming> + Send,
        <P::Encoder as tokio_util::codec::Encoder<P>>::Error: std::error::Error + Send + Sync + 'static,
        <R::Decoder as tokio_util::codec::Decoder>::Error: std::error::Error + Send + Sync + 'static,
    {
        self.runtime
            .dispatcher()
            .invoke_values_blocking(CallContext::new("test"), interface, func, params, NO_RESULT_PATHS)
            .await
    }
}
