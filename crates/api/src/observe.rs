//! One span and one log line per request, request ids, and HTTP metrics.
//!
//! The span carries method, route (the matched pattern, never the raw path,
//! so ids don't explode its cardinality), request id, tenant id (filled in
//! by authentication), status and duration. Metrics have no tenant label:
//! `/metrics` is public and tenants are many.
//!
//! A client's `X-Request-Id` is echoed as sent when it is 1-1,024 printable
//! ASCII characters (spaces included); otherwise it is dropped and replaced
//! by a fresh UUID, so what is echoed, logged and stored stays printable and
//! bounded.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use tracing::field::Empty;

/// The header carrying the request's id.
const REQUEST_ID: &str = "x-request-id";

/// Latency buckets, in seconds, for every duration histogram.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's metrics registry, installed on first use. The API and the
/// worker render the same registry, so `dev` mode shows both on each.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let recorder = builder.set_buckets(&BUCKETS).map_or_else(
                |_| PrometheusBuilder::new().build_recorder(),
                PrometheusBuilder::build_recorder,
            );
            let handle = recorder.handle();
            // Only fails if a recorder is already installed; keep that one.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The longest client request id kept.
const MAX_REQUEST_ID: usize = 1024;

/// Drops a client's `X-Request-Id` that is empty, too long, not printable
/// ASCII, or sent more than once, so that a fresh one takes its place.
pub fn drop_invalid_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let mut ids = headers.get_all(REQUEST_ID).iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(id), None) => is_valid_request_id(id.as_bytes()),
        _ => false,
    };
    if !keep {
        headers.remove(REQUEST_ID);
    }
    request
}

fn is_valid_request_id(id: &[u8]) -> bool {
    // HTTP trims the value's ends, so a space can only stand inside it.
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|byte| byte.is_ascii_graphic() || *byte == b' ')
}

/// Middleware: the request's span, its log line and its metrics.
pub async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %request_id,
        tenant_id = Empty,
        status = Empty,
        duration_ms = Empty,
    );

    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();

    let status = response.status().as_u16();
    span.record("status", status);
    span.record(
        "duration_ms",
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    );
    span.in_scope(|| tracing::info!("request finished"));

    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("agent_platform_http_requests_total", &labels).increment(1);
    metrics::histogram!("agent_platform_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    response
}
