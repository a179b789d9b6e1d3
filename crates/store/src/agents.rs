//! Agents and the set of tools each may use.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{Agent, AgentName, Description, Instructions, Page, Paged, Ref, Role, Tool};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::StoreError;
use crate::tools::{ToolRow, tool_columns};

/// An agent to create.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// Its name, free in the tenant.
    pub name: AgentName,
    /// Who it is.
    pub role: Role,
    /// What it does.
    pub description: Description,
    /// Extra system prompt.
    pub instructions: Instructions,
    /// Distinct ids of the tenant's tools.
    pub tool_ids: Vec<Uuid>,
}

/// Fields to change; `None` keeps the current value. `tool_ids` replaces
/// the whole set.
#[derive(Debug, Clone, Default)]
pub struct AgentChanges {
    /// A new name.
    pub name: Option<AgentName>,
    /// A new role.
    pub role: Option<Role>,
    /// A new description.
    pub description: Option<Description>,
    /// New instructions.
    pub instructions: Option<Instructions>,
    /// The new set of tools.
    pub tool_ids: Option<Vec<Uuid>>,
}

/// Which agents to list.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    /// Only the agent with this exact name.
    pub name: Option<String>,
    /// Only the agents using this tool.
    pub tool_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: Uuid,
    name: String,
    role: String,
    description: String,
    instructions: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl AgentRow {
    fn with_tools(self, tools: Vec<Tool>) -> Agent {
        Agent {
            id: self.id,
            name: self.name,
            role: self.role,
            description: self.description,
            instructions: self.instructions,
            tools,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

macro_rules! agent_columns {
    () => {
        "id, name, role, description, instructions, created_at, updated_at"
    };
}

/// Creates an agent with its tools, all of which must be the tenant's.
pub async fn create(pool: &PgPool, tenant: Uuid, agent: NewAgent) -> Result<Agent, StoreError> {
    let mut tx = pool.begin().await?;
    check_tools_exist(&mut tx, tenant, &agent.tool_ids).await?;

    let row: AgentRow = sqlx::query_as(concat!(
        "INSERT INTO agents (tenant_id, id, name, role, description, instructions) ",
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        agent_columns!()
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(agent.name.as_str())
    .bind(agent.role.as_str())
    .bind(agent.description.as_str())
    .bind(agent.instructions.as_str())
    .fetch_one(&mut *tx)
    .await?;
    link_tools(&mut tx, tenant, row.id, &agent.tool_ids).await?;
    let tools = tools_of(&mut tx, tenant, row.id).await?;

    tx.commit().await?;
    Ok(row.with_tools(tools))
}

/// The id a `{ref}` names: an id as given, or the id of the agent so named.
pub async fn resolve(
    executor: impl PgExecutor<'_>,
    tenant: Uuid,
    reference: &Ref,
) -> Result<Option<Uuid>, StoreError> {
    let by_name = "SELECT id FROM agents WHERE tenant_id = $1 AND name = $2";
    crate::resolve_ref(executor, by_name, tenant, reference).await
}

/// The agent a `{ref}` names, with its tools, if it is one of the tenant's.
/// One query: every run's submission reads its agent this way.
pub async fn get(
    pool: &PgPool,
    tenant: Uuid,
    reference: &Ref,
) -> Result<Option<Agent>, StoreError> {
    /// The agent's columns on every row, and one tool (or none) per row.
    macro_rules! agent_with_tools {
        ($where:literal) => {
            concat!(
                "SELECT a.id, a.name, a.role, a.description, a.instructions, a.created_at, ",
                "a.updated_at, t.id AS tool_id, t.name AS tool_name, ",
                "t.description AS tool_description, t.parameters AS tool_parameters, ",
                "t.created_at AS tool_created_at, t.updated_at AS tool_updated_at ",
                "FROM agents a LEFT JOIN agent_tools l ON l.tenant_id = a.tenant_id ",
                "AND l.agent_id = a.id LEFT JOIN tools t ON t.tenant_id = l.tenant_id ",
                "AND t.id = l.tool_id WHERE a.tenant_id = $1 AND ",
                $where,
                " ORDER BY t.name"
            )
        };
    }

    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        agent: AgentRow,
        tool_id: Option<Uuid>,
        tool_name: Option<String>,
        tool_description: Option<String>,
        tool_parameters: Option<sqlx::types::Json<serde_json::Value>>,
        tool_created_at: Option<DateTime<Utc>>,
        tool_updated_at: Option<DateTime<Utc>>,
    }

    let query = match reference {
        Ref::Id(id) => sqlx::query_as::<_, Row>(agent_with_tools!("a.id = $2"))
            .bind(tenant)
            .bind(*id),
        Ref::Name(name) => sqlx::query_as(agent_with_tools!("a.name = $2"))
            .bind(tenant)
            .bind(name.as_str()),
    };
    let rows = query.fetch_all(pool).await?;

    let mut tools = Vec::with_capacity(rows.len());
    let mut agent = None;
    for row in rows {
        if let (
            Some(id),
            Some(name),
            Some(description),
            Some(parameters),
            Some(created_at),
            Some(updated_at),
        ) = (
            row.tool_id,
            row.tool_name,
            row.tool_description,
            row.tool_parameters,
            row.tool_created_at,
            row.tool_updated_at,
        ) {
            tools.push(Tool {
                id,
                name,
                description,
                parameters: parameters.0,
                created_at,
                updated_at,
            });
        }
        agent.get_or_insert(row.agent);
    }
    Ok(agent.map(|agent| agent.with_tools(tools)))
}

/// A page of the tenant's agents, by name, each with its tools.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    filter: &AgentFilter,
    page: Page,
) -> Result<Paged<Agent>, StoreError> {
    let rows: Vec<AgentRow> = sqlx::query_as(concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents WHERE tenant_id = $1 AND ($2::text IS NULL OR name = $2) ",
        "AND ($3::uuid IS NULL OR id IN ",
        "(SELECT agent_id FROM agent_tools WHERE tenant_id = $1 AND tool_id = $3)) ",
        "ORDER BY name LIMIT $4 OFFSET $5"
    ))
    .bind(tenant)
    .bind(filter.name.as_deref())
    .bind(filter.tool_id)
    .bind(page.fetch_limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;

    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut tools = tools_of_many(pool, tenant, &ids).await?;
    let agents = rows
        .into_iter()
        .map(|row| {
            let own = tools.remove(&row.id).unwrap_or_default();
            row.with_tools(own)
        })
        .collect();
    Ok(page.paged(agents))
}

/// Changes the given fields; `updated_at` moves only when something does.
pub async fn update(
    pool: &PgPool,
    tenant: Uuid,
    reference: &Ref,
    changes: AgentChanges,
) -> Result<Option<Agent>, StoreError> {
    let mut tx = pool.begin().await?;
    // Ids that are not the tenant's tools are a 422, which the contract's
    // order of checks puts before the 404 of an agent that does not exist.
    if let Some(tool_ids) = &changes.tool_ids {
        check_tools_exist(&mut tx, tenant, tool_ids).await?;
    }
    let Some(id) = resolve(&mut *tx, tenant, reference).await? else {
        return Ok(None);
    };
    // Lock the agent so two concurrent edits of its tool set serialize.
    let exists: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM agents WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok(None);
    }

    let tools_changed = match &changes.tool_ids {
        Some(tool_ids) => replace_tools(&mut tx, tenant, id, tool_ids).await?,
        None => false,
    };
    let row: AgentRow = sqlx::query_as(concat!(
        "UPDATE agents SET name = coalesce($3, name), role = coalesce($4, role), ",
        "description = coalesce($5, description), instructions = coalesce($6, instructions), ",
        "updated_at = CASE WHEN $7 OR (coalesce($3, name), coalesce($4, role), ",
        "coalesce($5, description), coalesce($6, instructions)) ",
        "IS DISTINCT FROM (name, role, description, instructions) ",
        "THEN now() ELSE updated_at END ",
        "WHERE tenant_id = $1 AND id = $2 RETURNING ",
        agent_columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(changes.name.as_ref().map(AgentName::as_str))
    .bind(changes.role.as_ref().map(Role::as_str))
    .bind(changes.description.as_ref().map(Description::as_str))
    .bind(changes.instructions.as_ref().map(Instructions::as_str))
    .bind(tools_changed)
    .fetch_one(&mut *tx)
    .await?;
    let tools = tools_of(&mut tx, tenant, id).await?;

    tx.commit().await?;
    Ok(Some(row.with_tools(tools)))
}

/// Deletes an agent. Its queued runs are cancelled in the same transaction;
/// running ones finish from their snapshot; its history stays readable.
pub async fn delete(pool: &PgPool, tenant: Uuid, reference: &Ref) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let Some(id) = resolve(&mut *tx, tenant, reference).await? else {
        return Ok(false);
    };
    crate::executions::cancel_queued_of_agent(&mut tx, tenant, id).await?;
    let deleted = sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;

    tx.commit().await?;
    Ok(deleted.rows_affected() > 0)
}

async fn check_tools_exist(
    conn: &mut PgConnection,
    tenant: Uuid,
    tool_ids: &[Uuid],
) -> Result<(), StoreError> {
    if tool_ids.is_empty() {
        return Ok(());
    }
    let found: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM tools WHERE tenant_id = $1 AND id = ANY($2)")
            .bind(tenant)
            .bind(tool_ids)
            .fetch_all(&mut *conn)
            .await?;
    let missing: Vec<Uuid> = tool_ids
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::UnknownTools(missing))
    }
}

async fn link_tools(
    conn: &mut PgConnection,
    tenant: Uuid,
    agent: Uuid,
    tool_ids: &[Uuid],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO agent_tools (tenant_id, agent_id, tool_id) \
         SELECT $1, $2, tool_id FROM unnest($3::uuid[]) AS tool_id",
    )
    .bind(tenant)
    .bind(agent)
    .bind(tool_ids)
    .execute(&mut *conn)
    .await
    .map_err(link_error)?;
    Ok(())
}

