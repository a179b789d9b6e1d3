//! The worker: takes run jobs from the queue in PostgreSQL, calls the model
//! adapter for each, and writes the result. Run as many as you like; each
//! job goes to exactly one worker at a time.
//!
//! # The life of an execution
//!
//! | from | to | made by | when |
//! |---|---|---|---|
//! | — | `queued` | API | a run is accepted; its job is pushed in the same transaction |
//! | `queued` | `running` | worker, claim | it takes the job; `attempts` becomes 1 |
//! | `running` | `running` | worker, claim | the next attempt begins (a retry, or a redelivery after a worker died or handed the job back); `attempts` + 1 |
//! | `running` | `queued` | worker, shutdown | the grace period ran out mid-way through the first attempt: the job is handed back and the attempt with it; `attempts` 0, `started_at` and `provider` cleared |
//! | `running` | `running` | worker, shutdown | the same, mid-way through a later attempt; `attempts` − 1 |
//! | `running` | `succeeded` | worker | the model replied |
//! | `running` | `failed` | worker | a permanent provider error, or the last attempt's transient one |
//! | `running` | `failed` | worker, claim | a redelivered job whose last attempt had already begun |
//! | `running` | `failed` | sweeper | still running past `RUN_DEADLINE_SECS` |
//! | `queued`, `running` | `cancelled` | API | the client cancels, or deletes the agent (queued only) |
//! | `queued` | `cancelled` | worker, claim | its agent is gone: the run was accepted while the agent was being deleted |
//!
//! An attempt cut short by a shutdown (SIGTERM past the grace period) is
//! given back, so rolling restarts cannot use up a run's attempts; a worker
//! that dies (SIGKILL, a crash, a lost node) cannot give anything back, and
//! its attempt counts. `started_at` is the first counted attempt's. An
//! outcome the database refuses (not for an outage) is replaced by a
//! failure of our own wording (`internal` for a reply), so no run stays
//! `running` because of what it holds.
//!
//! Terminal states never change. Every worker write is guarded by the status
//! and attempt it claimed (`WHERE status = 'running' AND attempts = $n`), so
//! a job delivered twice, a late attempt or a cancelled run changes nothing:
//! jobs are safe to run more than once, and one terminal write wins.
//!
//! # The life of a job
//!
//! Jobs are apalis jobs (`apalis.jobs`, queue [`domain::RunJob::QUEUE`]).
//!
//! | job status | becomes | made by | when |
//! |---|---|---|---|
//! | `Pending` | `Queued` | dispatcher | fetched (`FOR UPDATE SKIP LOCKED`), in the transaction that claims its run |
//! | `Queued` | `Done` | writer | in the transaction that writes its run's outcome (or notes there was nothing to run) |
//! | `Queued` | `Pending` | another worker's heartbeat | its worker stopped heart-beating for `heartbeat × missed heartbeats` |
//! | `Queued` | `Pending` | its own worker | shutdown's grace period ran out, or it holds the job without knowing (a fetch whose reply was lost) |
//! | `Done` | deleted | sweeper | an hour later |
//!
//! A retry is a new `Pending` job with a later `run_at`. The dispatcher is
//! woken by the insert trigger's NOTIFY and, as a backstop, an interval
//! poll (NOTIFY does not fire for retries nor for re-enqueued jobs). It
//! takes no more jobs than it has free slots, and under load it pauses a
//! moment between fetches so that each fetch, claim and write serves many
//! runs at once; results are group-committed by one writer task.
//!
//! This crate drives apalis-postgres's queries with its own small loop
//! rather than apalis's generic worker runtime, for three reasons that
//! matter here: the heartbeat runs on its own timer, so a worker whose slots
//! are all busy with slow provider calls still counts as alive (the runtime
//! beats only between dispatches); the dispatcher fetches no more jobs than
//! it has free slots, so no job sits claimed but unstarted while another
//! worker idles; and a database outage pauses the worker instead of ending it.

mod dispatch;
mod execute;
mod health;
mod inflight;
mod retry;
mod upkeep;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::WorkerContext;
use domain::{Model, Provider};
use metrics_exporter_prometheus::PrometheusHandle;
use models::Adapters;
use store::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How a worker behaves; every field has an environment variable in the
/// binary's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Runs executed at once (`WORKER_CONCURRENCY`).
    pub concurrency: usize,
    /// Time allowed for one attempt's provider call (`RUN_TIMEOUT_SECS`).
    pub run_timeout: Duration,
    /// Attempts per run, first included (`MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// First retry delay; later ones double, with jitter (`RETRY_BASE_DELAY_MS`).
    pub retry_base_delay: Duration,
    /// How often this worker says it is alive (`WORKER_HEARTBEAT_SECS`).
    pub heartbeat: Duration,
    /// Heartbeats missed before a worker counts as dead (`WORKER_MISSED_HEARTBEATS`).
    pub missed_heartbeats: u32,
    /// The backstop poll when no NOTIFY arrives (`WORKER_POLL_INTERVAL_MS`).
    pub poll_interval: Duration,
    /// Time in-flight runs get to finish on shutdown (`WORKER_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: Duration,
    /// A run still running this long after it started is failed (`RUN_DEADLINE_SECS`).
    pub run_deadline: Duration,
}

/// What every part of a running worker shares.
struct Shared {
    pool: PgPool,
    adapters: Adapters,
    config: Config,
    /// Identifies this process to apalis: unique per process, so a restarted
    /// worker never inherits (or is mistaken for) a previous one.
    context: WorkerContext,
    inflight: inflight::InFlight,
    /// The provider each model runs on here, recorded on claimed runs.
    providers: Vec<(Model, Provider)>,
}

/// Runs a worker until `shutdown` is cancelled, then stops taking jobs,
/// lets in-flight runs finish within the grace period and hands the rest
/// back to the queue. With a `health` listener it also serves `/healthz`,
/// `/readyz` and `/metrics` (rendered from the given registry) there.
/// Metrics go to the global recorder: install it before calling this, so
/// the counters registered at start-up land in it.
pub async fn run(
    pool: PgPool,
    adapters: Adapters,
    config: Config,
    health: Option<(TcpListener, PrometheusHandle)>,
    shutdown: CancellationToken,
) -> Result<(), store::StoreError> {
    let name = worker_name();
    let providers = Model::ALL
        .into_iter()
        .map(|model| (model, adapters.for_model(model).provider()))
        .collect();
    let shared = Arc::new(Shared {
        pool,
        adapters,
        config,
        context: WorkerContext::new(&name),
        inflight: inflight::InFlight::default(),
        providers,
    });
    tracing::info!(worker = %name, concurrency = shared.config.concurrency, "worker starting");
    upkeep::register_counters();

    store::queue::register_worker(&shared.pool, &shared.context).await?;
    let background = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(upkeep::heartbeat(shared.clone(), background.clone()));
    tasks.spawn(upkeep::sweep(shared.clone(), background.clone()));
    tasks.spawn(inflight::watch_cancellations(
        shared.clone(),
        background.clone(),
    ));
    if let Some((listener, metrics)) = health {
        let router = health::router(shared.pool.clone(), metrics);
        tasks.spawn(health::serve_until(listener, router, background.clone()));
    }

    dispatch::run(shared.clone(), shutdown).await;

    // Stop heart-beating only now: jobs handed back above are taken again at
    // once, and any we could not hand back are recovered after our heartbeat
    // lapses.
    background.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!(worker = %name, "worker stopped");
    Ok(())
}

/// `host-pid-random`: readable in `apalis.workers`, unique per process.
fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    let suffix = ulid::Ulid::generate().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &suffix[suffix.len() - 6..]
    )
}
