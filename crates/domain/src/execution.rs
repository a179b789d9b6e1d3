//! Executions: their states, errors, results and the job that runs them.
//!
//! An execution moves `queued → running → succeeded | failed | cancelled` and
//! never leaves a terminal state. The worker's crate documents who makes each
//! transition; this module only names them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where an execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker has begun an attempt (or waits to retry one).
    Running,
    /// The model replied; `output` is set.
    Succeeded,
    /// Gave up; `error` says why.
    Failed,
    /// Cancelled by the client, or its agent was deleted while queued.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ExecutionStatus; 5] = [
        ExecutionStatus::Queued,
        ExecutionStatus::Running,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Cancelled,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// Whether nothing can change this execution any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::Cancelled
        )
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionStatus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        ExecutionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| {
                let all = ExecutionStatus::ALL.map(ExecutionStatus::as_str).join(", ");
                format!("is not a status; use one of {all}")
            })
    }
}

/// Why an execution failed or was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The provider kept answering 429.
    ProviderRateLimited,
    /// The provider failed (5xx, connection, malformed reply) on every attempt.
    ProviderUnavailable,
    /// The provider refused the request (401, 400, ...): retrying cannot help.
    ProviderRejected,
    /// Attempts ran out of time, or the run passed its hard deadline.
    Timeout,
    /// The client cancelled the run, or its agent was deleted while queued.
    Cancelled,
    /// Something in the platform failed; the logs have the cause.
    Internal,
}

impl ErrorCode {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ProviderRateLimited => "provider_rate_limited",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::ProviderRejected => "provider_rejected",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
        }
    }
}

impl FromStr for ErrorCode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        [
            ErrorCode::ProviderRateLimited,
            ErrorCode::ProviderUnavailable,
            ErrorCode::ProviderRejected,
            ErrorCode::Timeout,
            ErrorCode::Cancelled,
            ErrorCode::Internal,
        ]
        .into_iter()
        .find(|code| code.as_str() == value)
        .ok_or_else(|| format!("unknown error code {value:?}"))
    }
}

/// `{code, message}` of a failed or cancelled execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecutionError {
    /// A stable, machine-readable reason.
    pub code: ErrorCode,
    /// What happened, for people.
    pub message: String,
}

/// A function call the model asked for. Recorded, never executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The arguments the model chose, as JSON.
    pub arguments: Value,
}

/// Tokens the model read and wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Tokens of the prompt.
    pub input_tokens: u32,
    /// Tokens of the reply.
    pub output_tokens: u32,
}

/// The queue's job: which execution to run. Everything else the worker needs
/// is on the execution row, so a job can be delivered twice without harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    /// The execution to run.
    pub execution_id: Uuid,
}

impl RunJob {
    /// The queue's name. Set explicitly: apalis would otherwise use the Rust
    /// type's path, which a rename would silently strand.
    pub const QUEUE: &'static str = "agent-platform.runs";
}
