//! The resources the API returns: tenants, tools, agents and executions.
//!
//! These hold what was stored after validation, so their fields are plain
//! values; the validated input types live in [`crate::text`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ExecutionError, ExecutionStatus, Model, Prompt, Provider, TenantLimits, ToolCall, Usage,
};

/// A team using the platform. Every other resource belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// The tenant's id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Its rate limits.
    pub limits: TenantLimits,
    /// When it was created.
    #[serde(serialize_with = "crate::time::serialize")]
    pub created_at: DateTime<Utc>,
}

/// A function an agent can ask the model to call.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Tool {
    /// The tool's id.
    pub id: Uuid,
    /// Unique per tenant; 1-64 of `A-Z a-z 0-9 _ -`.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema of the tool's arguments.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// When it was created.
    #[serde(serialize_with = "crate::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(serialize_with = "crate::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// An AI agent: a persona with tools, run on tasks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Agent {
    /// The agent's id.
    pub id: Uuid,
    /// Unique per tenant, 1-100 characters.
    pub name: String,
    /// Who the agent is, 1-200 characters.
    pub role: String,
    /// What it does, 1-4096 characters.
    pub description: String,
    /// Extra system prompt, 0-32768 characters.
    pub instructions: String,
    /// Its tools, by name.
    pub tools: Vec<Tool>,
    /// When it was created.
    #[serde(serialize_with = "crate::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(serialize_with = "crate::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// One run of an agent on a task, from submission to its result.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Execution {
    /// The execution's id.
    pub id: Uuid,
    /// The agent that was run (it may have been deleted since).
    pub agent_id: Uuid,
    /// The agent's name when the run was submitted.
    pub agent_name: String,
    /// The model asked for.
    pub model: Model,
    /// The adapter that ran the last attempt; null while queued.
    pub provider: Option<Provider>,
    /// The task, as sent.
    pub task: String,
    /// Where the run is in its life.
    pub status: ExecutionStatus,
    /// The model's reply, once succeeded.
    pub output: Option<String>,
    /// Calls the model asked for, recorded but never executed.
    pub tool_calls: Vec<ToolCall>,
    /// Why it failed or was cancelled.
    pub error: Option<ExecutionError>,
    /// Attempts begun so far; one handed back by a stopping worker is not counted.
    pub attempts: u32,
    /// Tokens read and written, once succeeded.
    pub usage: Option<Usage>,
    /// When the run was submitted.
    #[serde(serialize_with = "crate::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When the first counted attempt began.
    #[serde(serialize_with = "crate::time::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    #[serde(serialize_with = "crate::time::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds from the first counted attempt's start to the end.
    pub duration_ms: Option<i64>,
    /// What was sent to the model; only with `?include=request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Prompt>,
}
