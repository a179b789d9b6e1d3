//! `POST /agents/{ref}/run`: accept a run, queue it, answer 202 at once.
//!
//! Checks run in the contract's order: the body (422), the agent (404), a
//! replayed `Idempotency-Key` (which consumes nothing), then the run limit;
//! only then is the execution recorded and its job queued, in one
//! transaction (shared with the runs submitted meanwhile, see
//! [`crate::submissions`]).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use domain::{Agent, Execution, Model, Prompt, Task, Tenant, ToolSpec};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use store::executions::{IdempotencyClaim, NewExecution, Submission};
use utoipa::ToSchema;

use super::agents::not_found;
use crate::AppState;
use crate::error::{ApiError, ProblemBody};
use crate::extract::{Json, PathRef, no_query, present};
use crate::limits::RunQuota;

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// What to ask the agent, 1-32768 characters.
    #[schema(value_type = String, min_length = 1, max_length = 32768)]
    task: Task,
    /// `gpt-4o` (default), `gpt-4-turbo` or `claude-3-opus`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Model>, nullable = false)]
    model: Option<Model>,
}

/// Run an agent on a task. Poll the execution it answers with until done.
#[utoipa::path(post, path = "/agents/{ref}/run", tag = "runs",
    operation_id = "run_agent", request_body = RunRequest,
    params(
        ("ref" = String, Path, description = "The agent's id or name"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false,
            min_length = 1, max_length = 255,
            description = "1-255 characters; a retry with the same key and body answers with that execution as it is now, creating nothing"),
    ),
    responses(
        (status = 202, description = "Accepted and queued (or replayed)", body = Execution,
            headers(("Location" = String),
                ("Idempotent-Replayed" = String, description = "`true` on a replay; absent otherwise"))),
        (status = 404, description = "No such agent", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body or key reused for another request", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Request or run limit reached", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Extension(quota): Extension<RunQuota>,
    reference: PathRef,
    headers: HeaderMap,
    uri: Uri,
    Json(body): Json<RunRequest>,
) -> Result<Response, ApiError> {
    no_query(&uri)?;
    let key = idempotency_key(&headers)?;
    let reference = reference.read()?;
    let model = body.model.unwrap_or_default();
    let agent = store::agents::get(&state.pool, tenant.id, &reference)
        .await?
        .ok_or_else(|| not_found(&reference))?;

    let idempotency = key.map(|key| IdempotencyClaim {
        fingerprint: fingerprint(&agent, model, &body.task),
        key,
    });
    if let Some(claim) = &idempotency
        && let Some(replayed) = replay(&state, &tenant, claim).await?
    {
        return Ok(replayed);
    }

    // Only now is quota taken: every check a client can fail came first.
    let permit = state.limits.admit_run(&tenant, &quota).await?;
    let new = NewExecution {
        tenant: tenant.id,
        agent_id: agent.id,
        agent_name: agent.name.clone(),
        model,
        prompt: prompt_for(&agent, &body.task),
        request_id: headers
            .get("x-request-id")
            .and_then(|id| id.to_str().ok())
            .map(str::to_owned),
        idempotency,
    };
    let submitted = state.submissions.submit(new).await;
    if !matches!(submitted, Ok(Submission::Created(_))) {
        // Not a new run (a concurrent twin won the key, or it failed): the
        // slot goes back.
        state.limits.release(permit).await;
    }
    match submitted? {
        Submission::Created(execution) => {
            metrics::counter!("agent_platform_runs_enqueued_total").increment(1);
            Ok(accepted(execution, false))
        }
        Submission::Replayed(execution) => Ok(accepted(execution, true)),
        Submission::KeyReused => Err(key_reused()),
    }
}

/// The `Idempotency-Key` header, if sent and valid.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "is sent more than once; send one key",
        ));
    }
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be ASCII text"))?;
    if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 characters long",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// What two requests must share to be the same run: the agent and the body
/// after defaults.
fn fingerprint(agent: &Agent, model: Model, task: &Task) -> String {
    let canonical =
        serde_json::json!({"agent_id": agent.id, "model": model, "task": task.as_str()});
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

async fn replay(
    state: &AppState,
    tenant: &Tenant,
    claim: &IdempotencyClaim,
) -> Result<Option<Response>, ApiError> {
    let Some((fingerprint, execution)) =
        store::executions::find_by_idempotency_key(&state.pool, tenant.id, &claim.key).await?
    else {
        return Ok(None);
    };
    if fingerprint != claim.fingerprint {
        return Err(key_reused());
    }
    Ok(Some(accepted(execution, true)))
}

fn key_reused() -> ApiError {
    ApiError::invalid(
        "Idempotency-Key",
        "was already used with another agent or body in the last 24 hours; use a new key",
    )
}

/// The snapshot of the agent the worker will send, taken now.
fn prompt_for(agent: &Agent, task: &Task) -> Prompt {
    let tools = agent
        .tools
        .iter()
        .map(|tool| ToolSpec {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: tool.parameters.clone(),
        })
        .collect();
    Prompt::new(
        &agent.name,
        &agent.role,
        &agent.description,
        &agent.instructions,
        tools,
        task.as_str(),
    )
}

fn accepted(execution: Execution, replayed: bool) -> Response {
    let location = format!("/executions/{}", execution.id);
    let mut response = (StatusCode::ACCEPTED, axum::Json(execution)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
