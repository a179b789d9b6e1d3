//! The worker's side of executions: claiming runs for an attempt, writing
//! attempts' outcomes, scheduling retries, and noticing runs that stopped.
//!
//! Every write here is guarded by the status and the attempt it claimed
//! (`WHERE status = 'running' AND attempts = $n`), so a late or duplicate
//! attempt changes nothing. The state machine itself is written down in the
//! worker crate's documentation.

use std::collections::HashMap;
use std::time::SystemTime;

use domain::{ErrorCode, ExecutionError, Model, Prompt, Provider, RunJob, ToolCall, Usage};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

use crate::executions::corrupt;
use crate::{StoreError, queue};

/// A run a worker claimed for one attempt: everything it needs, no joins.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// The execution's id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant: Uuid,
    /// The agent's name at submission.
    pub agent_name: String,
    /// The model to call.
    pub model: Model,
    /// What to send.
    pub prompt: Prompt,
    /// The attempt this claim began (1 for the first).
    pub attempt: u32,
    /// The submitting request's id.
    pub request_id: Option<String>,
}

/// What claiming a batch of runs found.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// Runs whose next attempt began: run them.
    pub runs: Vec<ClaimedRun>,
    /// Runs whose last allowed attempt had begun on a worker that is gone:
    /// now failed.
    pub exhausted: Vec<Uuid>,
}

/// How an attempt ended, for the terminal write.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The model replied.
    Succeeded {
        /// Its text.
        output: String,
        /// Calls it asked for.
        tool_calls: Vec<ToolCall>,
        /// Tokens used.
        usage: Usage,
    },
    /// The run gave up.
    Failed(ExecutionError),
}

/// Begins the next attempt of each of `ids` still to run with attempts
/// left, in one statement. `providers` says which adapter serves each model
/// on this worker, recorded as the run's provider. Of the others, those
/// whose last attempt had begun (its worker gone) are failed; the rest
/// (finished, cancelled, unknown) need nothing. A queued run whose agent is
/// gone is not claimed but cancelled: deleting the agent cancels its queued
/// runs, and this catches one accepted while the deletion was under way.
pub async fn claim(
    conn: &mut PgConnection,
    ids: &[Uuid],
    max_attempts: u32,
    providers: &[(Model, Provider)],
) -> Result<Claims, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Claimed {
        id: Uuid,
        tenant_id: Uuid,
        agent_name: String,
        model: String,
        request: Json<Prompt>,
        attempts: i32,
        request_id: Option<String>,
    }

    let providers: HashMap<&str, &str> = providers
        .iter()
        .map(|(model, provider)| (model.as_str(), provider.as_str()))
        .collect();
    let claimed: Vec<Claimed> = sqlx::query_as(
        "UPDATE executions SET status = 'running', attempts = attempts + 1, \
         provider = $3::jsonb ->> model, started_at = coalesce(started_at, clock_timestamp()) \
         WHERE id = ANY($1) AND status IN ('queued', 'running') AND attempts < $2 \
         AND (status = 'running' OR EXISTS (SELECT 1 FROM agents AS a \
              WHERE a.tenant_id = executions.tenant_id AND a.id = executions.agent_id)) \
         RETURNING id, tenant_id, agent_name, model, request, attempts, request_id",
    )
    .bind(ids)
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .bind(Json(providers))
    .fetch_all(&mut *conn)
    .await?;

    let runs = claimed
        .into_iter()
        .map(|row| {
            Ok(ClaimedRun {
                id: row.id,
                tenant: row.tenant_id,
                agent_name: row.agent_name,
                model: row.model.parse().map_err(corrupt)?,
                prompt: row.request.0,
                attempt: row.attempts.unsigned_abs(),
                request_id: row.request_id,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let unclaimed: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !runs.iter().any(|run| run.id == *id))
        .collect();
    cancel_orphans(conn, &unclaimed).await?;
    let exhausted = exhaust(conn, &unclaimed, max_attempts).await?;
    Ok(Claims { runs, exhausted })
}

/// Cancels those of `ids` still queued whose agent no longer exists.
async fn cancel_orphans(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE executions AS e SET status = 'cancelled', error_code = 'cancelled', \
         error_message = $2, finished_at = clock_timestamp() \
         WHERE e.id = ANY($1) AND e.status = 'queued' AND NOT EXISTS \
         (SELECT 1 FROM agents AS a WHERE a.tenant_id = e.tenant_id AND a.id = e.agent_id)",
    )
    .bind(ids)
    .bind(crate::executions::AGENT_DELETED)
    .execute(conn)
    .await?;
    Ok(())
}

/// Fails runs whose last attempt began on a worker that is gone.
async fn exhaust(
    conn: &mut PgConnection,
    ids: &[Uuid],
    max_attempts: u32,
) -> Result<Vec<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "UPDATE executions SET status = 'failed', error_code = 'internal', \
         error_message = 'The worker running the last attempt stopped before it finished.', \
         finished_at = clock_timestamp() WHERE id = ANY($1) AND status = 'running' AND attempts >= $2 \
         RETURNING id",
    )
    .bind(ids)
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .fetch_all(conn)
    .await?)
}

