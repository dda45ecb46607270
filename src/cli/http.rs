//! The metrics endpoint: `GET /metrics` over HTTP/1.1 (hyper), in the OpenMetrics
//! text format that Prometheus scrapes (prometheus-client's encoder).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The content type of prometheus-client's text encoding.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections served at once; more wait in the listen backlog. A scraper needs one.
const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send a request's headers before it is dropped, so
/// that idle or slow connections cannot hold the endpoint's slots.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves `registry` there until the returned task is aborted;
/// returns the address bound (the port picked, for port 0).
pub(crate) async fn serve_metrics(
    addr: SocketAddr,
    registry: Registry,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let bound = listener
        .local_addr()
        .context("the metrics listener has no address")?;
    let registry = Arc::new(registry);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%err, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |request| {
                    let registry = registry.clone();
                    async move { Ok::<_, Infallible>(respond(&request, &registry)) }
                });
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%err, "metrics endpoint: connection ended with an error");
                }
            });
        }
    });
    Ok((bound, task))
}

fn respond(request: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        response
            .headers_mut()
            .insert(ALLOW, "GET, HEAD".parse().expect("a valid header"));
        return response;
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => {
            let mut response = reply(StatusCode::OK, text);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, OPENMETRICS.parse().expect("a valid header"));
            response
        }
        Err(err) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {err}\n"),
        ),
    }
}
