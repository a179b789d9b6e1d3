//! The API's routes, one module per resource, and what they share.

pub mod agents;
pub mod executions;
pub mod models;
pub mod ops;
pub mod runs;
pub mod tools;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Page;
use serde::Serialize;
use store::{Constraint, StoreError};

use crate::error::ApiError;

/// A 201 with `Location` and the created resource.
pub fn created<T: Serialize>(location: &str, body: T) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Maps a violation of `constraint` to a 409 with `detail`; other errors as usual.
pub fn conflict_on(
    constraint: Constraint,
    detail: impl FnOnce() -> String,
) -> impl FnOnce(StoreError) -> ApiError {
    move |error| match error {
        StoreError::Conflict(violated) if violated == constraint => ApiError::Conflict(detail()),
        other => other.into(),
    }
}

/// Validates `page` and `page_size` from a query, naming the bad one.
pub fn page(number: Option<u32>, size: Option<u32>) -> Result<Page, ApiError> {
    let number =
        Page::number(number.unwrap_or(1)).map_err(|message| ApiError::invalid("page", message))?;
    let size = Page::size(size.unwrap_or(Page::DEFAULT_SIZE))
        .map_err(|message| ApiError::invalid("page_size", message))?;
    Page::new(number, size).map_err(|message| ApiError::invalid("page", message))
}

/// The tenant-facing name of a `{ref}`, for 404 details.
pub fn describe(reference: &domain::Ref) -> String {
    match reference {
        domain::Ref::Id(id) => format!("id {id}"),
        domain::Ref::Name(name) => format!("name {name:?}"),
    }
}
