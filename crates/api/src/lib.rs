//! The HTTP API: authentication, validation, tools, agents, runs and
//! executions, operations endpoints and the interactive docs.
//!
//! The API is stateless: every replica gives the same answers, because all
//! state is in PostgreSQL (and rate-limit counters in Redis). [`serve`] is
//! the one entry point; the binary calls it, the tests call [`serve_with`]
//! when they need shorter timeouts.

pub mod auth;
pub mod docs;
pub mod error;
pub mod extract;
pub mod limits;
pub mod observe;
pub mod routes;
pub mod server;
pub mod submissions;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode, Uri};
use axum::middleware;
use store::PgPool;
use tokio::net::TcpListener;
use tower::util::MapRequestLayer;
use tower::{Layer, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use limits::{OnLimiterError, RateLimits};
pub use routes::models::ModelCatalog;
pub use server::Timeouts;

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::extract::BODY_LIMIT;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Key → tenant, cached.
    pub auth: Authenticator,
    /// Which models run live.
    pub catalog: ModelCatalog,
    /// Per-tenant rate limits.
    pub limits: RateLimits,
    /// Accepted runs, recorded in shared transactions.
    pub submissions: submissions::Submissions,
}

impl AppState {
    /// State for an API reading and writing `pool`; starts the task that
    /// records accepted runs, so call it inside the runtime.
    pub fn new(pool: PgPool, catalog: ModelCatalog, limits: RateLimits) -> Self {
        Self {
            auth: Authenticator::new(pool.clone()),
            submissions: submissions::Submissions::start(pool.clone()),
            pool,
            catalog,
            limits,
        }
    }
}

/// The whole application as a router, before the trailing-slash rewrite;
/// a request not answered within `request_timeout` is a 408.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let (keyed, openapi) = OpenApiRouter::with_openapi(docs::base())
        .routes(routes!(routes::tools::list, routes::tools::create))
        .routes(routes!(
            routes::tools::get,
            routes::tools::update,
            routes::tools::delete
        ))
        .routes(routes!(routes::agents::list, routes::agents::create))
        .routes(routes!(
            routes::agents::get,
            routes::agents::update,
            routes::agents::delete
        ))
        .routes(routes!(routes::runs::run))
        .routes(routes!(routes::executions::list))
        .routes(routes!(routes::executions::get))
        .routes(routes!(routes::executions::cancel))
        .routes(routes!(routes::models::list))
        .split_for_parts();
    // The last layer added runs first: the key, then the request limit.
    let keyed = keyed
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_requests,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));

    let (public, openapi) = OpenApiRouter::with_openapi(openapi)
        .routes(routes!(routes::ops::healthz))
        .routes(routes!(routes::ops::readyz))
        .routes(routes!(routes::ops::metrics))
        .split_for_parts();

    let request_id = HeaderName::from_static("x-request-id");
    keyed
        .merge(public)
        .merge(docs::routes(openapi))
        .fallback(|| async {
            ApiError::NotFound("Nothing exists at this path; see /docs.".to_owned())
        })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(MapRequestLayer::new(observe::drop_invalid_request_id))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(middleware::from_fn(error::render_problems))
                .layer(middleware::from_fn(observe::observe))
                // Inside the two above, so its bare 408 is logged and
                // rendered as a problem like any other error.
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    request_timeout,
                ))
                .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets
/// in-flight requests finish, for at most the default shutdown grace.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Timeouts::default(), shutdown).await
}

/// [`serve`], with other [`Timeouts`] than the defaults.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Installed before the first request, so that one is counted too.
    observe::install_metrics();
    let app = MapRequestLayer::new(trim_trailing_slash).layer(router(state, timeouts.request));
    server::run(listener, app, timeouts, shutdown).await
}

/// `/tools/` answers as `/tools` (no redirect). `/docs` keeps its slash:
/// Swagger UI's assets are relative to `/docs/`.
fn trim_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') && !path.starts_with("/docs") {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let rewritten = match request.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = rewritten.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}