/// Replaces the agent's tool set, of ids already checked to be the
/// tenant's tools; says whether it changed.
async fn replace_tools(
    conn: &mut PgConnection,
    tenant: Uuid,
    agent: Uuid,
    tool_ids: &[Uuid],
) -> Result<bool, StoreError> {
    let mut current: Vec<Uuid> = sqlx::query_scalar(
        "SELECT tool_id FROM agent_tools WHERE tenant_id = $1 AND agent_id = $2",
    )
    .bind(tenant)
    .bind(agent)
    .fetch_all(&mut *conn)
    .await?;
    let mut wanted = tool_ids.to_vec();
    current.sort_unstable();
    wanted.sort_unstable();
    if current == wanted {
        return Ok(false);
    }

    sqlx::query("DELETE FROM agent_tools WHERE tenant_id = $1 AND agent_id = $2")
        .bind(tenant)
        .bind(agent)
        .execute(&mut *conn)
        .await?;
    link_tools(conn, tenant, agent, tool_ids).await?;
    Ok(true)
}

/// A tool deleted between our existence check and the insert trips the
/// foreign key: report it like any other id that is not a tool.
fn link_error(error: sqlx::Error) -> StoreError {
    match StoreError::from(error) {
        StoreError::Conflict(crate::Constraint::AgentToolLink) => StoreError::UnknownTools(vec![]),
        other => other,
    }
}

