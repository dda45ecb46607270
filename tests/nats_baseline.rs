//! The NATS baseline is upstream's wrpc-transport-nats against a real `nats-server`.
#![cfg(feature = "nats")]

mod common;

use futures::StreamExt as _;
use wrpc_transport::{InvokeExt as _, ServeExt as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_baseline_round_trips_through_a_real_server() {
    let server = common::nats::NatsServer::start();
    let nats = async_nats::connect(server.url()).await.unwrap();
    let client = wrpc_transport_nats::Client::new(nats, "default.comp-b", None)
        .await
        .unwrap();
    let invocations = client
        .serve_values::<(String,), (String,)>("test:echo/echo", "greet", Vec::<Box<[Option<usize>]>>::new())
        .await
        .unwrap();
    let handler = tokio::spawn(invocations.for_each(|item| async move {
        let (_cx, (name,), _io, respond) = item.unwrap();
        respond((format!("hello {name}"),)).await.unwrap();
    }));
    let (greeting,) = client
        .invoke_values_blocking::<_, _, (String,)>(
            None,
            "test:echo/echo",
            "greet",
            ("nats".to_string(),),
            &[] as &[&[Option<usize>]],
        )
        .await
        .unwrap();
    assert_eq!(greeting, "hello nats");
    handler.abort();
}
