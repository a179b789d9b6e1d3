//! `/agents`: personas with tools, run on tasks.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json as JsonReply};
use domain::{Agent, AgentName, Description, FieldError, Instructions, Paged, Ref, Role, Tenant};
use serde::Deserialize;
use store::agents::{AgentChanges, AgentFilter, NewAgent};
use store::{Constraint, StoreError};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{conflict_on, created, describe, page};
use crate::AppState;
use crate::error::{ApiError, ProblemBody};
use crate::extract::{Json, PathRef, Query, no_query, present};

/// The most tools one agent may have.
const MAX_TOOLS: usize = 64;

/// An agent to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// 1-100 characters, unique in your tenant; no white space at the ends.
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    name: AgentName,
    /// Who the agent is, 1-200 characters.
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    role: Role,
    /// What it does, 1-4096 characters.
    #[schema(value_type = String, min_length = 1, max_length = 4096)]
    description: Description,
    /// Extra system prompt, 0-32768 characters (default empty).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, max_length = 32768)]
    instructions: Option<Instructions>,
    /// Distinct ids of your tools, at most 64 (default none).
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, max_items = 64)]
    tool_ids: Option<Vec<Uuid>>,
}

/// Fields of an agent to change; those left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    /// A new name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, min_length = 1, max_length = 100)]
    name: Option<AgentName>,
    /// A new role.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, min_length = 1, max_length = 200)]
    role: Option<Role>,
    /// A new description.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, min_length = 1, max_length = 4096)]
    description: Option<Description>,
    /// New instructions.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, max_length = 32768)]
    instructions: Option<Instructions>,
    /// The new set of tools (replaces the old; `[]` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, max_items = 64)]
    tool_ids: Option<Vec<Uuid>>,
}

/// Filters and paging for `GET /agents`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAgents {
    /// 1-based page number (1-1,000,000, default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    page: Option<u32>,
    /// Items per page (1-100, default 20).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    page_size: Option<u32>,
    /// Only the agent with this exact name.
    name: Option<String>,
    /// Only the agents using the tool with this name (404 if there is none).
    tool_name: Option<String>,
}

fn name_taken(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("An agent named {name:?} already exists; choose another name.")
}

/// The id of the tenant's agent called `name`, or a 404.
pub async fn id_named(pool: &store::PgPool, tenant: Uuid, name: String) -> Result<Uuid, ApiError> {
    let reference = Ref::Name(name);
    let id = store::agents::resolve(pool, tenant, &reference).await?;
    id.ok_or_else(|| not_found(&reference))
}

/// The 404 for a `{ref}` naming no agent of the tenant.
pub fn not_found(reference: &Ref) -> ApiError {
    ApiError::NotFound(format!(
        "No agent with {} exists in your tenant.",
        describe(reference)
    ))
}

/// Checks `tool_ids` is a set of at most [`MAX_TOOLS`], naming each repeat.
fn check_tool_ids(tool_ids: &[Uuid]) -> Result<(), ApiError> {
    if tool_ids.len() > MAX_TOOLS {
        return Err(ApiError::invalid(
            "tool_ids",
            format!(
                "has {} ids; an agent may have at most {MAX_TOOLS} tools",
                tool_ids.len()
            ),
        ));
    }
    let repeats: Vec<FieldError> = tool_ids
        .iter()
        .enumerate()
        .filter_map(|(index, id)| {
            let first = tool_ids.iter().position(|other| other == id)?;
            (first < index).then(|| {
                FieldError::new(
                    format!("tool_ids[{index}]"),
                    format!("repeats tool_ids[{first}]"),
                )
            })
        })
        .collect();
    if repeats.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(repeats))
    }
}

/// Maps the store's "not your tools" to a 422 naming each such `tool_ids[i]`.
fn unknown_tools(tool_ids: &[Uuid]) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |error| match error {
        StoreError::UnknownTools(missing) => {
            let mut errors: Vec<FieldError> = tool_ids
                .iter()
                .enumerate()
                .filter(|(_, id)| missing.contains(id))
                .map(|(index, id)| {
                    FieldError::new(
                        format!("tool_ids[{index}]"),
                        format!("{id} is not one of your tools"),
                    )
                })
                .collect();
            if errors.is_empty() {
                errors.push(FieldError::new(
                    "tool_ids",
                    "names a tool that was just deleted; retry",
                ));
            }
            ApiError::invalid_fields(errors)
        }
        other => other.into(),
    }
}

