//! Errors of the HTTP layer and how each becomes an RFC 9457 problem.
//!
//! Policy, in one place:
//! - Handlers and extractors return [`ApiError`]; each variant has one status.
//! - Storage errors convert with `From`: an unreachable database is a 503
//!   with `Retry-After`; anything unexpected is a 500, logged here once with
//!   its cause, while the client sees only the request id to quote.
//! - Expected constraint violations (a taken name) are mapped by the handler
//!   that knows the name, so the `detail` can name it.
//! - Turning an error into a response attaches a [`Problem`] to an empty
//!   response; the [`render_problems`] middleware writes the body, because
//!   only it knows the request's path (`instance`) and id.
//! - An error response that reaches [`render_problems`] empty and without a
//!   [`Problem`] (a library's own 408, say) gets a generic one, so every
//!   error a client sees is a problem document.

use std::borrow::Cow;

use axum::body::HttpBody;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::FieldError;
use serde::Serialize;
use store::StoreError;
use utoipa::ToSchema;

/// What went wrong with a request, by the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// 401: the API key is missing, unknown, revoked or sent more than
    /// once; the text says which to fix.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404: nothing here for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the limit.
    #[error("body too large")]
    PayloadTooLarge,
    /// 415: the body is not declared as JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 422: the request is well-formed but invalid.
    #[error("{detail}")]
    Validation {
        /// One sentence on what is wrong and how to fix it.
        detail: String,
        /// Each offending field.
        errors: Vec<FieldError>,
    },
    /// 429: a rate limit is reached.
    #[error("{detail}")]
    RateLimited {
        /// Which limit, and when to retry.
        detail: String,
        /// Whole seconds until a slot frees.
        retry_after_secs: u64,
    },
    /// 503: a dependency is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 422 with one offending field, whose message also makes the detail.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldError::new(field, message)])
    }

    /// A 422 naming every offending field; the detail describes the first.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [only] => format!("`{}` {}.", only.field, only.message),
            [first, rest @ ..] => {
                format!(
                    "`{}` {} (and {} more problem(s) below).",
                    first.field,
                    first.message,
                    rest.len()
                )
            }
            [] => "The request is invalid.".to_owned(),
        };
        ApiError::Validation { detail, errors }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed-json",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload-too-large",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::Validation { .. } => "validation",
            ApiError::RateLimited { .. } => "rate-limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The client-facing sentence. A 500's is filled in by the renderer,
    /// which knows the request id.
    fn detail(&self) -> String {
        match self {
            ApiError::MethodNotAllowed => {
                "This path does not support that method; see /docs for what it does.".to_owned()
            }
            ApiError::PayloadTooLarge => "The body is over 1 MiB; send a smaller one.".to_owned(),
            ApiError::UnsupportedMediaType => {
                "Send the body as uncompressed JSON, with one `Content-Type: application/json`."
                    .to_owned()
            }
            ApiError::Internal(_) => String::new(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                ApiError::Unavailable("The database is unavailable; retry shortly.".to_owned())
            }
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// The problem a response stands for, attached as an extension until
/// [`render_problems`] writes it out.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: Cow<'static, str>,
    detail: String,
    errors: Vec<FieldError>,
}

impl Problem {
    /// The problem of an error response that came without one: its type
    /// and title from the status, and a sentence that fits any such case.
    fn generic(status: StatusCode, request_id: &str) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        Self {
            status,
            slug: title.to_ascii_lowercase().replace(' ', "-").into(),
            detail: generic_detail(status, request_id),
            errors: Vec::new(),
        }
    }
}

fn generic_detail(status: StatusCode, request_id: &str) -> String {
    if status == StatusCode::REQUEST_TIMEOUT {
        return "The request took too long to arrive or to answer; send it again.".to_owned();
    }
    if status.is_server_error() {
        return format!("The server could not answer; retry, quoting request id {request_id}.");
    }
    "The request was refused; see /docs for what this route accepts.".to_owned()
}

/// An RFC 9457 problem document, as the API writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// A stable identifier of the kind of problem (not a link).
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's short description.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong and how to fix it, in one sentence.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// For 422: every offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldError>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, cause = ?cause, "request failed");
        }
        let status = self.status();
        let mut response = status.into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
            }
            ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        let errors = match &self {
            ApiError::Validation { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        response.extensions_mut().insert(Problem {
            status,
            slug: self.slug().into(),
            detail: self.detail(),
            errors,
        });
        response
    }
}

/// Writes the body of every response that carries a [`Problem`], with the
/// request's path as `instance` and, for a 500, its id in the detail.
pub async fn render_problems(request: Request, next: Next) -> Response {
    let instance = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();

    let response = next.run(request).await;
    let problem = match response.extensions().get::<Problem>() {
        Some(problem) => problem.clone(),
        None if is_bare_error(&response) => Problem::generic(response.status(), &request_id),
        None => return response,
    };

    let detail = if problem.status == StatusCode::INTERNAL_SERVER_ERROR {
        format!(
            "Something went wrong on our side; quote request id {request_id} when reporting it."
        )
    } else {
        problem.detail
    };
    let body = ProblemBody {
        kind: format!("urn:agent-platform:problem:{}", problem.slug),
        title: problem
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_owned(),
        status: problem.status.as_u16(),
        detail,
        instance,
        errors: (!problem.errors.is_empty()).then_some(problem.errors),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let json = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(json))
}

/// An error status with nothing to say: a body, however short, is kept.
fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response.body().size_hint().exact() == Some(0)
}
