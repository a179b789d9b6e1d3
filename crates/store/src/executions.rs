//! Executions, the API's side: submitting runs (with their idempotency
//! keys), reading and listing them, and cancelling. The worker's side is in
//! [`crate::attempts`].

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use domain::{
    Execution, ExecutionError, ExecutionStatus, Model, Page, Paged, Prompt, Provider, RunJob,
    ToolCall, Usage,
};
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

use crate::{StoreError, queue};

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// A run the API accepted, ready to be recorded and queued.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// The tenant submitting it.
    pub tenant: Uuid,
    /// The agent run.
    pub agent_id: Uuid,
    /// The agent's name now, kept with the execution.
    pub agent_name: String,
    /// The model asked for.
    pub model: Model,
    /// What is sent to the model, snapshotted now.
    pub prompt: Prompt,
    /// The submitting request's id, carried into the worker's logs.
    pub request_id: Option<String>,
    /// The `Idempotency-Key` and the fingerprint of what it guards.
    pub idempotency: Option<IdempotencyClaim>,
}

/// An `Idempotency-Key` with the fingerprint of the request it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The key, as sent.
    pub key: String,
    /// A digest of the agent and body (after defaults).
    pub fingerprint: String,
}

/// What submitting a run did.
#[derive(Debug, Clone)]
pub enum Submission {
    /// A new execution, queued.
    Created(Execution),
    /// The key was already used for the same request: that execution, as it is now.
    Replayed(Execution),
    /// The key was already used for a different request.
    KeyReused,
}

/// Which executions to list.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only runs of this agent id.
    pub agent_id: Option<Uuid>,
    /// Only runs of an agent that had this name when submitted.
    pub agent_name: Option<String>,
    /// Only runs in this state.
    pub status: Option<ExecutionStatus>,
}

/// What a cancel request did.
#[derive(Debug, Clone)]
pub enum Cancellation {
    /// The run is now cancelled.
    Cancelled(Box<Execution>),
    /// No such execution in this tenant.
    NotFound,
    /// It had already finished, in this state.
    AlreadyFinished(ExecutionStatus),
}

#[derive(sqlx::FromRow)]
struct ExecutionRow {
    id: Uuid,
    agent_id: Uuid,
    agent_name: String,
    model: String,
    provider: Option<String>,
    task: String,
    status: String,
    output: Option<String>,
    tool_calls: Json<Vec<ToolCall>>,
    error_code: Option<String>,
    error_message: Option<String>,
    attempts: i32,
    input_tokens: Option<i32>,
    output_tokens: Option<i32>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    #[sqlx(default)]
    request: Option<Json<Prompt>>,
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = StoreError;

