//! The OpenAPI document and the two pages that render it, Swagger UI at
//! `/docs` and ReDoc at `/redoc`. Every asset is compiled into the binary:
//! the docs work on a machine without internet access.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi as _};
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, Problem};

/// ReDoc's standalone bundle (MIT, see assets/redoc/LICENSE).
const REDOC_JS: &str = include_str!("../assets/redoc/redoc.standalone.js");

/// The document's fixed parts; paths and schemas are collected from the
/// route handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Mini Agent Platform",
        description = "Create tools and agents, run agents on tasks with a chosen model, and \
            read back every execution. Runs are submitted and polled: `POST /agents/{ref}/run` \
            answers 202 at once; poll `GET /executions/{id}` until its status is terminal. \
            Every error is an RFC 9457 problem document.",
    ),
    modifiers(&ApiKeyAuth),
    security(("api_key" = [])),
    tags(
        (name = "tools", description = "Functions an agent may ask the model to call"),
        (name = "agents", description = "Personas with tools"),
        (name = "runs", description = "Running agents and reading executions"),
        (name = "operations", description = "Health, readiness and metrics; no key needed"),
    )
)]
pub struct ApiDoc;

/// Declares the `X-API-Key` header scheme, so "Try it out" can send it.
struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "Your tenant's API key",
            ))),
        );
    }
}

/// The base document, before routes add their paths.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Routes serving `/openapi.json`, `/docs` and `/redoc`.
pub fn routes<S: Clone + Send + Sync + 'static>(openapi: OpenApi) -> Router<S> {
    let redoc = Redoc::with_url("/redoc", openapi.clone())
        .custom_html(include_str!("../assets/redoc/index.html"));
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .merge(redoc)
        .route("/redoc/redoc.standalone.js", get(redoc_js))
        .layer(middleware::map_response(problem_for_bare_404))
}

/// Swagger UI answers a path under `/docs/` it has no asset for with a bare
/// 404; give it the problem document every other unknown path gets.
async fn problem_for_bare_404(response: Response) -> Response {
    if response.status() == StatusCode::NOT_FOUND
        && response.extensions().get::<Problem>().is_none()
    {
        return ApiError::NotFound("Nothing exists at this path; see /docs.".to_owned())
            .into_response();
    }
    response
}

async fn redoc_js() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}
