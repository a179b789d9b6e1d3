//! Tools: functions agents may ask a model to call.

use chrono::{DateTime, Utc};
use domain::{Description, Page, Paged, Parameters, Ref, Tool, ToolName};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool, types::Json};
use uuid::Uuid;

use crate::{Constraint, StoreError};

/// A tool to create.
#[derive(Debug, Clone)]
pub struct NewTool {
    /// Its name, free in the tenant.
    pub name: ToolName,
    /// What it does.
    pub description: Description,
    /// The JSON Schema of its arguments.
    pub parameters: Parameters,
}

/// Fields to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ToolChanges {
    /// A new name.
    pub name: Option<ToolName>,
    /// A new description.
    pub description: Option<Description>,
    /// New parameters.
    pub parameters: Option<Parameters>,
}

/// Which tools to list.
#[derive(Debug, Clone, Default)]
pub struct ToolFilter {
    /// Only the tool with this exact name.
    pub name: Option<String>,
    /// Only the tools of this agent.
    pub agent_id: Option<Uuid>,
}

/// What deleting a tool did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// The tool is gone.
    Deleted,
    /// No such tool in this tenant.
    NotFound,
    /// These agents (by name) still use it.
    InUse(Vec<String>),
}

#[derive(sqlx::FromRow)]
pub(crate) struct ToolRow {
    id: Uuid,
    name: String,
    description: String,
    parameters: Json<Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ToolRow> for Tool {
    fn from(row: ToolRow) -> Self {
        Tool {
            id: row.id,
            name: row.name,
            description: row.description,
            parameters: row.parameters.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The columns of `tools` read into a [`Tool`].
macro_rules! tool_columns {
    () => {
        "id, name, description, parameters, created_at, updated_at"
    };
}
pub(crate) use tool_columns;

/// Creates a tool.
pub async fn create(pool: &PgPool, tenant: Uuid, tool: NewTool) -> Result<Tool, StoreError> {
    let row: ToolRow = sqlx::query_as(concat!(
        "INSERT INTO tools (tenant_id, id, name, description, parameters) ",
        "VALUES ($1, $2, $3, $4, $5) RETURNING ",
        tool_columns!()
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(tool.name.as_str())
    .bind(tool.description.as_str())
    .bind(Json(tool.parameters.as_value()))
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

/// The id a `{ref}` names: an id as given, or the id of the tool so named.
pub async fn resolve(
    executor: impl PgExecutor<'_>,
    tenant: Uuid,
    reference: &Ref,
) -> Result<Option<Uuid>, StoreError> {
    let by_name = "SELECT id FROM tools WHERE tenant_id = $1 AND name = $2";
    crate::resolve_ref(executor, by_name, tenant, reference).await
}

/// The tool a `{ref}` names, if it is one of the tenant's.
pub async fn get(pool: &PgPool, tenant: Uuid, reference: &Ref) -> Result<Option<Tool>, StoreError> {
    let Some(id) = resolve(pool, tenant, reference).await? else {
        return Ok(None);
    };
    let row: Option<ToolRow> = sqlx::query_as(concat!(
        "SELECT ",
        tool_columns!(),
        " FROM tools WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Tool::from))
}

/// A page of the tenant's tools, by name.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    filter: &ToolFilter,
    page: Page,
) -> Result<Paged<Tool>, StoreError> {
    let rows: Vec<ToolRow> = sqlx::query_as(concat!(
        "SELECT ",
        tool_columns!(),
        " FROM tools WHERE tenant_id = $1 AND ($2::text IS NULL OR name = $2) ",
        "AND ($3::uuid IS NULL OR id IN ",
        "(SELECT tool_id FROM agent_tools WHERE tenant_id = $1 AND agent_id = $3)) ",
        "ORDER BY name LIMIT $4 OFFSET $5"
    ))
    .bind(tenant)
    .bind(filter.name.as_deref())
    .bind(filter.agent_id)
    .bind(page.fetch_limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    Ok(page.paged(rows.into_iter().map(Tool::from).collect()))
}

/// Changes the given fields. `updated_at` moves only when a value does.
pub async fn update(
    pool: &PgPool,
    tenant: Uuid,
    reference: &Ref,
    changes: ToolChanges,
) -> Result<Option<Tool>, StoreError> {
    let Some(id) = resolve(pool, tenant, reference).await? else {
        return Ok(None);
    };
    let row: Option<ToolRow> = sqlx::query_as(concat!(
        "UPDATE tools SET name = coalesce($3, name), ",
        "description = coalesce($4, description), parameters = coalesce($5, parameters), ",
        "updated_at = CASE WHEN (coalesce($3, name), coalesce($4, description), ",
        "coalesce($5, parameters)) IS DISTINCT FROM (name, description, parameters) ",
        "THEN now() ELSE updated_at END ",
        "WHERE tenant_id = $1 AND id = $2 RETURNING ",
        tool_columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(changes.name.as_ref().map(ToolName::as_str))
    .bind(changes.description.as_ref().map(Description::as_str))
    .bind(
        changes
            .parameters
            .as_ref()
            .map(|parameters| Json(parameters.as_value())),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Tool::from))
}

/// Deletes a tool no agent uses.
pub async fn delete(pool: &PgPool, tenant: Uuid, reference: &Ref) -> Result<Deletion, StoreError> {
    let Some(id) = resolve(pool, tenant, reference).await? else {
        return Ok(Deletion::NotFound);
    };
    let users = agents_using(pool, tenant, id).await?;
    if !users.is_empty() {
        return Ok(Deletion::InUse(users));
    }

    let deleted = sqlx::query("DELETE FROM tools WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(pool)
        .await;
    match deleted {
        Ok(result) if result.rows_affected() == 0 => Ok(Deletion::NotFound),
        Ok(_) => Ok(Deletion::Deleted),
        // An agent linked the tool between the check and the delete: the
        // foreign key refused, so answer as if the check had seen it.
        Err(error) => match StoreError::from(error) {
            StoreError::Conflict(Constraint::AgentToolLink) => {
                Ok(Deletion::InUse(agents_using(pool, tenant, id).await?))
            }
            other => Err(other),
        },
    }
}

async fn agents_using(pool: &PgPool, tenant: Uuid, tool: Uuid) -> Result<Vec<String>, StoreError> {
    let names = sqlx::query_scalar(
        "SELECT agents.name FROM agent_tools JOIN agents \
         ON agents.tenant_id = agent_tools.tenant_id AND agents.id = agent_tools.agent_id \
         WHERE agent_tools.tenant_id = $1 AND agent_tools.tool_id = $2 ORDER BY agents.name",
    )
    .bind(tenant)
    .bind(tool)
    .fetch_all(pool)
    .await?;
    Ok(names)
}