    fn try_from(row: ExecutionRow) -> Result<Self, StoreError> {
        let error = match (row.error_code, row.error_message) {
            (Some(code), message) => Some(ExecutionError {
                code: code.parse().map_err(corrupt)?,
                message: message.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        let usage = match (row.input_tokens, row.output_tokens) {
            (Some(input), Some(output)) => Some(Usage {
                input_tokens: input.unsigned_abs(),
                output_tokens: output.unsigned_abs(),
            }),
            _ => None,
        };
        let duration_ms = match (row.started_at, row.finished_at) {
            (Some(started), Some(finished)) => Some((finished - started).num_milliseconds()),
            _ => None,
        };
        Ok(Execution {
            id: row.id,
            agent_id: row.agent_id,
            agent_name: row.agent_name,
            model: row.model.parse().map_err(corrupt)?,
            provider: row
                .provider
                .map(|p| p.parse::<Provider>())
                .transpose()
                .map_err(corrupt)?,
            task: row.task,
            status: row.status.parse().map_err(corrupt)?,
            output: row.output,
            tool_calls: row.tool_calls.0,
            error,
            attempts: row.attempts.unsigned_abs(),
            usage,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            duration_ms,
            request: row.request.map(|request| request.0),
        })
    }
}

/// A stored value the code does not know: the schema and code disagree.
pub(crate) fn corrupt(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(message.into()))
}

/// The columns read into an [`Execution`], without the prompt.
macro_rules! execution_columns {
    () => {
        "id, agent_id, agent_name, model, provider, task, status, output, tool_calls, \
         error_code, error_message, attempts, input_tokens, output_tokens, created_at, \
         started_at, finished_at"
    };
}

/// The live execution an `Idempotency-Key` points at, with the fingerprint
/// of the request that first used it.
pub async fn find_by_idempotency_key(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
) -> Result<Option<(String, Execution)>, StoreError> {
    let found: Option<(String, Uuid)> = sqlx::query_as(
        "SELECT fingerprint, execution_id FROM idempotency_keys \
         WHERE tenant_id = $1 AND key = $2 AND expires_at > now()",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some((fingerprint, id)) = found else {
        return Ok(None);
    };
    Ok(get(pool, tenant, id, false)
        .await?
        .map(|execution| (fingerprint, execution)))
}

/// Records a run and queues its job in one transaction: an accepted run
/// cannot be lost, and a job never points at nothing. Of two concurrent
/// submissions with one `Idempotency-Key`, one creates, the other replays.
pub async fn submit(pool: &PgPool, new: NewExecution) -> Result<Submission, StoreError> {
    let Some(claim) = &new.idempotency else {
        let mut created = submit_all(pool, std::slice::from_ref(&new)).await?;
        return Ok(Submission::Created(created.remove(0)));
    };
    let mut tx = pool.begin().await?;
    let mut rows = insert(&mut tx, std::slice::from_ref(&new)).await?;
    let row = rows.remove(0);
    if !remember_key(&mut tx, new.tenant, claim, row.id).await? {
        // A live twin holds the key: drop our insert and answer with it.
        tx.rollback().await?;
        return replay(pool, new.tenant, claim).await;
    }
    let job = RunJob {
        execution_id: row.id,
    };
    queue::push_now(&mut tx, [job]).await?;
    let execution = row.try_into()?;

    tx.commit().await?;
    Ok(Submission::Created(execution))
}

/// Records runs without an `Idempotency-Key` and queues their jobs, all in
/// one transaction (so under load many runs share one commit); returns
/// their executions in the order given.
pub async fn submit_all(
    pool: &PgPool,
    news: &[NewExecution],
) -> Result<Vec<Execution>, StoreError> {
    debug_assert!(news.iter().all(|new| new.idempotency.is_none()));
    let mut tx = pool.begin().await?;
    let rows = insert(&mut tx, news).await?;
    let jobs = rows.iter().map(|row| RunJob {
        execution_id: row.id,
    });
    queue::push_now(&mut tx, jobs).await?;
    // Converted before the commit: past it, nothing may fail but the commit.
    let executions = rows
        .into_iter()
        .map(Execution::try_from)
        .collect::<Result<_, _>>()?;

    tx.commit().await?;
    Ok(executions)
}

/// Inserts `news` as queued executions in one statement; the rows come
/// back in the order given.
async fn insert(
    conn: &mut PgConnection,
    news: &[NewExecution],
) -> Result<Vec<ExecutionRow>, StoreError> {
    let ids: Vec<Uuid> = news.iter().map(|_| Uuid::now_v7()).collect();
    let mut rows: Vec<ExecutionRow> = sqlx::query_as(concat!(
        "INSERT INTO executions (id, tenant_id, agent_id, agent_name, model, task, request, ",
        "request_id) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], ",
        "$5::text[], $6::text[], $7::jsonb[], $8::text[]) RETURNING ",
        execution_columns!()
    ))
    .bind(&ids)
    .bind(column(news, |new| new.tenant))
    .bind(column(news, |new| new.agent_id))
    .bind(column(news, |new| new.agent_name.as_str()))
    .bind(column(news, |new| new.model.as_str()))
    .bind(column(news, |new| new.prompt.task.as_str()))
    .bind(column(news, |new| Json(&new.prompt)))
    .bind(column(news, |new| new.request_id.as_deref()))
    .fetch_all(&mut *conn)
    .await?;
    // RETURNING promises no order: put the rows back in the order given.
    let order: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(at, id)| (*id, at)).collect();
    rows.sort_by_key(|row| order.get(&row.id).copied());
    Ok(rows)
}

/// One field of every run, as an array to `unnest`.
fn column<'a, T>(news: &'a [NewExecution], field: impl Fn(&'a NewExecution) -> T) -> Vec<T> {
    news.iter().map(field).collect()
}

/// Claims the key for `execution`, replacing an expired claim in place.
/// `false` if a live claim holds it (waiting, if need be, for a concurrent
/// twin's transaction to end).
async fn remember_key(
    conn: &mut PgConnection,
    tenant: Uuid,
    claim: &IdempotencyClaim,
    execution: Uuid,
) -> Result<bool, StoreError> {
    let expires_at = Utc::now() + Duration::hours(IDEMPOTENCY_TTL_HOURS);
    let stored = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, execution_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, key) DO UPDATE \
         SET fingerprint = EXCLUDED.fingerprint, execution_id = EXCLUDED.execution_id, \
         expires_at = EXCLUDED.expires_at WHERE idempotency_keys.expires_at <= now()",
    )
    .bind(tenant)
    .bind(&claim.key)
    .bind(&claim.fingerprint)
    .bind(execution)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(stored.rows_affected() == 1)
}

