//! Operations endpoints: liveness, readiness and metrics. No key needed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::observe::install_metrics;

/// Readiness, per dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// PostgreSQL: `ok` or `unavailable`.
    postgres: &'static str,
    /// Redis: `ok`, `unavailable`, or `not configured` (limits in process).
    /// Counts toward readiness only when the limiter is set to deny.
    redis: &'static str,
}

fn state_of(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(),
    responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when PostgreSQL answers (and Redis, when the limiter is set to deny),
/// else 503 naming what is down.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (postgres, redis) = tokio::join!(store::ping(&state.pool), async {
        if state.limits.shared() {
            Some(state.limits.ready().await.is_ok())
        } else {
            None
        }
    });
    let postgres_ok = postgres.is_ok();
    let ready = postgres_ok && (!state.limits.required() || redis == Some(true));
    let readiness = Readiness {
        status: state_of(ready),
        postgres: state_of(postgres_ok),
        redis: redis.map_or("not configured", state_of),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// Prometheus metrics of this process.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics() -> Response {
    let body = install_metrics().render();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}
