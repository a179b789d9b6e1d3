//! The run queue: apalis jobs in the `apalis` schema of the same database.
//!
//! Jobs are pushed inside the caller's transaction, so a job exists exactly
//! when the execution it names does. Pushing, fetching (`FOR UPDATE SKIP
//! LOCKED`), heart-beating, recovering dead workers' jobs and handing jobs
//! back go through apalis-postgres's own queries. A few statements are ours,
//! each for a reason given where it stands: registering a worker, marking a
//! job done, pruning finished jobs and measuring the queue.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::{Status, Task, TaskBuilder, TaskId, WorkerContext};
use apalis_postgres::{Config, queries};
use domain::RunJob;
use sqlx::{PgConnection, PgPool};
use ulid::Ulid;

use crate::StoreError;

/// How far an immediate job's `run_at` is set in the past. apalis stores
/// `run_at` in whole seconds and its insert trigger sends NOTIFY only for
/// jobs already due by the database's clock (as of the transaction's start):
/// backdating makes every new job count as due, despite the truncation and a
/// little clock skew between an API host and the database.
const IMMEDIATE_BACKDATE: Duration = Duration::from_secs(2);

/// A job handed to this worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// apalis's id of the job (a ULID).
    pub task_id: TaskId,
    /// What to run.
    pub job: RunJob,
    /// How many times apalis handed this job out before (re-enqueued after a
    /// worker died or shut down).
    pub redeliveries: usize,
}

/// Pushes jobs to run now, in one statement.
pub async fn push_now(
    conn: &mut PgConnection,
    jobs: impl IntoIterator<Item = RunJob>,
) -> Result<(), StoreError> {
    push_at(conn, jobs, SystemTime::now() - IMMEDIATE_BACKDATE).await
}

/// Pushes jobs to run at `at` or later, never earlier (`run_at` is rounded
/// up to the whole second apalis stores), in one statement.
pub async fn push_at(
    conn: &mut PgConnection,
    jobs: impl IntoIterator<Item = RunJob>,
    at: SystemTime,
) -> Result<(), StoreError> {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let run_at = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
    let tasks = jobs
        .into_iter()
        .map(|job| {
            let payload =
                serde_json::to_vec(&job).map_err(|error| StoreError::Queue(error.to_string()))?;
            Ok(TaskBuilder::new(payload)
                .task_id(TaskId::from_ulid(Ulid::generate()))
                .run_at_timestamp(run_at)
                .build())
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    queries::push_tasks(conn, RunJob::QUEUE, tasks).await?;
    Ok(())
}

/// Records this worker in apalis's table of workers, so its heartbeats are
/// counted and, should it die, its jobs are recovered by the others.
pub async fn register_worker(pool: &PgPool, worker: &WorkerContext) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) \
         VALUES ($1, $2, 'PgStorage', '', now()) \
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
    )
    .bind(worker.name())
    .bind(RunJob::QUEUE)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks this worker alive, then re-enqueues the jobs of workers silent for
/// longer than `config.orphaned_duration()`. Returns how many were recovered.
pub async fn heartbeat(
    pool: &PgPool,
    config: &Config,
    worker: &WorkerContext,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    queries::keep_alive(&mut *tx, RunJob::QUEUE, worker).await?;
    let dead_for = config.orphaned_duration().as_secs();
    let recovered = queries::reenqueue_orphaned(&mut *tx, RunJob::QUEUE, dead_for).await?;
    tx.commit().await?;
    Ok(recovered)
}

/// Takes up to `config.batch_size` due jobs for this worker, on the
/// caller's transaction (`FOR UPDATE SKIP LOCKED`, so each goes to exactly
/// one worker). Jobs whose payload cannot be read are marked failed and
/// left out.
pub async fn fetch(
    conn: &mut PgConnection,
    config: &Config,
    worker: &WorkerContext,
) -> Result<Vec<Delivery>, StoreError> {
    let tasks = queries::fetch_next(&mut *conn, config, worker).await?;

    let mut deliveries = Vec::with_capacity(tasks.len());
    for task in tasks {
        match decode(&task) {
            Some(delivery) => deliveries.push(delivery),
            None => discard(&mut *conn, worker, &task).await?,
        }
    }
    Ok(deliveries)
}

