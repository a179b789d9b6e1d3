//! The OpenAPI document and the two pages that render it, Swagger UI at
//! `/docs` and ReDoc at `/redoc`. Every asset is compiled into the binary:
//! the docs work on a machine without internet access.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::{ApiError, Problem};

/// ReDoc's standalone bundle (MIT, see assets/redoc/LICENSE), as shipped.
const REDOC_BUNDLE: &str = include_str!("../assets/redoc/redoc.standalone.js");

/// The one asset the bundle fetches from elsewhere: the logo beside its
/// "API docs by Redocly" credit.
const REDOCLY_LOGO: &str = "https://cdn.redoc.ly/redoc/logo-mini.svg";

/// An empty image in its place, so the page asks nothing of the internet;
/// the credit itself stays.
const BLANK_IMAGE: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E";

/// The bundle as served, built on first request.
static REDOC_JS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| REDOC_BUNDLE.replace(REDOCLY_LOGO, BLANK_IMAGE));

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

/// Declares on every operation the errors that do not depend on the route:
/// on a keyed one 401, 429 and 503 (the key, the request limit and the
/// stores are checked first) and 422 (every keyed route refuses query
/// parameters it does not take, and U+0000 in its path), and on one with a
/// body 400, 413 and 415. A route's own declaration of a status is kept,
/// given the `Retry-After` header where the status has one.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                declare_common_responses(operation);
            }
        }
    }
}

fn declare_common_responses(operation: &mut Operation) {
    // Public routes opt out of the document's security with an empty list.
    let keyed = operation.security.is_none();
    let has_body = operation.request_body.is_some();
    let common = [
        (
            keyed,
            "401",
            "`X-API-Key` missing, unknown, revoked or repeated",
            Some("WWW-Authenticate"),
        ),
        (keyed, "429", "Request limit reached", Some("Retry-After")),
        (
            keyed,
            "503",
            "The database (or the rate limiter, set to deny) is unreachable",
            Some("Retry-After"),
        ),
        (
            keyed,
            "422",
            "A query parameter the route does not take, or U+0000 in the path",
            None,
        ),
        (has_body, "400", "The body is not valid JSON", None),
        (has_body, "413", "The body is over 1 MiB", None),
        (has_body, "415", "The body is not declared as JSON", None),
    ];
    for (applies, status, description, header) in common {
        if !applies {
            continue;
        }
        let response = operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description));
        if let (Some(name), RefOr::T(response)) = (header, response) {
            response
                .headers
                .entry(name.to_owned())
                .or_insert_with(|| RefOr::T(Header::default()));
        }
    }
}

/// A problem-document response.
fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = Content::new(Some(Ref::from_schema_name("ProblemBody")));
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", content)
        .build()
        .into()
}

/// The base document, before routes add their paths.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Routes serving `/openapi.json`, `/docs` and `/redoc`.
pub fn routes<S: Clone + Send + Sync + 'static>(mut openapi: OpenApi) -> Router<S> {
    // Applied here, not as a derive modifier: those run before the routes
    // have added their operations.
    CommonResponses.modify(&mut openapi);
    let redoc = Redoc::with_url("/redoc", openapi.clone())
        .custom_html(include_str!("../assets/redoc/index.html"));
    Router::new()
        .merge(
            SwaggerUi::new("/docs")
                .url("/openapi.json", openapi)
                // Swagger UI's default validator badge is an image fetched
                // from validator.swagger.io on any non-local host.
                .config(Config::default().validator_url("none")),
        )
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
        REDOC_JS.as_str(),
    )
}
