//! The run queue: apalis jobs in the `apalis` schema of the same database.
//!
//! Jobs are pushed inside the caller's transaction, so a job exists exactly
//! when the execution it names does. The worker side (fetch, heartbeat,
//! acknowledge, hand back) goes through apalis-postgres's own queries; only
//! registering a worker is our SQL, because apalis keeps the timestamp type
//! its registration query needs private.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::{Status, Task, TaskBuilder, TaskId, TaskResult, WorkerContext};
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

/// Pushes a job to run now.
pub async fn push_now(conn: &mut PgConnection, job: RunJob) -> Result<(), StoreError> {
    push_at(conn, job, SystemTime::now() - IMMEDIATE_BACKDATE).await
}

/// Pushes a job to run at `at` or later, never earlier: `run_at` is rounded
/// up to the whole second apalis stores.
pub async fn push_at(
    conn: &mut PgConnection,
    job: RunJob,
    at: SystemTime,
) -> Result<(), StoreError> {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let run_at = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
    let payload = serde_json::to_vec(&job).map_err(|error| StoreError::Queue(error.to_string()))?;
    let task = TaskBuilder::new(payload)
        .task_id(TaskId::from_ulid(Ulid::generate()))
        .run_at_timestamp(run_at)
        .build();
    queries::push_tasks(conn, RunJob::QUEUE, vec![task]).await?;
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

/// Takes up to `config.batch_size` due jobs for this worker
/// (`FOR UPDATE SKIP LOCKED`, so each goes to exactly one worker). Jobs whose
/// payload cannot be read are acknowledged as failed and left out.
pub async fn fetch(
    pool: &PgPool,
    config: &Config,
    worker: &WorkerContext,
) -> Result<Vec<Delivery>, StoreError> {
    let mut tx = pool.begin().await?;
    let tasks = queries::fetch_next(&mut *tx, config, worker).await?;
    tx.commit().await?;

    let mut deliveries = Vec::with_capacity(tasks.len());
    for task in tasks {
        match decode(&task) {
            Some(delivery) => deliveries.push(delivery),
            None => discard(pool, worker, &task).await?,
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
    pool: &PgPool,
    worker: &WorkerContext,
    task: &Task<Vec<u8>>,
) -> Result<(), StoreError> {
    tracing::error!(task.id = ?task.task_id(), "discarding a run job whose payload is unreadable");
    let Some(task_id) = task.task_id().cloned() else {
        return Ok(());
    };
    let mut conn = pool.acquire().await?;
    finish(&mut conn, worker, task_id, Status::Killed).await
}

/// Marks a delivered job done, on the caller's connection: the worker does
/// it in the transaction that writes the execution's result, so the two
/// cannot disagree. Only the worker holding the job can mark it.
pub async fn acknowledge(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    delivery: &Delivery,
) -> Result<(), StoreError> {
    finish(conn, worker, delivery.task_id.clone(), Status::Done).await
}

async fn finish(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    task_id: TaskId,
    status: Status,
) -> Result<(), StoreError> {
    let result = TaskResult {
        task_id,
        attempt: 1,
        status,
        result: Ok(serde_json::Value::Null),
    };
    queries::handle_results(conn, &[&result], worker.name()).await?;
    Ok(())
}

/// Hands jobs this worker took but will not finish back to the queue at once
/// (on shutdown), instead of leaving them to the orphan timeout.
pub async fn release(
    pool: &PgPool,
    worker: &WorkerContext,
    deliveries: &[Delivery],
) -> Result<u64, StoreError> {
    let ids: Vec<String> = deliveries
        .iter()
        .map(|delivery| delivery.task_id.to_string())
        .collect();
    let mut conn = pool.acquire().await?;
    Ok(queries::reenqueue_abandoned(&mut *conn, RunJob::QUEUE, worker.name(), &ids).await?)
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