fn decode(task: &Task<Vec<u8>>) -> Option<Delivery> {
    let task_id = task.task_id()?.clone();
    let job = serde_json::from_slice(&task.args).ok()?;
    Some(Delivery {
        task_id,
        job,
        redeliveries: task.attempt(),
    })
}

async fn discard(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    task: &Task<Vec<u8>>,
) -> Result<(), StoreError> {
    tracing::error!(task.id = ?task.task_id(), "discarding a run job whose payload is unreadable");
    let Some(task_id) = task.task_id() else {
        return Ok(());
    };
    finish(conn, worker, &[task_id.to_string()], Status::Killed).await
}

/// Marks delivered jobs done, on the caller's connection: the worker does
/// it in the transaction that writes their executions' results, so the two
/// cannot disagree. Only the worker holding a job can mark it.
pub async fn acknowledge(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    deliveries: &[&Delivery],
) -> Result<(), StoreError> {
    let ids: Vec<String> = deliveries
        .iter()
        .map(|delivery| delivery.task_id.to_string())
        .collect();
    finish(conn, worker, &ids, Status::Done).await
}

/// Marks the jobs `status`, those this worker still holds. Our own SQL, not
/// apalis's result query: that one matches the worker's jobs before their
/// ids, so each acknowledgement scanned every job the worker ever held and
/// grew slower as the table grew (3 ms a call after a few thousand jobs
/// here). This finds the jobs by their primary key.
async fn finish(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    task_ids: &[String],
    status: Status,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE apalis.jobs SET status = $3, done_at = now(), last_result = $4 \
         WHERE id = ANY($1) AND lock_by = $2",
    )
    .bind(task_ids)
    .bind(worker.name())
    .bind(status.to_string())
    .bind(sqlx::types::Json(serde_json::json!({ "Ok": null })))
    .execute(conn)
    .await?;
    Ok(())
}

/// Hands jobs this worker took but will not finish back to the queue at once
/// (on shutdown), instead of leaving them to the orphan timeout. On the
/// caller's transaction, which gives their attempts back too.
pub async fn release(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    deliveries: &[Delivery],
) -> Result<u64, StoreError> {
    let ids: Vec<String> = deliveries
        .iter()
        .map(|delivery| delivery.task_id.to_string())
        .collect();
    Ok(queries::reenqueue_abandoned(conn, RunJob::QUEUE, worker.name(), &ids).await?)
}

/// Hands back jobs the queue's table says this worker holds but the worker
/// does not know of (`held` are the ones it knows), locked for longer than
/// `age`. This happens when a fetch committed but its reply was lost: no
/// heartbeat lapses, so nothing else would ever take those jobs back.
pub async fn release_strays(
    pool: &PgPool,
    worker: &WorkerContext,
    held: &[String],
    age: Duration,
) -> Result<u64, StoreError> {
    let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    let strays: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM apalis.jobs WHERE lock_by = $1 AND status IN ('Queued', 'Running') \
         AND lock_at < now() - $2 * interval '1 second' AND NOT (id = ANY($3))",
    )
    .bind(worker.name())
    .bind(seconds)
    .bind(held)
    .fetch_all(pool)
    .await?;
    if strays.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.acquire().await?;
    Ok(queries::reenqueue_abandoned(&mut *conn, RunJob::QUEUE, worker.name(), &strays).await?)
}

/// Deletes finished jobs older than `age`: the executions table keeps the
/// history; a done job only needs to outlive any redelivery of it.
pub async fn prune_finished(pool: &PgPool, age: Duration) -> Result<u64, StoreError> {
    let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    let pruned = sqlx::query(
        "DELETE FROM apalis.jobs WHERE job_type = $1 AND status IN ('Done', 'Killed') \
         AND done_at < now() - $2 * interval '1 second'",
    )
    .bind(RunJob::QUEUE)
    .bind(seconds)
    .execute(pool)
    .await?;
    Ok(pruned.rows_affected())
}

/// Jobs due now and not yet taken: what more workers would drain.
pub async fn depth(pool: &PgPool) -> Result<i64, StoreError> {
    let depth = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs \
         WHERE job_type = $1 AND status = 'Pending' AND run_at <= now()",
    )
    .bind(RunJob::QUEUE)
    .fetch_one(pool)
    .await?;
    Ok(depth)
}
