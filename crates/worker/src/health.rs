//! The worker's own small HTTP server: `/healthz`, `/readyz` and `/metrics`,
//! for probes and Prometheus.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use store::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The health routes, rendering `metrics` on `/metrics`.
pub fn router(pool: PgPool, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(pool)
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
}

async fn readyz(State(pool): State<PgPool>) -> impl IntoResponse {
    match store::ping(&pool).await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "postgres unavailable"),
    }
}

/// Serves `router` on `listener` until `stop`.
pub async fn serve_until(listener: TcpListener, router: Router, stop: CancellationToken) {
    let serving =
        axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await });
    if let Err(error) = serving.await {
        tracing::error!(%error, "the health server failed");
    }
}
