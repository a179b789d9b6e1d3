//! The worker's own small HTTP server: `/healthz`, `/readyz` and `/metrics`,
//! for probes and Prometheus. Readiness and errors answer in the API's
//! shapes, so one probe or log pipeline reads both processes.

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
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
        .fallback(not_found)
}

/// 200 when PostgreSQL answers, else 503: the worker needs nothing else.
async fn readyz(State(pool): State<PgPool>) -> impl IntoResponse {
    let (status, state) = match store::ping(&pool).await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    (status, Json(json!({"status": state, "postgres": state})))
}

/// A problem-details 404, as the API answers one.
async fn not_found(uri: Uri) -> Response {
    let body = json!({
        "type": "urn:agent-platform:problem:not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "Nothing exists at this path; the worker serves /healthz, /readyz and /metrics.",
        "instance": uri.path(),
    });
    let content_type = [(header::CONTENT_TYPE, "application/problem+json")];
    (StatusCode::NOT_FOUND, content_type, body.to_string()).into_response()
}

/// Serves `router` on `listener` until `stop`.
pub async fn serve_until(listener: TcpListener, router: Router, stop: CancellationToken) {
    let serving =
        axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await });
    if let Err(error) = serving.await {
        tracing::error!(%error, "the health server failed");
    }
}
