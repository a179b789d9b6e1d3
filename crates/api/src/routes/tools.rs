//! `/tools`: functions agents may ask a model to call.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json as JsonReply};
use domain::{Description, Paged, Parameters, Ref, Tenant, Tool, ToolName};
use serde::Deserialize;
use store::Constraint;
use store::tools::{Deletion, NewTool, ToolChanges, ToolFilter};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{conflict_on, created, describe, page};
use crate::AppState;
use crate::error::{ApiError, ProblemBody};
use crate::extract::{Json, PathRef, Query, no_query, present};

/// A tool to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTool {
    /// 1-64 of `A-Z a-z 0-9 _ -`, unique in your tenant.
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    name: ToolName,
    /// What the tool does, 1-4096 characters.
    #[schema(value_type = String, min_length = 1, max_length = 4096)]
    description: Description,
    /// JSON Schema of the arguments: `type` `object`, `properties` (if
    /// given) an object, at most 16 KiB of compact JSON; default
    /// `{"type":"object","properties":{}}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable = false)]
    parameters: Option<Parameters>,
}

/// Fields of a tool to change; those left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTool {
    /// A new name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, min_length = 1, max_length = 64,
        pattern = "^[A-Za-z0-9_-]+$")]
    name: Option<ToolName>,
    /// A new description.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, min_length = 1, max_length = 4096)]
    description: Option<Description>,
    /// New parameters, under the same rules as on creation.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable = false)]
    parameters: Option<Parameters>,
}

/// Filters and paging for `GET /tools`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTools {
    /// 1-based page number (1-1,000,000, default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    page: Option<u32>,
    /// Items per page (1-100, default 20).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    page_size: Option<u32>,
    /// Only the tool with this exact name.
    name: Option<String>,
    /// Only the tools of the agent with this name (404 if there is none).
    agent_name: Option<String>,
}

fn name_taken(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("A tool named {name:?} already exists; choose another name.")
}

/// The id of the tenant's tool called `name`, or a 404.
pub async fn id_named(pool: &store::PgPool, tenant: Uuid, name: String) -> Result<Uuid, ApiError> {
    let reference = Ref::Name(name);
    let id = store::tools::resolve(pool, tenant, &reference).await?;
    id.ok_or_else(|| not_found(&reference))
}

fn not_found(reference: &Ref) -> ApiError {
    ApiError::NotFound(format!(
        "No tool with {} exists in your tenant.",
        describe(reference)
    ))
}

/// Create a tool.
#[utoipa::path(post, path = "/tools", tag = "tools",
    operation_id = "create_tool", request_body = CreateTool,
    responses(
        (status = 201, description = "Created", body = Tool, headers(("Location" = String))),
        (status = 409, description = "The name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    uri: Uri,
    Json(body): Json<CreateTool>,
) -> Result<Response, ApiError> {
    no_query(&uri)?;
    let name = body.name.to_string();
    let tool = NewTool {
        name: body.name,
        description: body.description,
        parameters: body.parameters.unwrap_or_default(),
    };
    let tool = store::tools::create(&state.pool, tenant.id, tool)
        .await
        .map_err(conflict_on(Constraint::ToolName, name_taken(&name)))?;
    Ok(created(&format!("/tools/{}", tool.id), tool))
}

/// List your tools, by name.
#[utoipa::path(get, path = "/tools", tag = "tools",
    operation_id = "list_tools", params(ListTools),
    responses(
        (status = 200, description = "A page of tools", body = Paged<Tool>),
        (status = 404, description = "`agent_name` names no agent", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid query", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<ListTools>,
) -> Result<JsonReply<Paged<Tool>>, ApiError> {
    let page = page(query.page, query.page_size)?;
    let agent_id = match query.agent_name {
        Some(name) => Some(super::agents::id_named(&state.pool, tenant.id, name).await?),
        None => None,
    };
    let filter = ToolFilter {
        name: query.name,
        agent_id,
    };
    Ok(JsonReply(
        store::tools::list(&state.pool, tenant.id, &filter, page).await?,
    ))
}

/// Get a tool by id or name.
#[utoipa::path(get, path = "/tools/{ref}", tag = "tools",
    operation_id = "get_tool",
    params(("ref" = String, Path, description = "The tool's id or name")),
    responses(
        (status = 200, description = "The tool", body = Tool),
        (status = 404, description = "No such tool", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    reference: PathRef,
    uri: Uri,
) -> Result<JsonReply<Tool>, ApiError> {
    no_query(&uri)?;
    let reference = reference.read()?;
    let tool = store::tools::get(&state.pool, tenant.id, &reference).await?;
    tool.map(JsonReply).ok_or_else(|| not_found(&reference))
}

/// Change some of a tool's fields.
#[utoipa::path(put, path = "/tools/{ref}", tag = "tools",
    operation_id = "update_tool", request_body = UpdateTool,
    params(("ref" = String, Path, description = "The tool's id or name")),
    responses(
        (status = 200, description = "The tool as it is now", body = Tool),
        (status = 404, description = "No such tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The new name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    reference: PathRef,
    uri: Uri,
    Json(body): Json<UpdateTool>,
) -> Result<JsonReply<Tool>, ApiError> {
    no_query(&uri)?;
    let reference = reference.read()?;
    let name = body
        .name
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let changes = ToolChanges {
        name: body.name,
        description: body.description,
        parameters: body.parameters,
    };
    let tool = store::tools::update(&state.pool, tenant.id, &reference, changes)
        .await
        .map_err(conflict_on(Constraint::ToolName, name_taken(&name)))?;
    tool.map(JsonReply).ok_or_else(|| not_found(&reference))
}

/// Delete a tool no agent uses.
#[utoipa::path(delete, path = "/tools/{ref}", tag = "tools",
    operation_id = "delete_tool",
    params(("ref" = String, Path, description = "The tool's id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Agents still use it", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    reference: PathRef,
    uri: Uri,
) -> Result<Response, ApiError> {
    no_query(&uri)?;
    let reference = reference.read()?;
    match store::tools::delete(&state.pool, tenant.id, &reference).await? {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT.into_response()),
        Deletion::NotFound => Err(not_found(&reference)),
        Deletion::InUse(agents) => Err(ApiError::Conflict(format!(
            "The tool is still used by agent(s) {}; remove it from them first.",
            agents
                .iter()
                .map(|name| format!("{name:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