async fn tools_of(
    conn: &mut PgConnection,
    tenant: Uuid,
    agent: Uuid,
) -> Result<Vec<Tool>, StoreError> {
    let rows: Vec<ToolRow> = sqlx::query_as(concat!(
        "SELECT ",
        tool_columns!(),
        " FROM tools WHERE tenant_id = $1 AND id IN ",
        "(SELECT tool_id FROM agent_tools WHERE tenant_id = $1 AND agent_id = $2) ORDER BY name"
    ))
    .bind(tenant)
    .bind(agent)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Tool::from).collect())
}

async fn tools_of_many(
    pool: &PgPool,
    tenant: Uuid,
    agents: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Tool>>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct LinkedTool {
        agent_id: Uuid,
        #[sqlx(flatten)]
        tool: ToolRow,
    }

    if agents.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<LinkedTool> = sqlx::query_as(
        "SELECT agent_tools.agent_id, tools.id, tools.name, tools.description, \
         tools.parameters, tools.created_at, tools.updated_at \
         FROM agent_tools JOIN tools \
         ON tools.tenant_id = agent_tools.tenant_id AND tools.id = agent_tools.tool_id \
         WHERE agent_tools.tenant_id = $1 AND agent_tools.agent_id = ANY($2) ORDER BY tools.name",
    )
    .bind(tenant)
    .bind(agents)
    .fetch_all(pool)
    .await?;

    let mut by_agent: HashMap<Uuid, Vec<Tool>> = HashMap::new();
    for row in rows {
        by_agent
            .entry(row.agent_id)
            .or_default()
            .push(row.tool.into());
    }
    Ok(by_agent)
}
