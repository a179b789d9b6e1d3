//! `/executions`: the history of runs, and cancelling one.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json as JsonReply};
use domain::{Execution, ExecutionStatus, Paged, Tenant};
use serde::Deserialize;
use store::executions::{Cancellation, ExecutionFilter};
use utoipa::IntoParams;
use uuid::Uuid;

use super::page;
use crate::AppState;
use crate::error::{ApiError, ProblemBody};
use crate::extract::{PathId, Query, no_query};

/// Filters and paging for `GET /executions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListExecutions {
    /// 1-based page number (1-1,000,000, default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    page: Option<u32>,
    /// Items per page (1-100, default 20).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    page_size: Option<u32>,
    /// Only runs of this agent id (a deleted agent's id still finds them).
    agent_id: Option<Uuid>,
    /// Only runs of the agent that had this name when submitted.
    agent_name: Option<String>,
    /// Only runs in this state.
    #[param(value_type = Option<ExecutionStatus>)]
    status: Option<String>,
}

/// Options of `GET /executions/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetExecution {
    /// `request` adds what was sent to the model.
    include: Option<String>,
}

fn not_found(id: Option<Uuid>) -> ApiError {
    match id {
        Some(id) => ApiError::NotFound(format!("No execution with id {id} exists in your tenant.")),
        None => ApiError::NotFound("No execution has this id: execution ids are UUIDs.".to_owned()),
    }
}

/// List your executions, newest first.
#[utoipa::path(get, path = "/executions", tag = "runs",
    operation_id = "list_executions", params(ListExecutions),
    responses(
        (status = 200, description = "A page of executions", body = Paged<Execution>),
        (status = 422, description = "Invalid query", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<ListExecutions>,
) -> Result<JsonReply<Paged<Execution>>, ApiError> {
    let page = page(query.page, query.page_size)?;
    let status = query
        .status
        .map(|status| status.parse::<ExecutionStatus>())
        .transpose()
        .map_err(|message| ApiError::invalid("status", message))?;
    let filter = ExecutionFilter {
        agent_id: query.agent_id,
        agent_name: query.agent_name,
        status,
    };
    Ok(JsonReply(
        store::executions::list(&state.pool, tenant.id, &filter, page).await?,
    ))
}

/// Get an execution; `?include=request` adds what the model was sent.
#[utoipa::path(get, path = "/executions/{id}", tag = "runs",
    operation_id = "get_execution",
    params(("id" = Uuid, Path, description = "The execution's id"), GetExecution),
    responses(
        (status = 200, description = "The execution", body = Execution),
        (status = 404, description = "No such execution", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid query", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    id: PathId,
    Query(query): Query<GetExecution>,
) -> Result<JsonReply<Execution>, ApiError> {
    let include_request = match query.include.as_deref() {
        None => false,
        Some("request") => true,
        Some(_) => return Err(ApiError::invalid("include", "may only be `request`")),
    };
    let id = id.read()?;
    let id_value = id.ok_or_else(|| not_found(None))?;
    let execution =
        store::executions::get(&state.pool, tenant.id, id_value, include_request).await?;
    execution.map(JsonReply).ok_or_else(|| not_found(id))
}

/// Cancel a queued or running execution.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "runs",
    operation_id = "cancel_execution",
    params(("id" = Uuid, Path, description = "The execution's id")),
    responses(
        (status = 202, description = "Cancelled", body = Execution),
        (status = 404, description = "No such execution", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Already finished", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    id: PathId,
    uri: Uri,
) -> Result<Response, ApiError> {
    no_query(&uri)?;
    let id = id.read()?;
    let id_value = id.ok_or_else(|| not_found(None))?;
    match store::executions::cancel(&state.pool, tenant.id, id_value).await? {
        Cancellation::Cancelled(execution) => {
            Ok((StatusCode::ACCEPTED, JsonReply(*execution)).into_response())
        }
        Cancellation::NotFound => Err(not_found(id)),
        Cancellation::AlreadyFinished(status) => Err(ApiError::Conflict(format!(
            "The execution is already {status}; only queued or running executions can be cancelled."
        ))),
    }
}
