//! The dispatcher: waits for a free slot, takes up to that many due jobs,
//! and starts a run for each.
//!
//! It sleeps until NOTIFY says a job was inserted or the poll interval
//! passes, whichever is first. On shutdown it stops taking jobs, gives the
//! runs in flight the grace period to finish, then aborts the rest and hands
//! their jobs back to the queue so another worker takes them at once, with
//! the attempts they began: a run cut short by a shutdown has not used one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::RunJob;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use store::StoreError;
use store::attempts::ClaimedRun;
use store::queue::Delivery;
use uuid::Uuid;

use crate::writer::{Next, Writer};
use crate::{Shared, execute};

/// The channel apalis's insert trigger notifies.
const INSERT_CHANNEL: &str = "apalis::job::insert";

/// The most jobs taken in one fetch.
const MAX_BATCH: usize = 32;

/// The pause between fetches while there is a backlog.
const BACKLOG_PAUSE: Duration = Duration::from_millis(2);

/// After a wake-up, the pause that gathers jobs arriving close together
/// into one fetch, and how recent the last job must be for it to apply.
const BATCH_PAUSE: Duration = Duration::from_millis(5);
const STREAM_WINDOW: Duration = Duration::from_millis(10);

/// How long to back off after the database failed a fetch.
const FETCH_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Dispatches jobs until `shutdown`, then winds down.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let listening = listen_for_inserts(shared.clone(), wake.clone(), shutdown.clone());
    let listener_task = tokio::spawn(listening);
    // Listen before the first fetch: a job inserted between that fetch and
    // LISTEN would otherwise wait for the poll interval.
    wake.notified().await;

    let slots = Arc::new(Semaphore::new(shared.config.concurrency));
    let (writer, writing) = Writer::start(shared.clone());
    let mut runs = JoinSet::new();
    let mut jobs_last_seen: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (taken, asked) = take_jobs(&shared, &writer, &slots, first, &mut runs).await;
        while runs.try_join_next().is_some() {}
        if taken == asked && taken > 0 {
            // Jobs were waiting for every free slot: a backlog. A moment's
            // pause lets more runs finish, so the next fetch takes a bigger
            // batch: fewer, larger transactions for the same work.
            jobs_last_seen = Some(Instant::now());
            tokio::time::sleep(BACKLOG_PAUSE).await;
            continue;
        }
        if taken > 0 {
            jobs_last_seen = Some(Instant::now());
        }
        // Fewer jobs than free slots: the queue is empty for now. Sleep
        // until NOTIFY says a job arrived (or the poll interval passes).
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(shared.config.poll_interval) => {}
            () = shutdown.cancelled() => break,
        }
        // Jobs were arriving a moment ago, so more are likely right behind
        // this one: gather them into one fetch. The first job after a quiet
        // spell is fetched at once, so pickup on an idle queue is immediate.
        if jobs_last_seen.is_some_and(|seen| seen.elapsed() < STREAM_WINDOW) {
            tokio::time::sleep(BATCH_PAUSE).await;
        }
    }

    listener_task.abort();
    wind_down(&shared, runs, writer, writing).await;
}

/// Fetches up to the number of free slots and starts a run for each job.
/// Returns how many were taken, and how many asked for.
async fn take_jobs(
    shared: &Arc<Shared>,
    writer: &Writer,
    slots: &Arc<Semaphore>,
    first: OwnedSemaphorePermit,
    runs: &mut JoinSet<()>,
) -> (usize, usize) {
    let mut permits = vec![first];
    let wanted = (1 + slots.available_permits()).min(MAX_BATCH);
    while permits.len() < wanted {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }

    let asked = permits.len();
    let taken = match take(shared, asked).await {
        Ok(taken) => taken,
        Err(error) => {
            tracing::warn!(%error, "fetching jobs failed; retrying shortly");
            tokio::time::sleep(FETCH_ERROR_PAUSE).await;
            return (0, asked);
        }
    };
    let count = taken.len();
    for ((delivery, run, stop), permit) in taken.into_iter().zip(permits) {
        let (shared, writer) = (shared.clone(), writer.clone());
        runs.spawn(async move {
            match run {
                Some(run) => {
                    execute::execute(&shared, &writer, delivery.clone(), run, stop).await;
                }
                // Finished, cancelled or exhausted: only the job's mark is left.
                None => {
                    writer.write(delivery.clone(), None, Next::Nothing).await;
                }
            }
            shared.inflight.release(&delivery);
            drop(permit);
        });
    }
    (count, asked)
}