/// Writes the terminal results of attempts, on the caller's transaction,
/// in one statement per kind of outcome. Returns the ids written; a run
/// left out had moved on meanwhile (cancelled, or claimed again by a later
/// attempt) and is unchanged. Every text from a provider is made
/// [`storable`] here, the one place it reaches the database.
pub async fn finish(
    conn: &mut PgConnection,
    results: &[(&ClaimedRun, &Outcome)],
) -> Result<Vec<Uuid>, StoreError> {
    let mut succeeded = Succeeded::default();
    let mut failed = Failed::default();
    for (run, outcome) in results {
        let attempt = i32::try_from(run.attempt).unwrap_or(i32::MAX);
        match outcome {
            Outcome::Succeeded {
                output,
                tool_calls,
                usage,
            } => {
                succeeded.ids.push(run.id);
                succeeded.attempts.push(attempt);
                succeeded.outputs.push(storable(output));
                let tool_calls = serde_json::to_value(tool_calls).unwrap_or_default();
                succeeded.tool_calls.push(storable_json(&tool_calls));
                succeeded
                    .input_tokens
                    .push(i32::try_from(usage.input_tokens).unwrap_or(i32::MAX));
                succeeded
                    .output_tokens
                    .push(i32::try_from(usage.output_tokens).unwrap_or(i32::MAX));
            }
            Outcome::Failed(error) => {
                failed.ids.push(run.id);
                failed.attempts.push(attempt);
                failed.codes.push(error.code.as_str());
                failed.messages.push(storable(&error.message));
            }
        }
    }

    let mut written = Vec::with_capacity(results.len());
    if !succeeded.ids.is_empty() {
        written.extend(succeeded.write(&mut *conn).await?);
    }
    if !failed.ids.is_empty() {
        written.extend(failed.write(&mut *conn).await?);
    }
    Ok(written)
}

/// `text` with each U+0000 replaced by U+FFFD. PostgreSQL's text and jsonb
/// cannot hold NUL: the API refuses it at its edge, but a model's reply or a
/// provider's error may carry one, and a result that cannot be stored would
/// leave its run `running`.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// [`storable`] applied to every string of a JSON value, keys included.
fn storable_json(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(storable(text)),
        Value::Array(items) => Value::Array(items.iter().map(storable_json).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (storable(key), storable_json(value)))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

/// Columns of successful results, bound as arrays.
#[derive(Default)]
struct Succeeded {
    ids: Vec<Uuid>,
    attempts: Vec<i32>,
    outputs: Vec<String>,
    tool_calls: Vec<serde_json::Value>,
    input_tokens: Vec<i32>,
    output_tokens: Vec<i32>,
}

impl Succeeded {
    async fn write(self, conn: &mut PgConnection) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE executions AS e SET status = 'succeeded', output = r.output, \
             tool_calls = r.tool_calls, input_tokens = r.input_tokens, \
             output_tokens = r.output_tokens, finished_at = clock_timestamp() \
             FROM unnest($1::uuid[], $2::int[], $3::text[], $4::jsonb[], $5::int[], $6::int[]) \
             AS r(id, attempt, output, tool_calls, input_tokens, output_tokens) \
             WHERE e.id = r.id AND e.status = 'running' AND e.attempts = r.attempt RETURNING e.id",
        )
        .bind(self.ids)
        .bind(self.attempts)
        .bind(self.outputs)
        .bind(self.tool_calls)
        .bind(self.input_tokens)
        .bind(self.output_tokens)
        .fetch_all(conn)
        .await?)
    }
}

/// Columns of failures, bound as arrays.
#[derive(Default)]
struct Failed {
    ids: Vec<Uuid>,
    attempts: Vec<i32>,
    codes: Vec<&'static str>,
    messages: Vec<String>,
}