async fn replay(
    pool: &PgPool,
    tenant: Uuid,
    claim: &IdempotencyClaim,
) -> Result<Submission, StoreError> {
    match find_by_idempotency_key(pool, tenant, &claim.key).await? {
        Some((fingerprint, execution)) if fingerprint == claim.fingerprint => {
            Ok(Submission::Replayed(execution))
        }
        _ => Ok(Submission::KeyReused),
    }
}

/// One of the tenant's executions; with `include_request`, what was sent.
pub async fn get(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
    include_request: bool,
) -> Result<Option<Execution>, StoreError> {
    let row: Option<ExecutionRow> = sqlx::query_as(concat!(
        "SELECT ",
        execution_columns!(),
        ", CASE WHEN $3 THEN request END AS request ",
        "FROM executions WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .bind(include_request)
    .fetch_optional(pool)
    .await?;
    row.map(Execution::try_from).transpose()
}

/// A page of the tenant's executions, newest first.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    filter: &ExecutionFilter,
    page: Page,
) -> Result<Paged<Execution>, StoreError> {
    let rows: Vec<ExecutionRow> = sqlx::query_as(concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE tenant_id = $1 ",
        "AND ($2::uuid IS NULL OR agent_id = $2) AND ($3::text IS NULL OR agent_name = $3) ",
        "AND ($4::text IS NULL OR status = $4) ",
        "ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(tenant)
    .bind(filter.agent_id)
    .bind(filter.agent_name.as_deref())
    .bind(filter.status.map(ExecutionStatus::as_str))
    .bind(page.fetch_limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let executions = rows
        .into_iter()
        .map(Execution::try_from)
        .collect::<Result<_, _>>()?;
    Ok(page.paged(executions))
}

/// Cancels a queued or running execution. A worker running it notices
/// within its watch interval, and its late result changes nothing.
pub async fn cancel(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Cancellation, StoreError> {
    let row: Option<ExecutionRow> = sqlx::query_as(concat!(
        "UPDATE executions SET status = 'cancelled', error_code = 'cancelled', ",
        "error_message = 'Cancelled by the client.', finished_at = clock_timestamp() ",
        "WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'running') RETURNING ",
        execution_columns!()
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = row {
        return Ok(Cancellation::Cancelled(Box::new(row.try_into()?)));
    }
    Ok(match get(pool, tenant, id, false).await? {
        Some(execution) => Cancellation::AlreadyFinished(execution.status),
        None => Cancellation::NotFound,
    })
}

/// Why a run of a deleted agent never ran.
pub(crate) const AGENT_DELETED: &str = "The agent was deleted before the run started.";

/// Cancels an agent's queued runs, in the transaction deleting it.
pub(crate) async fn cancel_queued_of_agent(
    conn: &mut PgConnection,
    tenant: Uuid,
    agent: Uuid,
) -> Result<u64, StoreError> {
    let cancelled = sqlx::query(
        "UPDATE executions SET status = 'cancelled', error_code = 'cancelled', \
         error_message = $3, finished_at = clock_timestamp() \
         WHERE tenant_id = $1 AND agent_id = $2 AND status = 'queued'",
    )
    .bind(tenant)
    .bind(agent)
    .bind(AGENT_DELETED)
    .execute(&mut *conn)
    .await?;
    Ok(cancelled.rows_affected())
}

/// Forgets `Idempotency-Key`s past their 24 hours.
pub async fn prune_idempotency_keys(pool: &PgPool) -> Result<u64, StoreError> {
    let pruned = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= now()")
        .execute(pool)
        .await?;
    Ok(pruned.rows_affected())
}