/// Takes up to `wanted` due jobs and claims their runs, in one transaction
/// that does not wait for the disk (see [`store::begin_relaxed`]). Each job
/// is paired with its run when the run's next attempt began; a job whose
/// run is done (or whose twin in the same batch got the claim) is paired
/// with nothing. Each is held in flight from here, with the token that
/// stops its run.
async fn take(
    shared: &Shared,
    wanted: usize,
) -> Result<Vec<(Delivery, Option<ClaimedRun>, CancellationToken)>, StoreError> {
    let mut config = apalis_postgres::Config::default()
        .queue(RunJob::QUEUE)
        .heartbeat_interval(shared.config.heartbeat)
        .missed_heartbeats(shared.config.missed_heartbeats as usize);
    config.batch_size = wanted;

    let mut tx = store::begin_relaxed(&shared.pool).await?;
    let deliveries = store::queue::fetch(&mut tx, &config, &shared.context).await?;
    if deliveries.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = deliveries
        .iter()
        .map(|delivery| delivery.job.execution_id)
        .collect();
    let mut claims =
        store::attempts::claim(&mut tx, &ids, shared.config.max_attempts, &shared.providers)
            .await?;
    tx.commit().await?;

    for id in &claims.exhausted {
        tracing::warn!(execution.id = %id, "the last attempt's worker stopped; the run is failed");
        metrics::counter!("agent_platform_jobs_total", "outcome" => "failed").increment(1);
    }
    Ok(deliveries
        .into_iter()
        .map(|delivery| {
            let index = claims
                .runs
                .iter()
                .position(|run| run.id == delivery.job.execution_id);
            let run = index.map(|index| claims.runs.swap_remove(index));
            if run.is_none() {
                metrics::counter!("agent_platform_jobs_total", "outcome" => "skipped").increment(1);
            }
            // Held with its attempt before its task starts: a hard stop
            // that aborts the task unstarted still gives the attempt back.
            let attempt = run.as_ref().map(|run| (run.id, run.attempt));
            let stop = shared.inflight.hold(&delivery, attempt);
            (delivery, run, stop)
        })
        .collect())
}

/// Forwards apalis's insert notifications for our queue to `wake`. The
/// listener reconnects by itself; notifications sent while it is away are
/// lost, which the interval poll covers.
async fn listen_for_inserts(shared: Arc<Shared>, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut listener = loop {
        match connect_listener(&shared).await {
            Ok(listener) => break listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for new jobs yet; polling meanwhile");
                wake.notify_one();
                tokio::select! {
                    () = tokio::time::sleep(shared.config.poll_interval) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    };
    wake.notify_one();
    loop {
        tokio::select! {
            notification = listener.recv() => match notification {
                Ok(notification) if notification.payload().contains(RunJob::QUEUE) => wake.notify_one(),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "lost the NOTIFY connection; reconnecting");
                    tokio::time::sleep(FETCH_ERROR_PAUSE).await;
                }
            },
            () = shutdown.cancelled() => return,
        }
    }
}

async fn connect_listener(shared: &Shared) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&shared.pool).await?;
    listener.listen(INSERT_CHANNEL).await?;
    Ok(listener)
}

/// Gives in-flight runs the grace period, then aborts what is left and hands
/// those jobs back to the queue, with the attempts they began.
async fn wind_down(
    shared: &Shared,
    mut runs: JoinSet<()>,
    writer: Writer,
    writing: JoinHandle<()>,
) {
    let in_flight = runs.len();
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            grace_secs = shared.config.shutdown_grace.as_secs(),
            "finishing runs in flight"
        );
    }
    let drained = tokio::time::timeout(shared.config.shutdown_grace, async {
        while runs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        runs.abort_all();
        while runs.join_next().await.is_some() {}
    }
    // The writer ends once the last handle is gone and what it has is
    // written. Only then is anything handed back: a result already on its
    // way must land before its job is re-enqueued, or the job would run
    // again and the attempt behind that result would not count.
    drop(writer);
    let _ = writing.await;
    if drained.is_err() {
        hand_back(shared).await;
    }
}

/// Hands the jobs still held back to the queue and gives back the attempts
/// they had in progress, in one transaction: either the next worker begins
/// the same attempt again, or (if this fails) the jobs wait for this
/// worker's heartbeat to lapse and the attempts count, as after a crash.
async fn hand_back(shared: &Shared) {
    let (unfinished, attempts) = shared.inflight.drain();
    let handing_back = async {
        let mut tx = shared.pool.begin().await?;
        let given_back = store::attempts::give_back(&mut tx, &attempts).await?;
        let released = store::queue::release(&mut tx, &shared.context, &unfinished).await?;
        tx.commit().await?;
        Ok::<_, StoreError>((released, given_back))
    };
    match handing_back.await {
        Ok((released, attempts_given_back)) => {
            tracing::warn!(
                released,
                attempts_given_back,
                "grace period over: handed unfinished runs back to the queue"
            );
        }
        // Not lost: they are recovered once this worker's heartbeat lapses.
        Err(error) => tracing::error!(%error, "could not hand unfinished runs back"),
    }
}