/// Create an agent.
#[utoipa::path(post, path = "/agents", tag = "agents",
    operation_id = "create_agent", request_body = CreateAgent,
    responses(
        (status = 201, description = "Created", body = Agent, headers(("Location" = String))),
        (status = 409, description = "The name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or ids that are not your tools", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    uri: Uri,
    Json(body): Json<CreateAgent>,
) -> Result<Response, ApiError> {
    no_query(&uri)?;
    let tool_ids = body.tool_ids.unwrap_or_default();
    check_tool_ids(&tool_ids)?;

    let name = body.name.to_string();
    let agent = NewAgent {
        name: body.name,
        role: body.role,
        description: body.description,
        instructions: body.instructions.unwrap_or_else(Instructions::empty),
        tool_ids: tool_ids.clone(),
    };
    let agent = store::agents::create(&state.pool, tenant.id, agent)
        .await
        .map_err(|error| match error {
            StoreError::UnknownTools(_) => unknown_tools(&tool_ids)(error),
            other => conflict_on(Constraint::AgentName, name_taken(&name))(other),
        })?;
    Ok(created(&format!("/agents/{}", agent.id), agent))
}

/// List your agents, by name.
#[utoipa::path(get, path = "/agents", tag = "agents",
    operation_id = "list_agents", params(ListAgents),
    responses(
        (status = 200, description = "A page of agents", body = Paged<Agent>),
        (status = 404, description = "`tool_name` names no tool", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid query", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<ListAgents>,
) -> Result<JsonReply<Paged<Agent>>, ApiError> {
    let page = page(query.page, query.page_size)?;
    let tool_id = match query.tool_name {
        Some(name) => Some(super::tools::id_named(&state.pool, tenant.id, name).await?),
        None => None,
    };
    let filter = AgentFilter {
        name: query.name,
        tool_id,
    };
    Ok(JsonReply(
        store::agents::list(&state.pool, tenant.id, &filter, page).await?,
    ))
}

/// Get an agent, with its tools, by id or name.
#[utoipa::path(get, path = "/agents/{ref}", tag = "agents",
    operation_id = "get_agent",
    params(("ref" = String, Path, description = "The agent's id or name")),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 404, description = "No such agent", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    reference: PathRef,
    uri: Uri,
) -> Result<JsonReply<Agent>, ApiError> {
    no_query(&uri)?;
    let reference = reference.read()?;
    let agent = store::agents::get(&state.pool, tenant.id, &reference).await?;
    agent.map(JsonReply).ok_or_else(|| not_found(&reference))
}

/// Change some of an agent's fields; `tool_ids` replaces its tools.
#[utoipa::path(put, path = "/agents/{ref}", tag = "agents",
    operation_id = "update_agent", request_body = UpdateAgent,
    params(("ref" = String, Path, description = "The agent's id or name")),
    responses(
        (status = 200, description = "The agent as it is now", body = Agent),
        (status = 404, description = "No such agent", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The new name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or ids that are not your tools", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    reference: PathRef,
    uri: Uri,
    Json(body): Json<UpdateAgent>,
) -> Result<JsonReply<Agent>, ApiError> {
    no_query(&uri)?;
    if let Some(tool_ids) = &body.tool_ids {
        check_tool_ids(tool_ids)?;
    }
    let reference = reference.read()?;

    let name = body
        .name
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let tool_ids = body.tool_ids.clone().unwrap_or_default();
    let changes = AgentChanges {
        name: body.name,
        role: body.role,
        description: body.description,
        instructions: body.instructions,
        tool_ids: body.tool_ids,
    };
    let agent = store::agents::update(&state.pool, tenant.id, &reference, changes)
        .await
        .map_err(|error| match error {
            StoreError::UnknownTools(_) => unknown_tools(&tool_ids)(error),
            other => conflict_on(Constraint::AgentName, name_taken(&name))(other),
        })?;
    agent.map(JsonReply).ok_or_else(|| not_found(&reference))
}

/// Delete an agent. Its history stays; its queued runs are cancelled.
#[utoipa::path(delete, path = "/agents/{ref}", tag = "agents",
    operation_id = "delete_agent",
    params(("ref" = String, Path, description = "The agent's id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such agent", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    reference: PathRef,
    uri: Uri,
) -> Result<Response, ApiError> {
    no_query(&uri)?;
    let reference = reference.read()?;
    if store::agents::delete(&state.pool, tenant.id, &reference).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(&reference))
    }
}
