//! Background duties of every worker: heart-beating (and recovering the jobs
//! of workers that stopped), failing runs past their deadline, forgetting
//! expired idempotency keys, and measuring the queue.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Shared;

/// How often overdue runs are swept and old idempotency keys pruned.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// How long a job may be locked to this worker without the worker knowing
/// of it before it is handed back: well past the instant between a fetch
/// and the job's start.
const STRAY_AFTER: Duration = Duration::from_mins(1);

/// How long finished jobs stay in the queue's table, for inspection; the
/// executions table is the history.
const FINISHED_JOB_RETENTION: Duration = Duration::from_hours(1);

/// Registers this module's counters at zero. Prometheus shows a counter only
/// once it exists, and these count rare events: registered now, a dashboard
/// or an alert on them works before the first one happens.
pub fn register_counters() {
    metrics::counter!("agent_platform_jobs_recovered_total").increment(0);
    metrics::counter!("agent_platform_runs_overdue_total").increment(0);
}

/// Beats every `config.heartbeat` until `stop`, on its own timer so a worker
/// busy with slow provider calls still counts as alive. Each beat also
/// re-enqueues the jobs of workers silent past the orphan timeout, and
/// updates the queue-depth gauge.
pub async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(shared.config.heartbeat);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let config = apalis_postgres::Config::default()
        .queue(domain::RunJob::QUEUE)
        .heartbeat_interval(shared.config.heartbeat)
        .missed_heartbeats(shared.config.missed_heartbeats as usize);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => return,
        }
        beat(&shared, &config).await;
        let held = shared.inflight.task_ids();
        match store::queue::release_strays(&shared.pool, &shared.context, &held, STRAY_AFTER).await
        {
            Ok(0) => {}
            Ok(released) => tracing::warn!(
                released,
                "handed back jobs this worker held without knowing"
            ),
            Err(error) => tracing::debug!(%error, "cannot look for stray jobs"),
        }
        #[allow(clippy::cast_precision_loss)] // Gauges are f64; counts stay far below 2^52.
        metrics::gauge!("agent_platform_jobs_in_flight").set(shared.inflight.len() as f64);
        match store::queue::depth(&shared.pool).await {
            #[allow(clippy::cast_precision_loss)]
            Ok(depth) => metrics::gauge!("agent_platform_queue_depth").set(depth as f64),
            Err(error) => tracing::debug!(%error, "cannot measure the queue"),
        }
    }
}

async fn beat(shared: &Shared, config: &apalis_postgres::Config) {
    match store::queue::heartbeat(&shared.pool, config, &shared.context).await {
        Ok(0) => {}
        Ok(recovered) => {
            tracing::warn!(
                recovered,
                "re-enqueued the jobs of a worker that stopped heart-beating"
            );
            metrics::counter!("agent_platform_jobs_recovered_total").increment(recovered);
        }
        Err(error) => {
            tracing::warn!(%error, "heartbeat failed; re-registering");
            // The row may be gone (a database restored from backup, say).
            if let Err(error) = store::queue::register_worker(&shared.pool, &shared.context).await {
                tracing::warn!(%error, "cannot re-register this worker yet");
            }
        }
    }
}

/// Every [`SWEEP_INTERVAL`]: fails runs still running past the hard deadline,
/// forgets idempotency keys past their 24 hours and deletes old finished
/// jobs. Harmless when several
/// workers sweep at once: each write is guarded.
pub async fn sweep(shared: Arc<Shared>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => return,
        }
        match store::attempts::sweep_overdue(&shared.pool, shared.config.run_deadline).await {
            Ok(overdue) if !overdue.is_empty() => {
                tracing::warn!(count = overdue.len(), ids = ?overdue, "failed runs past their deadline");
                metrics::counter!("agent_platform_runs_overdue_total")
                    .increment(overdue.len() as u64);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sweeping overdue runs failed"),
        }
        if let Err(error) = store::executions::prune_idempotency_keys(&shared.pool).await {
            tracing::warn!(%error, "pruning idempotency keys failed");
        }
        if let Err(error) = store::queue::prune_finished(&shared.pool, FINISHED_JOB_RETENTION).await
        {
            tracing::warn!(%error, "pruning finished jobs failed");
        }
    }
}