impl Failed {
    async fn write(self, conn: &mut PgConnection) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE executions AS e SET status = 'failed', error_code = r.code, \
             error_message = r.message, finished_at = clock_timestamp() \
             FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[]) \
             AS r(id, attempt, code, message) \
             WHERE e.id = r.id AND e.status = 'running' AND e.attempts = r.attempt RETURNING e.id",
        )
        .bind(self.ids)
        .bind(self.attempts)
        .bind(self.codes)
        .bind(self.messages)
        .fetch_all(conn)
        .await?)
    }
}

/// Queues the next attempt of a run for `at`, on the caller's transaction,
/// if this attempt still owns the run. The wait survives a restart because
/// it is a job with a later `run_at`, not a timer in a process.
pub async fn schedule_retry(
    conn: &mut PgConnection,
    run: &ClaimedRun,
    at: SystemTime,
) -> Result<bool, StoreError> {
    let owned: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM executions WHERE id = $1 AND status = 'running' AND attempts = $2 \
         FOR UPDATE",
    )
    .bind(run.id)
    .bind(i32::try_from(run.attempt).unwrap_or(i32::MAX))
    .fetch_optional(&mut *conn)
    .await?;
    if owned.is_none() {
        return Ok(false);
    }
    let job = RunJob {
        execution_id: run.id,
    };
    queue::push_at(conn, [job], at).await?;
    Ok(true)
}

/// Gives back attempts a worker began but will not finish because it is
/// shutting down, on the caller's transaction (the one handing their jobs
/// back): each `(id, attempt)` still at that attempt goes back one, so the
/// next claim begins the same attempt number again and a rolling restart
/// cannot use up a run's attempts. A run given back its first attempt is
/// `queued` again, as if never started, so clients never see a run
/// `running` with no attempt. Returns how many were given back; one that
/// moved on meanwhile (finished, cancelled, or claimed by another worker)
/// is left alone.
pub async fn give_back(
    conn: &mut PgConnection,
    attempts: &[(Uuid, u32)],
) -> Result<u64, StoreError> {
    if attempts.is_empty() {
        return Ok(0);
    }
    let (ids, numbers): (Vec<Uuid>, Vec<i32>) = attempts
        .iter()
        .map(|(id, attempt)| (*id, i32::try_from(*attempt).unwrap_or(i32::MAX)))
        .unzip();
    let given_back = sqlx::query(
        "UPDATE executions AS e SET attempts = e.attempts - 1, \
         status = CASE WHEN e.attempts = 1 THEN 'queued' ELSE e.status END, \
         started_at = CASE WHEN e.attempts = 1 THEN NULL ELSE e.started_at END, \
         provider = CASE WHEN e.attempts = 1 THEN NULL ELSE e.provider END \
         FROM unnest($1::uuid[], $2::int[]) AS r(id, attempt) \
         WHERE e.id = r.id AND e.status = 'running' AND e.attempts = r.attempt",
    )
    .bind(ids)
    .bind(numbers)
    .execute(conn)
    .await?;
    Ok(given_back.rows_affected())
}

/// Of `ids`, those no longer running: a worker stops their attempts.
pub async fn not_running(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM executions WHERE id = ANY($1) AND status <> 'running'")
            .bind(ids)
            .fetch_all(pool)
            .await?,
    )
}

/// Fails runs still running `deadline` after their first counted attempt began, so
/// nothing stays running forever. Returns their ids.
pub async fn sweep_overdue(
    pool: &PgPool,
    deadline: std::time::Duration,
) -> Result<Vec<Uuid>, StoreError> {
    let seconds = i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX);
    let message = format!("The run passed its deadline of {seconds} seconds and was stopped.");
    Ok(sqlx::query_scalar(
        "UPDATE executions SET status = 'failed', error_code = $2, error_message = $3, \
         finished_at = clock_timestamp() WHERE status = 'running' \
         AND started_at < now() - $1 * interval '1 second' RETURNING id",
    )
    .bind(seconds)
    .bind(ErrorCode::Timeout.as_str())
    .bind(message)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character() {
        assert_eq!(storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(storable("plain"), "plain");
    }

    #[test]
    fn nul_in_json_strings_and_keys_becomes_the_replacement_character() {
        let value = json!([{"name": "look\0up", "arguments": {"k\0": ["v\0", 1, null]}}]);

        let stored = storable_json(&value);

        let expected =
            json!([{"name": "look\u{FFFD}up", "arguments": {"k\u{FFFD}": ["v\u{FFFD}", 1, null]}}]);
        assert_eq!(stored, expected);
    }
}
