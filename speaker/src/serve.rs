//! The operations endpoint every long-running ferrolb command serves: `/metrics` (Prometheus text format),
//! `/healthz` (the process answers) and `/readyz` (the command says it is ready).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ferrolb_allocator::controller::Readiness;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    ready: watch::Receiver<Readiness>,
}

/// Binds `addr` (so that a port in use fails the command at once) and returns the bound address and the
/// server, which serves until dropped.
pub async fn bind(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: watch::Receiver<Readiness>,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Shared { registry, ready });
    Ok((local, async move { axum::serve(listener, app).await }))
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &shared.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "cannot encode metrics\n".to_owned(),
        ),
    }
}

async fn readyz(State(shared): State<Shared>) -> impl IntoResponse {
    let readiness = shared.ready.borrow().clone();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, readiness.report())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        registry.register("ferrolb_test_things", "things", c.clone());
        c.inc();
        let (ready_tx, ready_rx) = watch::channel(Readiness::default());
        let (addr, server) = bind("127.0.0.1:0".parse().unwrap(), Arc::new(registry), ready_rx)
            .await
            .unwrap();
        let server = tokio::spawn(server);

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.0 200"));
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.0 503"), "{not_ready}");
        ready_tx.send_replace(Readiness::ready());
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.0 200"));
        let mut degraded = Readiness::ready();
        degraded
            .unavailable
            .insert("Community", "not found (404)".into());
        ready_tx.send_replace(degraded);
        let answer = get(addr, "/readyz").await;
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(
            answer.contains("degraded: Community unavailable: not found (404)"),
            "{answer}"
        );
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
        assert!(
            metrics.contains("\nferrolb_test_things_total 1\n"),
            "{metrics}"
        );
        server.abort();
    }
}
