//! Errors of the storage layer, classified once so callers can answer well.
//!
//! A unique or foreign-key violation becomes [`StoreError::Conflict`] naming
//! the constraint; a database that cannot be reached (pool timeout, I/O,
//! closed pool) becomes [`StoreError::Unavailable`], which the API turns into
//! a 503. Anything else is a [`StoreError::Database`] error: a bug or an
//! outage the caller logs and answers with a 500.

use uuid::Uuid;

/// A constraint whose violation is an expected outcome, not a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// `tenants_name_key`: the tenant name is taken.
    TenantName,
    /// `api_keys_prefix_key` or `api_keys_hash_key`: a key collided.
    ApiKey,
    /// `tools_name_key`: the tool name is taken in this tenant.
    ToolName,
    /// `agents_name_key`: the agent name is taken in this tenant.
    AgentName,
    /// `agent_tools_tool_fkey`: a link names a tool that is gone, or a tool
    /// still linked was about to be deleted.
    AgentToolLink,
}

impl Constraint {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "tenants_name_key" => Some(Constraint::TenantName),
            "api_keys_prefix_key" | "api_keys_hash_key" => Some(Constraint::ApiKey),
            "tools_name_key" => Some(Constraint::ToolName),
            "agents_name_key" => Some(Constraint::AgentName),
            "agent_tools_tool_fkey" => Some(Constraint::AgentToolLink),
            _ => None,
        }
    }
}

/// What a storage call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique or foreign-key constraint said no.
    #[error("constraint {0:?} was violated")]
    Conflict(Constraint),
    /// Tool ids given for an agent that are not tools of its tenant.
    #[error("{} tool id(s) are not tools of this tenant", .0.len())]
    UnknownTools(Vec<Uuid>),
    /// PostgreSQL could not be reached in time.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else the database said.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The queue's own storage failed.
    #[error("queue error: {0}")]
    Queue(String),
}

impl StoreError {
    /// The database is out of reach, for a `reason` found above this layer
    /// (work shared by many callers failed, or the task doing it is gone).
    pub fn unavailable(reason: &str) -> Self {
        StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(reason.to_owned())))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(constraint) = violated_constraint(&error) {
            return StoreError::Conflict(constraint);
        }
        if unreachable(&error) {
            StoreError::Unavailable(error)
        } else {
            StoreError::Database(error)
        }
    }
}

/// Whether the database failed to serve the statement, rather than refused
/// what it asked. A restart or failover ends sessions mid-statement, which
/// arrives as the server's own error (SQLSTATE class 08, or 57P01-57P03),
/// not as an I/O one.
fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl From<apalis_postgres::Error> for StoreError {
    fn from(error: apalis_postgres::Error) -> Self {
        match error {
            apalis_postgres::Error::Database(inner) => inner.into(),
            other => StoreError::Queue(other.to_string()),
        }
    }
}

fn violated_constraint(error: &sqlx::Error) -> Option<Constraint> {
    let database_error = error.as_database_error()?;
    if !(database_error.is_unique_violation() || database_error.is_foreign_key_violation()) {
        return None;
    }
    Constraint::from_name(database_error.constraint()?)
}
